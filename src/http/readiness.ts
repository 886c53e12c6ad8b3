/**
 * The one readiness gate of the routes that need a loaded model (/complete, /info): a preHandler
 * that answers 503 BACKEND_NOT_READY with the backend's reason and the catalogue's Retry-After.
 */
import type { preHandlerAsyncHookHandler } from 'fastify';
import type { Backend } from '../backends/backend.js';
import { GatewayError } from '../contract/errors.js';

export function requireReadyBackend(backend: Backend): preHandlerAsyncHookHandler {
  return async () => {
    const readiness = backend.readiness();
    if (!readiness.ready) {
      throw new GatewayError(
        'BACKEND_NOT_READY',
        `the model is not ready (${readiness.reason ?? 'starting'}); retry later`,
      );
    }
  };
}
