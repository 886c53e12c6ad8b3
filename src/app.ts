/**
 * buildApp(config, deps): a ready-to-listen fastify instance that owns the whole app and nothing
 * global — its one metrics Registry (the backend registers its own metrics there too), its
 * scheduler, its API keys file, its routes, and the second listener for /metrics when
 * METRICS_PORT is set (server.ts starts it). Plugins are registered here, in this order: error
 * handling, metrics hooks, authentication, rate limiting, routes. The backend is passed in and
 * owned by the caller (server.ts or a test), which closes it.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { LoggerOptions } from 'pino';
import { Registry } from 'prom-client';
import { type ApiKeysFile, openApiKeysFile } from './auth/api-keys.js';
import { authPlugin } from './auth/auth-hook.js';
import type { Backend } from './backends/backend.js';
import type { ModelNotice } from './backends/created-backend.js';
import type { Config } from './config.js';
import { GatewayError } from './contract/errors.js';
import { Scheduler } from './generation/scheduler.js';
import { ClientErrors } from './http/client-errors.js';
import { installErrorHandler, recordError } from './http/error-handler.js';
import { sendError } from './http/error-reply.js';
import { installLingeringClose } from './http/lingering-close.js';
import { RequestLogController } from './http/request-logging.js';
import { completeRoutes } from './http/routes/complete.js';
import { metricsRoute } from './http/routes/metrics.js';
import { openAICompletionsRoutes } from './http/routes/openai-completions.js';
import { openAIModelsRoutes } from './http/routes/openai-models.js';
import { PLAYGROUND_ASSET_PREFIX, playgroundRoutes } from './http/routes/playground.js';
import { probeRoutes } from './http/routes/probes.js';
import { tokenizeRoute } from './http/routes/tokenize.js';
import { errorBodySchema } from './http/schemas.js';
import { capConnections, serverLimitOptions } from './http/server-limits.js';
import { installStrictJsonParser } from './http/strict-json.js';
import { installHttpMetrics } from './metrics/http-metrics.js';
import { createGatewayMetrics, type GatewayMetrics } from './metrics/metrics.js';
import { openAIErrorBodySchema } from './openai/schemas.js';
import { type Gpt2Tokenizer, loadGpt2Tokenizer } from './tokenizer/gpt2-tokenizer.js';
import { PromptTokenizer } from './tokenizer/prompt-tokenizer.js';
import { TokenizerPool } from './tokenizer/tokenizer-pool.js';

/** A client's X-Request-Id is reused in logs and the completion id only if it looks like an id. */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Never log prompt or completion text, nor credentials: they are the users' data.
 * fastify logs neither bodies nor headers by default; these paths guard anything that tries.
 */
export const REDACTED_LOG_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'req.body',
  'res.body',
  'body',
  'prompt',
  'text',
  'completion',
  '*.prompt',
  '*.text',
];

export interface AppDeps {
  readonly backend: Backend;
  readonly tokenizer?: Gpt2Tokenizer;
  /** Worker threads for large tokenizations; absent: the app makes its own and closes it. */
  readonly tokenizerPool?: TokenizerPool;
  /** fastify's logger option: false in tests, pino options (or an instance) in server.ts. */
  readonly logger?: FastifyServerOptions['logger'];
  readonly loggerInstance?: FastifyServerOptions['loggerInstance'];
  readonly model?: ModelNotice;
  readonly now?: () => number;
  /** How often the API keys file is re-read besides its directory watch (tests shorten it). */
  readonly apiKeysPollIntervalMs?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Refuse new generations (503 SHUTTING_DOWN) and wait for the accepted ones (SIGTERM). */
    drain(): Promise<void>;
    /**
     * The shutdown deadline: end every generation still queued or running with SHUTTING_DOWN
     * (503, or an `error` event on a stream). Returns how many it ended.
     */
    endGenerations(): number;
    /** The app's one metrics registry: what GET /metrics serves. */
    readonly metricsRegistry: Registry;
    /**
     * With METRICS_PORT: the listener that alone serves GET /metrics, not listening yet (the
     * caller listens on it; closing the app closes it). Undefined: /metrics is on this app.
     */
    readonly metricsServer: FastifyInstance | undefined;
  }
}

