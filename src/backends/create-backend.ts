/**
 * The backend named by config.backend, not yet initialised (server.ts calls init() after
 * listening, so /healthz answers while a model loads). Issue 4 adds the `triton` case.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { ModelNotice } from '../http/context.js';
import type { Backend } from './backend.js';

export interface CreatedBackend {
  readonly backend: Backend;
  readonly model: ModelNotice;
}

export async function createBackend(config: Config, logger: Logger): Promise<CreatedBackend> {
  switch (config.backend) {
    case 'embedded': {
      const { createEmbeddedBackend } = await import('./embedded/create-embedded-backend.js');
      return createEmbeddedBackend(config, logger);
    }
    case 'triton':
      throw new Error('BACKEND=triton is not available in this build');
  }
}
