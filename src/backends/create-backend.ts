/**
 * The backend named by config.backend, not yet initialised (server.ts calls init() after
 * listening, so /healthz answers while a model loads). Issue 4 adds the `triton` case.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../config.js';
import type { ModelNotice } from '../http/context.js';
import type { Backend } from './backend.js';

export interface CreatedBackend {
  readonly backend: Backend;
  readonly model: ModelNotice;
  /** The backend's own metrics (gpt2_gateway_upstream_* for Triton), served on /metrics too. */
  readonly registry?: Registry;
}

export async function createBackend(config: Config, logger: Logger): Promise<CreatedBackend> {
  switch (config.backend) {
    case 'embedded': {
      const { createEmbeddedBackend } = await import('./embedded/create-embedded-backend.js');
      return createEmbeddedBackend(config, logger);
    }
    case 'triton': {
      const { createTritonBackend } = await import('./triton/create-triton-backend.js');
      const { backend, registry } = await createTritonBackend(config, logger);
      return { backend, registry, model: { randomWeights: false } };
    }
  }
}