export function loggerOptions(config: Config): LoggerOptions {
  return {
    level: config.logLevel,
    redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' },
  };
}

/**
 * A fastify server as every listener of the gateway is one (the API port and METRICS_PORT): slow
 * or malformed requests bounded and answered in the one error body, open connections capped at
 * MAX_CONNECTIONS, the app's logger with the probes' and the scrape's request lines at debug
 * (src/http/request-logging.ts), and no client-chosen request ids unless `options` says how.
 */
function boundedServer(
  config: Config,
  deps: AppDeps,
  options: FastifyServerOptions = {},
): FastifyInstance {
  const clientErrors = new ClientErrors(config.requestTimeoutMs);
  const server = Fastify({
    ...serverLimitOptions(config),
    clientErrorHandler: clientErrors.handler,
    ...(deps.loggerInstance === undefined
      ? { logger: deps.logger ?? false }
      : { loggerInstance: deps.loggerInstance }),
    logController: new RequestLogController(),
    requestIdHeader: false,
    ...options,
  });
  clientErrors.attach(server.server, server.log);
  capConnections(server.server, config.maxConnections, server.log);
  return server;
}

export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  const app = boundedServer(config, deps, {
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy,
    genReqId: (req: IncomingMessage) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID_PATTERN.test(given) ? given : randomUUID();
    },
    // Unknown fields are errors, not silently dropped; "8" is not a number.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
    // During shutdown our own drain answers 503 SHUTTING_DOWN with the usual body.
    return503OnClosing: false,
  });
  const registry = new Registry();
  const metrics = createGatewayMetrics(registry);
  // Once per app: the backend's own metrics (Triton's upstream calls) join the app's registry.
  deps.backend.registerMetrics?.(registry);
  const tokenizer = deps.tokenizer ?? loadGpt2Tokenizer();
  // Large texts are encoded in worker threads, off the event loop.
  let pool = deps.tokenizerPool;
  if (pool === undefined) {
    const own = new TokenizerPool({ tokenizer });
    app.addHook('onClose', () => own.close());
    pool = own;
  }
  const promptTokenizer = new PromptTokenizer(tokenizer, pool);
  const now = deps.now ?? (() => performance.now());
  const scheduler = new Scheduler({
    backend: deps.backend,
    tokenizer,
    metrics,
    maxBatchSize: config.maxBatchSize,
    maxQueue: config.maxQueue,
    prefillChunkTokens: config.prefillChunkTokens,
    prefillStepSlowdown: config.prefillStepSlowdown,
    maxBatchTotalTokens: config.maxBatchTotalTokens,
    now,
  });
  app.decorate('metricsRegistry', registry);
  app.decorate('drain', () => scheduler.drain());
  app.decorate('endGenerations', () => scheduler.abortAll(shutdownDeadlineError()));
  // Closing is not waiting: a graceful wait is drain() first (server.ts bounds it). Whatever is
  // still running is ended here, so close() never waits on a generation (at most on one step).
  app.addHook('preClose', async () => {
    scheduler.abortAll(shutdownDeadlineError());
    await scheduler.drain();
  });
  const apiKeys = await openKeys(app, config, deps);
  const metricsServer =
    config.metricsPort === undefined
      ? undefined
      : await buildMetricsServer(config, deps, registry, metrics);
  app.decorate('metricsServer', metricsServer);
  app.addHook('onClose', async () => {
    apiKeys?.close();
    await metricsServer?.close();
  });

  // Only JSON bodies: text/plain (fastify's other default parser) must be a 415, not a 400.
  app.removeContentTypeParser('text/plain');
  // UTF-8 only and well-formed strings only, for every route that takes JSON.
  installStrictJsonParser(app);
  installLingeringClose(app);
  app.addSchema(errorBodySchema);
  app.addSchema(openAIErrorBodySchema);
  installErrorHandler(app, metrics, config.bodyLimitBytes);
  installHttpMetrics(app, metrics, now);
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  // Before the rate limiter: its budget belongs to the client the key names.
  await app.register(
    authPlugin({
      store: apiKeys?.store,
      // The playground's page and assets hold no data; the page asks for a key itself.
      isOpen: (request) => {
        if (request.method !== 'GET' && request.method !== 'HEAD') return false;
        const path = request.url.split('?')[0] ?? '';
        return path === '/' || path.startsWith(PLAYGROUND_ASSET_PREFIX);
      },
      errorReply: (request, reply, _status, code, message) => {
        const error = new GatewayError(code, message);
        recordError(request.log, metrics, error, undefined);
        return sendError(request, reply, error);
      },
    }),
  );

  let limit: object | undefined;
  if (config.rateLimit.max > 0) {
    await app.register(rateLimit, {
      global: false,
      keyGenerator: rateLimitKey,
      errorResponseBuilder: (_request, context) =>
        new GatewayError(
          'RATE_LIMITED',
          `rate limit of ${context.max} requests per ${config.rateLimit.windowMs / 1000} s exceeded; retry in ${context.after}`,
          { retryAfterSeconds: Math.max(1, Math.ceil(context.ttl / 1000)) },
        ),
    });
    limit = { max: config.rateLimit.max, timeWindow: config.rateLimit.windowMs };
  }
  const backend = deps.backend;
  await app.register(probeRoutes, {
    backend,
    scheduler,
    config,
    model: deps.model ?? { randomWeights: false },
    authRequired: apiKeys !== undefined,
  });
  if (metricsServer === undefined) await app.register(metricsRoute, { registry });
  await app.register(tokenizeRoute, { tokenizer: promptTokenizer, rateLimit: limit });
  // /complete and /v1/completions: two wire formats over the same generation machinery.
  const generation = {
    backend,
    tokenizer: promptTokenizer,
    scheduler,
    metrics,
    maxNewTokensLimit: config.maxNewTokensLimit,
    defaultMaxNewTokens: config.defaultMaxNewTokens,
    rateLimit: limit,
    now,
  };
  await app.register(completeRoutes, generation);
  await app.register(openAICompletionsRoutes, generation);
  await app.register(openAIModelsRoutes, { backend, created: Math.floor(Date.now() / 1000) });
  await app.register(playgroundRoutes);
  await app.ready();
  return app;
}

