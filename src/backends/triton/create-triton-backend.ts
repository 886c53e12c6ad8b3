/**
 * BACKEND=triton from configuration: the upstream URL (explicit TRITON_URL wins, else derived from
 * the SeldonDeployment, whose status then gates readiness), and the TritonBackend over its own
 * keep-alive Pool. Its metrics join the app's registry through registerMetrics().
 */
import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Config } from '../../config.js';
import { SeldonDiscovery } from '../../kube/seldon-discovery.js';
import { TritonBackend } from './triton-backend.js';

/** Triton's model name when MODEL_NAME is unset (Seldon's GPT-2 examples use it). */
export const DEFAULT_TRITON_MODEL_NAME = 'gpt2';

export interface CreatedTritonBackend {
  readonly backend: TritonBackend;
}

export async function createTritonBackend(
  config: Config,
  logger: Logger,
  kubeConfig?: KubeConfig,
): Promise<CreatedTritonBackend> {
  const t = config.triton;
  const log = logger.child({ component: 'triton' });
  let url = t.url;
  let discovery: SeldonDiscovery | undefined;
  if (url === undefined) {
    if (t.seldonDeployment === undefined)
      throw new Error('BACKEND=triton needs TRITON_URL or SELDON_DEPLOYMENT');
    let kc = kubeConfig;
    if (kc === undefined) {
      kc = new KubeConfig();
      kc.loadFromCluster();
    }
    discovery = new SeldonDiscovery(
      kc,
      {
        deployment: t.seldonDeployment,
        ...(t.seldonNamespace ? { namespace: t.seldonNamespace } : {}),
        ...(t.seldonPredictor ? { predictor: t.seldonPredictor } : {}),
        ...(t.seldonGraph ? { graph: t.seldonGraph } : {}),
      },
      log,
    );
    url = (await discovery.start(t.wire)).url;
  } else if (t.seldonDeployment !== undefined) {
    log.info({ url }, 'TRITON_URL is set: SELDON_DEPLOYMENT is not consulted');
  }
  const d = discovery;
  const backend = new TritonBackend({
    url,
    modelName: config.modelName ?? DEFAULT_TRITON_MODEL_NAME,
    wire: t.wire,
    timeoutMs: t.timeoutMs,
    connections: t.connections,
    retries: t.retries,
    breakerFailures: t.breakerFailures,
    breakerCooldownMs: t.breakerCooldownMs,
    startupTimeoutMs: t.startupTimeoutMs,
    healthIntervalMs: t.healthIntervalMs,
    healthTimeoutMs: t.healthTimeoutMs,
    healthFailures: t.healthFailures,
    ...(t.maxBatchSize === undefined ? {} : { maxBatchSize: t.maxBatchSize }),
    logger: log,
    ...(d ? { gate: () => d.readiness(), onClose: () => d.stop() } : {}),
  });
  return { backend };
}
