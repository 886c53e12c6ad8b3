/**
 * The service's configuration: parsed once from the environment at boot (CONVENTIONS.md 2),
 * every violation reported at once, frozen. Nothing else reads process.env; tests pass literals.
 */

export const DEFAULT_HOST = '0.0.0.0';
export const DEFAULT_PORT = 8080;
export const DEFAULT_LOG_LEVEL = 'info';
export const DEFAULT_MODEL_REPOSITORY = './models';
/** Generations stepped together in one backend call (continuous batching). */
export const DEFAULT_MAX_BATCH_SIZE = 8;
/** Generations allowed to wait for a batch slot; beyond it /complete answers 503. */
export const DEFAULT_MAX_QUEUE = 64;
export const DEFAULT_MAX_NEW_TOKENS_LIMIT = 512;
/** OpenAI's and vLLM's default for max_tokens. */
export const DEFAULT_DEFAULT_MAX_NEW_TOKENS = 16;
/** Requests per window per API key or client address on /complete and /tokenize; 0 disables. */
export const DEFAULT_RATE_LIMIT_MAX = 120;
export const DEFAULT_RATE_LIMIT_WINDOW_MS = 60_000;
/**
 * A 1024-token prompt of ordinary text is about 5 KB, so 64 KiB leaves ample room. The bound also
 * caps tokenizing on the event loop: BPE of one long unbroken word costs ~8 µs per character.
 */
export const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024;
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 30_000;
/**
 * Headers and body must all arrive within this (answered 408). 30 s lets a 64 KiB body cross a
 * 20 kbit/s mobile link (GPRS-class, 26 s), yet a slowloris client holds a socket
 * for at most 30 s instead of forever (nginx waits 60 s between reads, Node 300 s in all).
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/**
 * Idle keep-alive. Longer than the idle timeout of the proxies that pool connections to us
 * (ingress-nginx upstream-keepalive-timeout 60 s, AWS ALB idle timeout 60 s), so the proxy
 * always closes first: if the gateway closed first, a request the proxy sent on the closing
 * connection would fail with 502 (AWS: "configure the idle timeout of your application to be
 * larger than the idle timeout configured for the load balancer", ALB docs, "Connection idle
 * timeout"). Behind a proxy that idles longer (Google Cloud's 600 s), set it above that.
 */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 75_000;
/**
 * Open connections at most; past it new ones are closed unanswered. At most MAX_BATCH_SIZE +
 * MAX_QUEUE (72) generations run or wait anyway; 1024 leaves room for idle pooled connections
 * (ingress-nginx keeps up to 320 per worker process) without letting a flood of idle sockets grow
 * without bound.
 */
export const DEFAULT_MAX_CONNECTIONS = 1024;
export const DEFAULT_TRITON_TIMEOUT_MS = 10_000;
export const DEFAULT_TRITON_CONNECTIONS = 16;
/** Retries of a call that failed before it was sent (refused, DNS, connect timeout). */
export const DEFAULT_TRITON_RETRIES = 2;
/** Consecutive transport failures that open the circuit, and how long it stays open. */
export const DEFAULT_TRITON_BREAKER_FAILURES = 5;
export const DEFAULT_TRITON_BREAKER_COOLDOWN_MS = 5_000;
/** How long start-up waits for Triton and the model to be ready (Triton may start after us). */
export const DEFAULT_TRITON_STARTUP_TIMEOUT_MS = 120_000;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const BACKENDS = ['embedded', 'triton'] as const;
export type BackendKind = (typeof BACKENDS)[number];
const TRITON_WIRES = ['binary', 'json'] as const;

export interface TritonConfig {
  /** KServe v2 base URL (http://host:port); unset means "discover from SELDON_DEPLOYMENT". */
  readonly url: string | undefined;
  /** Binary tensor extension or plain JSON; JSON is the only one the Seldon executor passes. */
  readonly wire: 'binary' | 'json';
  readonly timeoutMs: number;
  readonly connections: number;
  readonly retries: number;
  readonly breakerFailures: number;
  readonly breakerCooldownMs: number;
  readonly startupTimeoutMs: number;
  /** The model's max_batch_size when GET .../config is unreachable (the Seldon executor). */
  readonly maxBatchSize: number | undefined;
  readonly seldonDeployment: string | undefined;
  readonly seldonNamespace: string | undefined;
  readonly seldonPredictor: string | undefined;
  readonly seldonGraph: string | undefined;
}

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly logLevel: LogLevel;
  /** Trust X-Forwarded-For (behind an ingress) so rate limits key on the real client address. */
  readonly trustProxy: boolean;
  readonly backend: BackendKind;
  readonly modelRepository: string;
  /** Unset: the embedded backend builds (once) and serves a random-weight GPT-2. */
  readonly modelName: string | undefined;
  readonly maxBatchSize: number;
  readonly maxQueue: number;
  readonly maxNewTokensLimit: number;
  readonly defaultMaxNewTokens: number;
  readonly rateLimit: { readonly max: number; readonly windowMs: number };
  readonly bodyLimitBytes: number;
  readonly shutdownTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  /** 0: no cap. */
  readonly maxConnections: number;
  readonly triton: TritonConfig;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

type Env = Record<string, string | undefined>;

/** Reads one variable at a time, collecting every problem instead of stopping at the first. */
class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^-?\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      this.problems.push(`${name} must be an integer from ${min} to ${max}, got '${value}'`);
      return fallback;
    }
    return Number(value);
  }

  oneOf<T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const found = choices.find((choice) => choice === value.toLowerCase());
    if (found === undefined) {
      this.problems.push(`${name} must be one of ${choices.join(', ')}, got '${value}'`);
      return fallback;
    }
    return found;
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (value === 'true' || value === '1') return true;
    if (value === 'false' || value === '0') return false;
    this.problems.push(`${name} must be true or false, got '${value}'`);
    return fallback;
  }

  url(name: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    try {
      const parsed = new URL(value);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('scheme');
    } catch {
      this.problems.push(`${name} must be an http(s) URL, got '${value}'`);
      return undefined;
    }
    return value.replace(/\/+$/, '');
  }
}

