/**
 * GET /healthz (the process answers; never touches the backend, so a slow model server cannot
 * cause restart storms), GET /readyz (backend ready, model loaded, not draining), GET /info.
 * The two probes log at debug: a kubelet probing every few seconds would otherwise fill the log.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Backend } from '../../backends/backend.js';
import type { ModelNotice } from '../../backends/created-backend.js';
import type { Config } from '../../config.js';
import { type ErrorCode, GatewayError } from '../../contract/errors.js';
import type { Scheduler } from '../../generation/scheduler.js';
import { VERSION } from '../../version.js';
import { requireReadyBackend } from '../readiness.js';
import {
  errorResponses,
  healthSchema,
  infoResponseSchema,
  MAX_STOP_SEQUENCES,
} from '../schemas.js';

/** Route config for requests that are polled, not asked: their request lines go to debug. */
export const QUIET_REQUEST_LOGS = { requestLogLevel: 'debug' } as const;

export const INFO_ERROR_CODES = [
  'UNAUTHORIZED',
  'BACKEND_NOT_READY',
] as const satisfies readonly ErrorCode[];

export interface ProbeRouteOptions {
  readonly backend: Backend;
  readonly scheduler: Scheduler;
  readonly config: Config;
  readonly model: ModelNotice;
  /** API_KEYS_FILE is set: every route but the probes needs a key (the playground asks for one). */
  readonly authRequired: boolean;
}

export const probeRoutes: FastifyPluginAsync<ProbeRouteOptions> = async (app, opts) => {
  const { backend, config, scheduler, model, authRequired } = opts;
  app.get(
    '/healthz',
    { config: QUIET_REQUEST_LOGS, schema: { response: { 200: healthSchema } } },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      config: QUIET_REQUEST_LOGS,
      schema: { response: { 200: healthSchema, ...errorResponses(['NOT_READY']) } },
    },
    async () => {
      if (scheduler.draining) {
        throw new GatewayError('NOT_READY', 'shutting down: draining in-flight generations');
      }
      const readiness = backend.readiness();
      if (!readiness.ready) {
        throw new GatewayError('NOT_READY', `backend not ready: ${readiness.reason ?? 'starting'}`);
      }
      return { status: 'ready' as const };
    },
  );

  app.get(
    '/info',
    {
      preHandler: requireReadyBackend(backend),
      schema: {
        response: {
          200: infoResponseSchema,
          ...errorResponses(INFO_ERROR_CODES),
        },
      },
    },
    async () => {
      const d = backend.description;
      return {
        name: 'gpt2-gateway',
        version: VERSION,
        auth: { required: authRequired },
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
