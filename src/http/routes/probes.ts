/**
 * GET /healthz (the process answers; never touches the backend, so a slow model server cannot
 * cause restart storms), GET /readyz (backend ready, model loaded, not draining), GET /info.
 */
import type { FastifyInstance } from 'fastify';
import { VERSION } from '../../version.js';
import type { GatewayContext } from '../context.js';
import { GatewayError } from '../errors.js';
import {
  errorResponses,
  healthSchema,
  infoResponseSchema,
  MAX_STOP_SEQUENCES,
} from '../schemas.js';

export function probeRoutes(ctx: GatewayContext) {
  const { backend, config, scheduler, model } = ctx;
  return async function register(app: FastifyInstance): Promise<void> {
    app.get('/healthz', { schema: { response: { 200: healthSchema } } }, async () => ({
      status: 'ok' as const,
    }));

    app.get(
      '/readyz',
      { schema: { response: { 200: healthSchema, ...errorResponses(['NOT_READY']) } } },
      async () => {
        if (scheduler.draining) {
          throw new GatewayError('NOT_READY', 'shutting down: draining in-flight generations');
        }
        const readiness = backend.readiness();
        if (!readiness.ready) {
          throw new GatewayError(
            'NOT_READY',
            `backend not ready: ${readiness.reason ?? 'starting'}`,
          );
        }
        return { status: 'ready' as const };
      },
    );

    app.get(
      '/info',
      {
        schema: { response: { 200: infoResponseSchema, ...errorResponses(['BACKEND_NOT_READY']) } },
      },
      async () => {
        if (!backend.readiness().ready) {
          throw new GatewayError('BACKEND_NOT_READY', 'the model is not loaded yet; retry later', {
            retryAfterSeconds: 1,
          });
        }
        const d = backend.description;
        return {
          name: 'gpt2-gateway',
          version: VERSION,
          model: {
            name: d.modelName,
            variant: d.variant,
            context_length: d.contextLength,
            vocab_size: d.vocabSize,
            random_weights: model.randomWeights,
            ...(model.notice === undefined ? {} : { notice: model.notice }),
          },
          backend: { kind: d.kind, max_batch_size: scheduler.maxBatchSize, details: d.details },
          limits: {
            max_new_tokens: config.maxNewTokensLimit,
            default_max_new_tokens: config.defaultMaxNewTokens,
            max_stop_sequences: MAX_STOP_SEQUENCES,
            max_batch_size: scheduler.maxBatchSize,
            max_queue: config.maxQueue,
            body_limit_bytes: config.bodyLimitBytes,
            rate_limit_max: config.rateLimit.max,
            rate_limit_window_ms: config.rateLimit.windowMs,
          },
        };
      },
    );
  };
}
