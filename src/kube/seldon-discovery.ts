/**
 * SeldonDeployment discovery: read the deployment once to derive the upstream URL, then watch it
 * so that `status.state` feeds the gateway's readiness.
 *
 * Which URL (docs/triton-notes.md, 'Seldon Core v1 executor'):
 * - binary wire → Triton's own container service `<sdep>-<predictor>-<graph>:9000`. The Seldon
 *   executor HTML-escapes binary bodies and drops Inference-Header-Content-Length, so binary
 *   tensors must never go through it (SeldonIO/seldon-core issue #3969).
 * - JSON wire → the executor, `status.address.url` without its `/v2/models/.../infer` path
 *   (or `<sdep>-<predictor>:8000` while the status has no address yet).
 */
import { readFileSync } from 'node:fs';
import { CustomObjectsApi, type KubeConfig, Watch } from '@kubernetes/client-node';
import type { Readiness } from '../backends/backend.js';
import { isRecord } from '../kserve/messages.js';

export const SELDON_GROUP = 'machinelearning.seldon.io';
export const SELDON_VERSION = 'v1';
export const SELDON_PLURAL = 'seldondeployments';
/** Ports Seldon Core v1 gives Triton's container service and the executor. */
export const TRITON_CONTAINER_PORT = 9000;
export const EXECUTOR_PORT = 8000;
const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
/** Re-watch after the API server ends a watch (it does every few minutes) or it fails. */
const REWATCH_DELAY_MS = 1_000;

export interface SeldonTarget {
  readonly deployment: string;
  /** Default: the pod's own namespace (in-cluster), else "default". */
  readonly namespace?: string;
  /** Default: the first predictor in the spec. */
  readonly predictor?: string;
  /** Default: that predictor's graph root name (the Triton container's name). */
  readonly graph?: string;
}

export interface DiscoveryLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface Discovered {
  readonly url: string;
  readonly namespace: string;
  readonly predictor: string;
  readonly graph: string;
}

export function inClusterNamespace(): string {
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim() || 'default';
  } catch {
    return 'default';
  }
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Derive the upstream base URL from a SeldonDeployment object. Throws saying what is missing. */
export function upstreamFromDeployment(
  sdep: unknown,
  target: SeldonTarget,
  namespace: string,
  wire: 'binary' | 'json',
): Discovered {
  const where = `SeldonDeployment ${namespace}/${target.deployment}`;
  if (!isRecord(sdep) || !isRecord(sdep.spec)) throw new Error(`${where} has no spec`);
  const predictors = Array.isArray(sdep.spec.predictors)
    ? sdep.spec.predictors.filter(isRecord)
    : [];
  const predictorSpec =
    target.predictor === undefined
      ? predictors[0]
      : predictors.find((p) => p.name === target.predictor);
  if (predictorSpec === undefined) {
    throw new Error(
      `${where} has no predictor ${target.predictor ?? ''} (predictors: ${predictors.map((p) => String(p.name)).join(', ') || 'none'})`,
    );
  }
  const predictor = str(predictorSpec.name) ?? 'default';
  const graph =
    target.graph ?? (isRecord(predictorSpec.graph) ? str(predictorSpec.graph.name) : undefined);
  if (graph === undefined)
    throw new Error(`${where}: predictor ${predictor} has no graph name; set SELDON_GRAPH`);
  const d = target.deployment;
  if (wire === 'binary') {
    return {
      url: `http://${d}-${predictor}-${graph}.${namespace}.svc.cluster.local:${TRITON_CONTAINER_PORT}`,
      namespace,
      predictor,
      graph,
    };
  }
  const status = isRecord(sdep.status) ? sdep.status : {};
  const address = isRecord(status.address) ? str(status.address.url) : undefined;
  const url =
    address?.replace(/\/v2\/models\/.*$/, '').replace(/\/+$/, '') ??
    `http://${d}-${predictor}.${namespace}.svc.cluster.local:${EXECUTOR_PORT}`;
  return { url, namespace, predictor, graph };
}

/** Readiness from `status.state`: only Available serves. */
export function readinessFromDeployment(sdep: unknown, name: string): Readiness {
  const status = isRecord(sdep) && isRecord(sdep.status) ? sdep.status : undefined;
  const state = str(status?.state);
  if (state === 'Available') return { ready: true };
  const description = str(status?.description);
  return {
    ready: false,
    reason: `SeldonDeployment ${name} is ${state ?? 'without status'}${description ? `: ${description}` : ''}`,
  };
}

export class SeldonDiscovery {
  readonly #kc: KubeConfig;
  readonly #target: SeldonTarget;
  readonly #log: DiscoveryLogger;
  readonly #namespace: string;
  #readiness: Readiness = { ready: false, reason: 'SeldonDeployment not read yet' };
  #watch: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(kc: KubeConfig, target: SeldonTarget, logger: DiscoveryLogger) {
    this.#kc = kc;
    this.#target = target;
    this.#log = logger;
    this.#namespace = target.namespace ?? inClusterNamespace();
  }

  readiness(): Readiness {
    return this.#readiness;
  }

  /** Read the deployment, derive the URL, and start watching it. */
  async start(wire: 'binary' | 'json'): Promise<Discovered> {
    const api = this.#kc.makeApiClient(CustomObjectsApi);
    const name = this.#target.deployment;
    let sdep: unknown;
    try {
      sdep = await api.getNamespacedCustomObject({
        group: SELDON_GROUP,
        version: SELDON_VERSION,
        namespace: this.#namespace,
        plural: SELDON_PLURAL,
        name,
      });
    } catch (err) {
      const code = isRecord(err) ? err.code : undefined;
      throw new Error(
        `cannot read SeldonDeployment ${this.#namespace}/${name}${code === undefined ? '' : ` (HTTP ${String(code)})`}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}; check SELDON_DEPLOYMENT, SELDON_NAMESPACE and the service account's RBAC (get, watch seldondeployments)`,
      );
    }
    const found = upstreamFromDeployment(sdep, this.#target, this.#namespace, wire);
    this.#readiness = readinessFromDeployment(sdep, name);
    this.#log.info({ url: found.url, wire, state: this.#readiness }, 'SeldonDeployment discovered');
    await this.#startWatch();
    return found;
  }

  async #startWatch(): Promise<void> {
    if (this.#stopped) return;
    const name = this.#target.deployment;
    const path = `/apis/${SELDON_GROUP}/${SELDON_VERSION}/namespaces/${this.#namespace}/${SELDON_PLURAL}`;
    try {
      this.#watch = await new Watch(this.#kc).watch(
        path,
        { fieldSelector: `metadata.name=${name}` },
        (phase: string, obj: unknown) => {
          const next: Readiness =
            phase === 'DELETED'
              ? { ready: false, reason: `SeldonDeployment ${name} was deleted` }
              : readinessFromDeployment(obj, name);
          if (next.ready !== this.#readiness.ready || next.reason !== this.#readiness.reason) {
            this.#log.info({ readiness: next }, 'SeldonDeployment status changed');
          }
          this.#readiness = next;
        },
        (err: unknown) => this.#rewatch(err),
      );
    } catch (err) {
      this.#rewatch(err);
    }
  }

  #rewatch(err: unknown): void {
    if (this.#stopped) return;
    if (err !== null && err !== undefined)
      this.#log.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'SeldonDeployment watch ended; restarting',
      );
    this.#timer = setTimeout(() => void this.#startWatch(), REWATCH_DELAY_MS);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#watch?.abort();
  }
}