export function loadConfig(env: Env): Config {
  const read = new EnvReader(env);
  const maxNewTokensLimit = read.int(
    'MAX_NEW_TOKENS_LIMIT',
    DEFAULT_MAX_NEW_TOKENS_LIMIT,
    1,
    1_000_000,
  );
  const defaultMaxNewTokens = read.int(
    'DEFAULT_MAX_NEW_TOKENS',
    Math.min(DEFAULT_DEFAULT_MAX_NEW_TOKENS, maxNewTokensLimit),
    1,
    1_000_000,
  );
  if (defaultMaxNewTokens > maxNewTokensLimit) {
    read.problems.push(
      `DEFAULT_MAX_NEW_TOKENS (${defaultMaxNewTokens}) must not exceed MAX_NEW_TOKENS_LIMIT (${maxNewTokensLimit})`,
    );
  }
  const modelName = read.raw('MODEL_NAME');
  if (modelName !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(modelName)) {
    read.problems.push(
      `MODEL_NAME must be a model directory name (letters, digits, '.', '_', '-'), got '${modelName}'`,
    );
  }
  const config: Config = {
    host: read.string('HOST', DEFAULT_HOST),
    port: read.int('PORT', DEFAULT_PORT, 0, 65_535),
    logLevel: read.oneOf('LOG_LEVEL', LOG_LEVELS, DEFAULT_LOG_LEVEL),
    trustProxy: read.bool('TRUST_PROXY', false),
    backend: read.oneOf('BACKEND', BACKENDS, 'embedded'),
    modelRepository: read.string('MODEL_REPOSITORY', DEFAULT_MODEL_REPOSITORY),
    modelName,
    maxBatchSize: read.int('MAX_BATCH_SIZE', DEFAULT_MAX_BATCH_SIZE, 1, 256),
    maxQueue: read.int('MAX_QUEUE', DEFAULT_MAX_QUEUE, 0, 100_000),
    maxNewTokensLimit,
    defaultMaxNewTokens,
    rateLimit: {
      max: read.int('RATE_LIMIT_MAX', DEFAULT_RATE_LIMIT_MAX, 0, 1_000_000_000),
      windowMs: read.int('RATE_LIMIT_WINDOW_MS', DEFAULT_RATE_LIMIT_WINDOW_MS, 1, 86_400_000),
    },
    bodyLimitBytes: read.int('BODY_LIMIT_BYTES', DEFAULT_BODY_LIMIT_BYTES, 1024, 1 << 30),
    shutdownTimeoutMs: read.int('SHUTDOWN_TIMEOUT_MS', DEFAULT_SHUTDOWN_TIMEOUT_MS, 0, 3_600_000),
    requestTimeoutMs: read.int('REQUEST_TIMEOUT_MS', DEFAULT_REQUEST_TIMEOUT_MS, 1, 3_600_000),
    keepAliveTimeoutMs: read.int(
      'KEEP_ALIVE_TIMEOUT_MS',
      DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
      1,
      3_600_000,
    ),
    maxConnections: read.int('MAX_CONNECTIONS', DEFAULT_MAX_CONNECTIONS, 0, 1_000_000),
    triton: {
      url: read.url('TRITON_URL'),
      wire: read.oneOf('TRITON_WIRE', TRITON_WIRES, 'binary'),
      timeoutMs: read.int('TRITON_TIMEOUT_MS', DEFAULT_TRITON_TIMEOUT_MS, 1, 3_600_000),
      connections: read.int('TRITON_CONNECTIONS', DEFAULT_TRITON_CONNECTIONS, 1, 1024),
      retries: read.int('TRITON_RETRIES', DEFAULT_TRITON_RETRIES, 0, 10),
      breakerFailures: read.int(
        'TRITON_BREAKER_FAILURES',
        DEFAULT_TRITON_BREAKER_FAILURES,
        1,
        1000,
      ),
      breakerCooldownMs: read.int(
        'TRITON_BREAKER_COOLDOWN_MS',
        DEFAULT_TRITON_BREAKER_COOLDOWN_MS,
        1,
        3_600_000,
      ),
      startupTimeoutMs: read.int(
        'TRITON_STARTUP_TIMEOUT_MS',
        DEFAULT_TRITON_STARTUP_TIMEOUT_MS,
        0,
        86_400_000,
      ),
      maxBatchSize:
        read.raw('TRITON_MAX_BATCH_SIZE') === undefined
          ? undefined
          : read.int('TRITON_MAX_BATCH_SIZE', 0, 0, 1_000_000),
      seldonDeployment: read.raw('SELDON_DEPLOYMENT'),
      seldonNamespace: read.raw('SELDON_NAMESPACE'),
      seldonPredictor: read.raw('SELDON_PREDICTOR'),
      seldonGraph: read.raw('SELDON_GRAPH'),
    },
  };
  if (
    config.backend === 'triton' &&
    config.triton.url === undefined &&
    config.triton.seldonDeployment === undefined
  ) {
    read.problems.push('BACKEND=triton needs TRITON_URL or SELDON_DEPLOYMENT');
  }
  if (read.problems.length > 0) throw new ConfigError(read.problems);
  return deepFreeze(config);
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (typeof child === 'object' && child !== null) deepFreeze(child);
  }
  return Object.freeze(value);
}
