/**
 * What a release looks like in the cluster: its SeldonDeployments and gateway Deployments, read
 * with @kubernetes/client-node and judged ready or not. Objects are found by the chart's
 * `app.kubernetes.io/instance=<release>` label, so nothing here repeats the chart's naming rules.
 */
import {
  AppsV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1Deployment,
} from '@kubernetes/client-node';

const SELDON_GROUP = 'machinelearning.seldon.io';
const SELDON_VERSION = 'v1';
const SELDON_PLURAL = 'seldondeployments';
/** Seldon's operator labels the Deployments it generates with this; those are Triton's, not ours. */
const SELDON_OWNED_LABEL = 'seldon-deployment-id';

export type Phase = 'ready' | 'progressing' | 'failed';

export interface ObjectState {
  kind: 'SeldonDeployment' | 'Deployment';
  name: string;
  phase: Phase;
  /** One line for a person: e.g. "Creating", "1/2 updated, 0/2 available". */
  detail: string;
}

export interface ReleaseState {
  objects: ObjectState[];
  /** Set when the SeldonDeployment CRD is not installed (Seldon Core missing). */
  seldonMissing: boolean;
}

export async function readReleaseState(
  kubeConfig: KubeConfig,
  namespace: string,
  release: string,
): Promise<ReleaseState> {
  const labelSelector = `app.kubernetes.io/instance=${release}`;
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const [deployments, seldon] = await Promise.all([
    apps.listNamespacedDeployment({ namespace, labelSelector }),
    custom
      .listNamespacedCustomObject({
        group: SELDON_GROUP,
        version: SELDON_VERSION,
        namespace,
        plural: SELDON_PLURAL,
        labelSelector,
      })
      .then(
        (list: unknown) => ({ items: itemsOf(list), missing: false }),
        (err: unknown) => {
          // 404 on the list itself means the CRD is absent; anything else is a real failure.
          if (statusCodeOf(err) === 404) return { items: [], missing: true };
          throw err;
        },
      ),
  ]);
  const objects: ObjectState[] = seldon.items.map(seldonState);
  for (const d of deployments.items) {
    if (d.metadata?.labels?.[SELDON_OWNED_LABEL] !== undefined) continue;
    objects.push(deploymentState(d));
  }
  return { objects, seldonMissing: seldon.missing };
}

/** Seldon's status.state is Available | Creating | Failed (seldon-core v1 operator). */
function seldonState(item: Record<string, unknown>): ObjectState {
  const name = String(asRecord(item.metadata).name ?? '?');
  const status = asRecord(item.status);
  const state = typeof status.state === 'string' ? status.state : 'Pending';
  const description = typeof status.description === 'string' ? status.description : '';
  const phase: Phase =
    state === 'Available' ? 'ready' : state === 'Failed' ? 'failed' : 'progressing';
  return {
    kind: 'SeldonDeployment',
    name,
    phase,
    detail: description === '' ? state : `${state}: ${description}`,
  };
}

/** The same test `kubectl rollout status` applies. */
function deploymentState(d: V1Deployment): ObjectState {
  const name = d.metadata?.name ?? '?';
  const want = d.spec?.replicas ?? 1;
  const s = d.status ?? {};
  const updated = s.updatedReplicas ?? 0;
  const available = s.availableReplicas ?? 0;
  const total = s.replicas ?? 0;
  const detail = `${updated}/${want} updated, ${available}/${want} available`;
  const stalled = (s.conditions ?? []).find(
    (c) => c.type === 'Progressing' && c.reason === 'ProgressDeadlineExceeded',
  );
  if (stalled !== undefined) {
    return {
      kind: 'Deployment',
      name,
      phase: 'failed',
      detail: `${detail}; ${stalled.message ?? 'progress deadline exceeded'}`,
    };
  }
  const observed = (s.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0);
  const done = observed && updated >= want && total <= updated && available >= want;
  return { kind: 'Deployment', name, phase: done ? 'ready' : 'progressing', detail };
}

function itemsOf(list: unknown): Record<string, unknown>[] {
  const items = asRecord(list).items;
  return Array.isArray(items) ? items.map(asRecord) : [];
}

function statusCodeOf(err: unknown): number | undefined {
  const code = asRecord(err).code;
  return typeof code === 'number' ? code : undefined;
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}
