import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.js';

test('defaults match the documented ones', () => {
  const config = loadConfig({});
  assert.deepEqual(config, {
    host: '0.0.0.0',
    port: 8080,
    metricsPort: undefined,
    apiKeysFile: undefined,
    logLevel: 'info',
    trustProxy: false,
    backend: 'embedded',
    modelRepository: './models',
    modelName: undefined,
    maxBatchSize: 16,
    prefillChunkTokens: 64,
    prefillStepSlowdown: 5,
    maxBatchTotalTokens: 8192,
    embeddedStepTimeoutMs: 120_000,
    maxQueue: 64,
    maxNewTokensLimit: 512,
    defaultMaxNewTokens: 16,
    rateLimit: { max: 120, windowMs: 60_000 },
    bodyLimitBytes: 65_536,
    shutdownTimeoutMs: 30_000,
    requestTimeoutMs: 30_000,
    keepAliveTimeoutMs: 75_000,
    maxConnections: 1024,
    triton: {
      url: undefined,
      wire: 'binary',
      timeoutMs: 10_000,
      connections: 16,
      retries: 2,
      breakerFailures: 5,
      breakerCooldownMs: 5000,
      startupTimeoutMs: 120_000,
      maxBatchSize: undefined,
      healthIntervalMs: 2000,
      healthTimeoutMs: 2000,
      healthFailures: 2,
      seldonDeployment: undefined,
      seldonNamespace: undefined,
      seldonPredictor: undefined,
      seldonGraph: undefined,
    },
  });
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.triton));
});

test('every variable is read', () => {
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '9000',
    LOG_LEVEL: 'DEBUG',
    TRUST_PROXY: 'true',
    BACKEND: 'triton',
    MODEL_REPOSITORY: '/models',
    MODEL_NAME: 'gpt2-kv',
    MAX_BATCH_SIZE: '4',
    MAX_QUEUE: '0',
    MAX_NEW_TOKENS_LIMIT: '100',
    DEFAULT_MAX_NEW_TOKENS: '10',
    RATE_LIMIT_MAX: '5',
    RATE_LIMIT_WINDOW_MS: '1000',
    BODY_LIMIT_BYTES: '4096',
    SHUTDOWN_TIMEOUT_MS: '5',
    TRITON_URL: 'http://triton:8000/',
    TRITON_WIRE: 'json',
    TRITON_TIMEOUT_MS: '2000',
    TRITON_CONNECTIONS: '3',
    TRITON_RETRIES: '0',
    TRITON_BREAKER_FAILURES: '2',
    TRITON_BREAKER_COOLDOWN_MS: '250',
    TRITON_STARTUP_TIMEOUT_MS: '0',
    TRITON_MAX_BATCH_SIZE: '4',
    TRITON_HEALTH_INTERVAL_MS: '0',
    TRITON_HEALTH_TIMEOUT_MS: '500',
    TRITON_HEALTH_FAILURES: '3',
    SELDON_DEPLOYMENT: 'gpt2',
    SELDON_NAMESPACE: 'ml',
    SELDON_PREDICTOR: 'default',
    SELDON_GRAPH: 'gpt2',
  });
  assert.equal(config.logLevel, 'debug');
  assert.equal(config.trustProxy, true);
  assert.equal(config.backend, 'triton');
  assert.equal(config.maxQueue, 0);
  assert.deepEqual(config.rateLimit, { max: 5, windowMs: 1000 });
  assert.deepEqual(config.triton, {
    url: 'http://triton:8000',
    wire: 'json',
    timeoutMs: 2000,
    connections: 3,
    retries: 0,
    breakerFailures: 2,
    breakerCooldownMs: 250,
    startupTimeoutMs: 0,
    maxBatchSize: 4,
    healthIntervalMs: 0,
    healthTimeoutMs: 500,
    healthFailures: 3,
    seldonDeployment: 'gpt2',
    seldonNamespace: 'ml',
    seldonPredictor: 'default',
    seldonGraph: 'gpt2',
  });
});

test('every violation is reported at once', () => {
  assert.throws(
    () =>
      loadConfig({
        PORT: 'eighty',
        LOG_LEVEL: 'loud',
        BACKEND: 'gpu',
        MAX_BATCH_SIZE: '0',
        MAX_NEW_TOKENS_LIMIT: '10',
        DEFAULT_MAX_NEW_TOKENS: '20',
        TRITON_URL: 'ftp://x',
        MODEL_NAME: '../etc',
      }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.problems, [
        'DEFAULT_MAX_NEW_TOKENS (20) must not exceed MAX_NEW_TOKENS_LIMIT (10)',
        "MODEL_NAME must be a model directory name (letters, digits, '.', '_', '-'), got '../etc'",
        "PORT must be an integer from 0 to 65535, got 'eighty'",
        "LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got 'loud'",
        "BACKEND must be one of embedded, triton, got 'gpu'",
        "MAX_BATCH_SIZE must be an integer from 1 to 256, got '0'",
        "TRITON_URL must be an http(s) URL, got 'ftp://x'",
      ]);
      return true;
    },
  );
});

test('the triton backend needs somewhere to go', () => {
  assert.throws(() => loadConfig({ BACKEND: 'triton' }), {
    message: /BACKEND=triton needs TRITON_URL or SELDON_DEPLOYMENT/,
  });
});
