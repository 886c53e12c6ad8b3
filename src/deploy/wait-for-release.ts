/**
 * Polls the release's objects until every SeldonDeployment is Available and every gateway
 * Deployment has rolled out, reporting each change of state as it happens.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { type ObjectState, readReleaseState } from './release-state.js';

const DEFAULT_POLL_MS = 2_000;

export interface WaitOptions {
  namespace: string;
  release: string;
  timeoutMs: number;
  pollMs?: number;
  /** Called with a line whenever an object's state changes. */
  onProgress?: (line: string) => void;
}

export class WaitError extends Error {
  override readonly name = 'WaitError';
}

export async function waitForRelease(
  kubeConfig: KubeConfig,
  options: WaitOptions,
): Promise<ObjectState[]> {
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  const deadline = Date.now() + options.timeoutMs;
  const said = new Map<string, string>();
  for (;;) {
    const state = await readReleaseState(kubeConfig, options.namespace, options.release);
    if (state.seldonMissing) {
      throw new WaitError(
        'the cluster has no SeldonDeployment resource: install Seldon Core v1, or deploy with --set seldon.enabled=false',
      );
    }
    for (const o of state.objects) {
      const key = `${o.kind}/${o.name}`;
      if (said.get(key) !== o.detail) {
        said.set(key, o.detail);
        options.onProgress?.(`${key}: ${o.detail}`);
      }
    }
    const failed = state.objects.find((o) => o.phase === 'failed');
    if (failed !== undefined)
      throw new WaitError(`${failed.kind}/${failed.name} failed: ${failed.detail}`);
    if (state.objects.length === 0) {
      throw new WaitError(
        `no objects labelled app.kubernetes.io/instance=${options.release} in namespace ${options.namespace}`,
      );
    }
    if (state.objects.every((o) => o.phase === 'ready')) return state.objects;
    if (Date.now() + pollMs > deadline) {
      const waiting = state.objects
        .filter((o) => o.phase !== 'ready')
        .map((o) => `${o.kind}/${o.name} (${o.detail})`);
      throw new WaitError(
        `timed out after ${Math.round(options.timeoutMs / 1000)} s waiting for ${waiting.join(', ')}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
