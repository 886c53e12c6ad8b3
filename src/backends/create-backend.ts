/**
 * The backend named by config.backend, not yet initialised (server.ts calls init() after
 * listening, so /healthz answers while a model loads). Each backend's module is loaded only when
 * it is chosen: onnxruntime and the Kubernetes client are heavy.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { CreatedBackend } from './created-backend.js';

export async function createBackend(config: Config, logger: Logger): Promise<CreatedBackend> {
  switch (config.backend) {
    case 'embedded': {
      const { createEmbeddedBackend } = await import('./embedded/create-embedded-backend.js');
      return createEmbeddedBackend(config, logger);
    }
    case 'triton': {
      const { createTritonBackend } = await import('./triton/create-triton-backend.js');
      const { backend } = await createTritonBackend(config, logger);
      return { backend, model: { randomWeights: false } };
    }
  }
}