function shutdownDeadlineError(): GatewayError {
  return new GatewayError(
    'SHUTTING_DOWN',
    'the server is shutting down and ended this generation before it finished; retry on another instance',
  );
}

/**
 * The keys file, when API_KEYS_FILE names one: a file that cannot be read or parsed rejects
 * (with its line number) and stops the start. Later versions replace the keys without a restart;
 * a broken one keeps the old keys and is logged at error. Log lines carry client names and line
 * numbers only: the keys file module never puts key text into an error.
 */
async function openKeys(
  app: FastifyInstance,
  config: Config,
  deps: AppDeps,
): Promise<ApiKeysFile | undefined> {
  if (config.apiKeysFile === undefined) {
    app.log.warn('API_KEYS_FILE is unset: every route is open to anyone who can reach the gateway');
    return undefined;
  }
  const file = await openApiKeysFile(config.apiKeysFile, {
    ...(deps.apiKeysPollIntervalMs === undefined
      ? {}
      : { pollIntervalMs: deps.apiKeysPollIntervalMs }),
    onReload: (event) => {
      if (event.kind === 'reloaded') {
        app.log.info({ clients: event.clientNames }, 'API keys reloaded');
      } else {
        app.log.error(
          { err: { type: event.error.name, message: event.error.message } },
          'the new API keys file is refused; the previous keys stay in force',
        );
      }
    },
  });
  app.log.info({ clients: file.store.clientNames }, 'API keys loaded');
  return file;
}

/** The /metrics listener of METRICS_PORT: the same registry, the same logger, nothing else. */
async function buildMetricsServer(
  config: Config,
  deps: AppDeps,
  registry: Registry,
  metrics: GatewayMetrics,
): Promise<FastifyInstance> {
  // The same bounds, cap and parser answers as the API port: a scrape port is a socket too.
  const server = boundedServer(config, deps);
  installErrorHandler(server, metrics, config.bodyLimitBytes);
  await server.register(metricsRoute, { registry });
  await server.ready();
  return server;
}

/**
 * Per authenticated client (the name the keys file gives its key), else per client address. A
 * key that was not checked never names a budget: a client could mint a fresh budget with every
 * made-up key.
 */
function rateLimitKey(request: { clientName: string | undefined; ip: string }): string {
  return request.clientName === undefined ? `ip:${request.ip}` : `client:${request.clientName}`;
}
