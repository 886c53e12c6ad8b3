/**
 * The service's configuration: parsed once from the environment at boot, every violation
 * reported at once, frozen. Nothing else reads process.env; tests pass literals. Every variable,
 * its default and its bounds are one row of SETTINGS below: loadConfig reads through it and
 * `serve --help` prints it.
 */

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const BACKENDS = ['embedded', 'triton'] as const;
export type BackendKind = (typeof BACKENDS)[number];
const TRITON_WIRES = ['binary', 'json'] as const;

/** One environment variable: how to read it, its default, and a word for `serve --help`. */
export type Setting = { readonly group: 'gateway' | 'triton'; readonly note?: string } & (
  | { readonly kind: 'string'; readonly fallback: string | undefined }
  | {
      readonly kind: 'int';
      readonly fallback: number | undefined;
      readonly min: number;
      readonly max: number;
    }
  | { readonly kind: 'bool'; readonly fallback: boolean }
  | { readonly kind: 'choice'; readonly choices: readonly string[]; readonly fallback: string }
  | { readonly kind: 'url' }
);

/** Every variable the gateway reads, in the order `serve --help` lists them. */
export const SETTINGS = {
  HOST: { group: 'gateway', kind: 'string', fallback: '0.0.0.0' },
  PORT: { group: 'gateway', kind: 'int', fallback: 8080, min: 0, max: 65_535 },
  /** /metrics on its own listener, off the API port (fastify's own recommendation). */
  METRICS_PORT: {
    group: 'gateway',
    kind: 'int',
    fallback: undefined,
    min: 0,
    max: 65_535,
    note: 'unset: /metrics on PORT',
  },
  /** `<client-name>:<key>` lines; unset: no authentication (a warning at start). */
  API_KEYS_FILE: {
    group: 'gateway',
    kind: 'string',
    fallback: undefined,
    note: 'unset: open to anyone',
  },
  LOG_LEVEL: { group: 'gateway', kind: 'choice', choices: LOG_LEVELS, fallback: 'info' },
  /** Trust X-Forwarded-For (behind an ingress) so rate limits key on the real client address. */
  TRUST_PROXY: { group: 'gateway', kind: 'bool', fallback: false },
  BACKEND: { group: 'gateway', kind: 'choice', choices: BACKENDS, fallback: 'embedded' },
  MODEL_REPOSITORY: { group: 'gateway', kind: 'string', fallback: './models' },
  MODEL_NAME: {
    group: 'gateway',
    kind: 'string',
    fallback: undefined,
    note: 'unset: random-weight gpt2',
  },
  /**
   * Generations stepped together in one backend call (continuous batching). 16: on the 2-core
   * build machine the bare loop's tokens/s still grows ~1.4× from 8 to 16 and flattens beyond
   * (`npm run bench:floor`), while each step's latency keeps growing with the batch.
   */
  MAX_BATCH_SIZE: { group: 'gateway', kind: 'int', fallback: 16, min: 1, max: 256 },
  /**
   * Most prompt tokens prefilled per step over all generations (chunked prefill), so that a long
   * prompt delays running streams by one chunk per step, not by its whole prefill. 64: on two
   * cores a 64-token chunk costs about 5-10 batch-1 decode steps while the whole prefill of a
   * 1000-token prompt costs ~1.3-2× an unchunked one (`npm run bench:floor`), and smaller fixed
   * chunks prefill slower still (a run reads every weight whatever its tokens). While streams
   * decode, PREFILL_STEP_SLOWDOWN sizes the chunk below this from what steps cost.
   */
  PREFILL_CHUNK_TOKENS: {
    group: 'gateway',
    kind: 'int',
    fallback: 64,
    min: 0,
    max: 1_000_000,
    note: '0 = whole prompts',
  },
  /**
   * A step that feeds prompt tokens is sized to take at most this many times the fastest decode
   * step of the last 64 (a stream's usual gap), so the chunk shrinks below PREFILL_CHUNK_TOKENS
   * as the prompt's context and the running decodes grow (src/generation/prefill-budget.ts);
   * never below 16 tokens. Embedded backend only (it measures its runs). 5: see the README's
   * Benchmark section.
   */
  PREFILL_STEP_SLOWDOWN: {
    group: 'gateway',
    kind: 'int',
    fallback: 5,
    min: 0,
    max: 1000,
    note: '0 = always PREFILL_CHUNK_TOKENS',
  },
  /**
   * Bound on the sum of prompt + max_new_tokens over the generations running at once: the tokens
   * their KV caches may hold. The embedded gpt2 keeps 72 KiB per token per cache copy and up to
   * ~4 copies at a step's peak, so 8192 tokens (eight full 1024-token contexts) is ~2.3 GiB of
   * KV at worst; 16 generations of ~900-token prompts unbounded peaked at 6.25 GiB RSS (`npm run
   * soak`). Short requests never meet it. The next queued generation waits until it fits.
   */
  MAX_BATCH_TOTAL_TOKENS: {
    group: 'gateway',
    kind: 'int',
    fallback: 8192,
    min: 0,
    max: 100_000_000,
    note: '0 = no bound',
  },
  /** Embedded backend: a step running longer counts as a hung inference worker (restarted). */
  EMBEDDED_STEP_TIMEOUT_MS: {
    group: 'gateway',
    kind: 'int',
    fallback: 120_000,
    min: 1000,
    max: 3_600_000,
  },
  /** Generations allowed to wait for a batch slot; beyond it /complete answers 503. */
  MAX_QUEUE: { group: 'gateway', kind: 'int', fallback: 64, min: 0, max: 100_000 },
  MAX_NEW_TOKENS_LIMIT: { group: 'gateway', kind: 'int', fallback: 512, min: 1, max: 1_000_000 },
  /** OpenAI's and vLLM's default for max_tokens (never above MAX_NEW_TOKENS_LIMIT). */
  DEFAULT_MAX_NEW_TOKENS: { group: 'gateway', kind: 'int', fallback: 16, min: 1, max: 1_000_000 },
  /** Requests per window per API key or client address on /complete and /tokenize. */
  RATE_LIMIT_MAX: {
    group: 'gateway',
    kind: 'int',
    fallback: 120,
    min: 0,
    max: 1_000_000_000,
    note: '0 = off',
  },
  RATE_LIMIT_WINDOW_MS: {
    group: 'gateway',
    kind: 'int',
    fallback: 60_000,
    min: 1,
    max: 86_400_000,
  },
  /**
   * A 1024-token prompt of ordinary text is about 5 KB, so 64 KiB leaves ample room. The bound
   * also caps tokenizing on the event loop: BPE of one long unbroken word costs ~8 µs per char.
   */
  BODY_LIMIT_BYTES: { group: 'gateway', kind: 'int', fallback: 64 * 1024, min: 1024, max: 1 << 30 },
  SHUTDOWN_TIMEOUT_MS: { group: 'gateway', kind: 'int', fallback: 30_000, min: 0, max: 3_600_000 },
  /**
   * Headers and body must all arrive within this (answered 408). 30 s lets a 64 KiB body cross a
   * 20 kbit/s mobile link (about 26 s), yet a slowloris client holds a socket for at most 30 s
   * instead of forever (nginx waits 60 s between reads, Node 300 s in all).
   */
  REQUEST_TIMEOUT_MS: { group: 'gateway', kind: 'int', fallback: 30_000, min: 1, max: 3_600_000 },
  /**
   * Idle keep-alive. Longer than the idle timeout of the proxies that pool connections to us
   * (ingress-nginx upstream-keepalive-timeout 60 s, AWS ALB idle timeout 60 s), so the proxy
   * always closes first: if the gateway closed first, a request the proxy sent on the closing
   * connection would fail with 502 (AWS ALB docs, "Connection idle timeout"). Behind a proxy
   * that idles longer (Google Cloud's 600 s), set it above that.
   */
  KEEP_ALIVE_TIMEOUT_MS: {
    group: 'gateway',
    kind: 'int',
    fallback: 75_000,
    min: 1,
    max: 3_600_000,
  },
  /**
   * Open connections at most; past it new ones are closed unanswered. At most MAX_BATCH_SIZE +
   * MAX_QUEUE generations run or wait anyway; 1024 leaves room for idle pooled connections
   * (ingress-nginx keeps up to 320 per worker process) without letting idle sockets grow unbounded.
   */
  MAX_CONNECTIONS: {
    group: 'gateway',
    kind: 'int',
    fallback: 1024,
    min: 0,
    max: 1_000_000,
    note: '0 = no cap',
  },
  /** KServe v2 base URL (http://host:port); unset means "discover from SELDON_DEPLOYMENT". */
  TRITON_URL: { group: 'triton', kind: 'url' },
  /** Binary tensor extension or plain JSON; JSON is the only one the Seldon executor passes. */
  TRITON_WIRE: { group: 'triton', kind: 'choice', choices: TRITON_WIRES, fallback: 'binary' },
  TRITON_TIMEOUT_MS: { group: 'triton', kind: 'int', fallback: 10_000, min: 1, max: 3_600_000 },
  TRITON_CONNECTIONS: { group: 'triton', kind: 'int', fallback: 16, min: 1, max: 1024 },
  /** Retries of a call that failed before it was sent (refused, DNS, connect timeout). */
  TRITON_RETRIES: { group: 'triton', kind: 'int', fallback: 2, min: 0, max: 10 },
  /** Consecutive transport failures that open the circuit, and how long it stays open. */
  TRITON_BREAKER_FAILURES: { group: 'triton', kind: 'int', fallback: 5, min: 1, max: 1000 },
  TRITON_BREAKER_COOLDOWN_MS: {
    group: 'triton',
    kind: 'int',
    fallback: 5_000,
    min: 1,
    max: 3_600_000,
  },
  /** The model's max_batch_size when GET .../config is unreachable (the Seldon executor). */
  TRITON_MAX_BATCH_SIZE: {
    group: 'triton',
    kind: 'int',
    fallback: undefined,
    min: 0,
    max: 1_000_000,
  },
  /** How long start-up waits for Triton and the model to be ready (Triton may start after us). */
  TRITON_STARTUP_TIMEOUT_MS: {
    group: 'triton',
    kind: 'int',
    fallback: 120_000,
    min: 0,
    max: 86_400_000,
  },
  /**
   * /readyz follows the upstream: a health poll every interval; one with no answer within the
   * timeout (a frozen or unreachable server) is missed, and that many misses in a row make the
   * gateway not ready. Worst case from a freeze to /readyz 503: failures × max(interval, timeout).
   */
  TRITON_HEALTH_INTERVAL_MS: {
    group: 'triton',
    kind: 'int',
    fallback: 2_000,
    min: 0,
    max: 3_600_000,
    note: '0 = off',
  },
  TRITON_HEALTH_TIMEOUT_MS: { group: 'triton', kind: 'int', fallback: 2_000, min: 1, max: 600_000 },
  TRITON_HEALTH_FAILURES: { group: 'triton', kind: 'int', fallback: 2, min: 1, max: 100 },
  SELDON_DEPLOYMENT: { group: 'triton', kind: 'string', fallback: undefined },
  SELDON_NAMESPACE: { group: 'triton', kind: 'string', fallback: undefined },
  SELDON_PREDICTOR: { group: 'triton', kind: 'string', fallback: undefined },
  SELDON_GRAPH: { group: 'triton', kind: 'string', fallback: undefined },
} as const satisfies Record<string, Setting>;

export type SettingName = keyof typeof SETTINGS;
type Of<K extends Setting['kind']> = {
  [N in SettingName]: (typeof SETTINGS)[N]['kind'] extends K ? N : never;
}[SettingName];

/**
 * Triton defaults for a backend built without a Config (tests, benches); their one home is the
 * table above.
 */
export const DEFAULT_TRITON_STARTUP_TIMEOUT_MS = SETTINGS.TRITON_STARTUP_TIMEOUT_MS.fallback;
export const DEFAULT_TRITON_RETRIES = SETTINGS.TRITON_RETRIES.fallback;
export const DEFAULT_TRITON_BREAKER_FAILURES = SETTINGS.TRITON_BREAKER_FAILURES.fallback;
export const DEFAULT_TRITON_BREAKER_COOLDOWN_MS = SETTINGS.TRITON_BREAKER_COOLDOWN_MS.fallback;
export const DEFAULT_TRITON_HEALTH_INTERVAL_MS = SETTINGS.TRITON_HEALTH_INTERVAL_MS.fallback;
export const DEFAULT_TRITON_HEALTH_TIMEOUT_MS = SETTINGS.TRITON_HEALTH_TIMEOUT_MS.fallback;
export const DEFAULT_TRITON_HEALTH_FAILURES = SETTINGS.TRITON_HEALTH_FAILURES.fallback;

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
  /** Background health poll: interval (0 = off), per-poll timeout, misses before not ready. */
  readonly healthIntervalMs: number;
  readonly healthTimeoutMs: number;
  readonly healthFailures: number;
  readonly seldonDeployment: string | undefined;
  readonly seldonNamespace: string | undefined;
  readonly seldonPredictor: string | undefined;
  readonly seldonGraph: string | undefined;
}

export interface Config {
  readonly host: string;
  readonly port: number;
  /** Where /metrics listens instead of `port`; undefined: on `port`, beside the API. */
  readonly metricsPort: number | undefined;
  /** The API keys file; undefined: every route is open. */
  readonly apiKeysFile: string | undefined;
  readonly logLevel: LogLevel;
  /** Trust X-Forwarded-For (behind an ingress) so rate limits key on the real client address. */
  readonly trustProxy: boolean;
  readonly backend: BackendKind;
  readonly modelRepository: string;
  /** Unset: the embedded backend builds (once) and serves a random-weight GPT-2. */
  readonly modelName: string | undefined;
  readonly maxBatchSize: number;
  /** Prompt tokens fed per step in all; 0 feeds every prompt whole in one step. */
  readonly prefillChunkTokens: number;
  /** How many times the usual decode gap a step with prompt tokens may take; 0: no sizing. */
  readonly prefillStepSlowdown: number;
  readonly maxBatchTotalTokens: number;
  /** The embedded backend's watchdog on one step of its inference worker. */
  readonly embeddedStepTimeoutMs: number;
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

/** Reads one variable at a time by its row of SETTINGS, collecting every problem at once. */
class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  raw(name: SettingName): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  }

  string<N extends Of<'string'>>(name: N): (typeof SETTINGS)[N]['fallback'] | string {
    return this.raw(name) ?? SETTINGS[name].fallback;
  }

  /** An integer within the row's bounds; `fallback` overrides the row's (a derived default). */
  int<N extends Of<'int'>>(
    name: N,
    fallback: number | undefined = SETTINGS[name].fallback,
  ): (typeof SETTINGS)[N]['fallback'] | number {
    const { min, max } = SETTINGS[name];
    const value = this.raw(name);
    if (value === undefined) return fallback as (typeof SETTINGS)[N]['fallback'];
    if (!/^-?\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      this.problems.push(`${name} must be an integer from ${min} to ${max}, got '${value}'`);
      return fallback as (typeof SETTINGS)[N]['fallback'];
    }
    return Number(value);
  }

  oneOf<T extends string>(name: Of<'choice'>, choices: readonly T[]): T {
    const fallback = SETTINGS[name].fallback as T;
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const found = choices.find((choice) => choice === value.toLowerCase());
    if (found === undefined) {
      this.problems.push(`${name} must be one of ${choices.join(', ')}, got '${value}'`);
      return fallback;
    }
    return found;
  }

  bool(name: Of<'bool'>): boolean {
    const fallback = SETTINGS[name].fallback;
    const value = this.raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (value === 'true' || value === '1') return true;
    if (value === 'false' || value === '0') return false;
    this.problems.push(`${name} must be true or false, got '${value}'`);
    return fallback;
  }

  url(name: Of<'url'>): string | undefined {
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
  const maxNewTokensLimit = read.int('MAX_NEW_TOKENS_LIMIT');
  const defaultMaxNewTokens = read.int(
    'DEFAULT_MAX_NEW_TOKENS',
    Math.min(SETTINGS.DEFAULT_MAX_NEW_TOKENS.fallback, maxNewTokensLimit),
  );
  if (defaultMaxNewTokens > maxNewTokensLimit) {
    read.problems.push(
      `DEFAULT_MAX_NEW_TOKENS (${defaultMaxNewTokens}) must not exceed MAX_NEW_TOKENS_LIMIT (${maxNewTokensLimit})`,
    );
  }
  const modelName = read.string('MODEL_NAME');
  if (modelName !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(modelName)) {
    read.problems.push(
      `MODEL_NAME must be a model directory name (letters, digits, '.', '_', '-'), got '${modelName}'`,
    );
  }
  const config: Config = {
    host: read.string('HOST'),
    port: read.int('PORT'),
    metricsPort: read.int('METRICS_PORT'),
    apiKeysFile: read.string('API_KEYS_FILE'),
    logLevel: read.oneOf('LOG_LEVEL', LOG_LEVELS),
    trustProxy: read.bool('TRUST_PROXY'),
    backend: read.oneOf('BACKEND', BACKENDS),
    modelRepository: read.string('MODEL_REPOSITORY'),
    modelName,
    maxBatchSize: read.int('MAX_BATCH_SIZE'),
    prefillChunkTokens: read.int('PREFILL_CHUNK_TOKENS'),
    prefillStepSlowdown: read.int('PREFILL_STEP_SLOWDOWN'),
    maxBatchTotalTokens: read.int('MAX_BATCH_TOTAL_TOKENS'),
    embeddedStepTimeoutMs: read.int('EMBEDDED_STEP_TIMEOUT_MS'),
    maxQueue: read.int('MAX_QUEUE'),
    maxNewTokensLimit,
    defaultMaxNewTokens,
    rateLimit: { max: read.int('RATE_LIMIT_MAX'), windowMs: read.int('RATE_LIMIT_WINDOW_MS') },
    bodyLimitBytes: read.int('BODY_LIMIT_BYTES'),
    shutdownTimeoutMs: read.int('SHUTDOWN_TIMEOUT_MS'),
    requestTimeoutMs: read.int('REQUEST_TIMEOUT_MS'),
    keepAliveTimeoutMs: read.int('KEEP_ALIVE_TIMEOUT_MS'),
    maxConnections: read.int('MAX_CONNECTIONS'),
    triton: {
      url: read.url('TRITON_URL'),
      wire: read.oneOf('TRITON_WIRE', TRITON_WIRES),
      timeoutMs: read.int('TRITON_TIMEOUT_MS'),
      connections: read.int('TRITON_CONNECTIONS'),
      retries: read.int('TRITON_RETRIES'),
      breakerFailures: read.int('TRITON_BREAKER_FAILURES'),
      breakerCooldownMs: read.int('TRITON_BREAKER_COOLDOWN_MS'),
      startupTimeoutMs: read.int('TRITON_STARTUP_TIMEOUT_MS'),
      maxBatchSize: read.int('TRITON_MAX_BATCH_SIZE'),
      healthIntervalMs: read.int('TRITON_HEALTH_INTERVAL_MS'),
      healthTimeoutMs: read.int('TRITON_HEALTH_TIMEOUT_MS'),
      healthFailures: read.int('TRITON_HEALTH_FAILURES'),
      seldonDeployment: read.string('SELDON_DEPLOYMENT'),
      seldonNamespace: read.string('SELDON_NAMESPACE'),
      seldonPredictor: read.string('SELDON_PREDICTOR'),
      seldonGraph: read.string('SELDON_GRAPH'),
    },
  };
  if (
    config.metricsPort !== undefined &&
    config.metricsPort !== 0 &&
    config.metricsPort === config.port
  ) {
    read.problems.push(
      `METRICS_PORT must differ from PORT (${config.port}), or be unset to serve /metrics on PORT`,
    );
  }
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

/** `serve --help`'s list of variables, one group at a time, from SETTINGS. */
export function settingsHelp(group: Setting['group'], width = 100): string {
  const entries = Object.entries(SETTINGS as Record<SettingName, Setting>)
    .filter(([, setting]) => setting.group === group)
    .map(([name, setting]) => {
      const shown = describe(setting);
      return shown === undefined ? name : `${name} (${shown})`;
    });
  const lines: string[] = [];
  let line = '';
  for (const entry of entries) {
    if (line !== '' && 2 + line.length + 2 + entry.length > width) {
      lines.push(`  ${line}`);
      line = '';
    }
    line = line === '' ? entry : `${line}  ${entry}`;
  }
  if (line !== '') lines.push(`  ${line}`);
  return lines.join('\n');
}

function describe(setting: Setting): string | undefined {
  const note = setting.note === undefined ? '' : `, ${setting.note}`;
  switch (setting.kind) {
    case 'choice':
      // A short list reads best in full; a long one (LOG_LEVEL) by its default.
      return setting.choices.length <= 3
        ? [setting.fallback, ...setting.choices.filter((c) => c !== setting.fallback)].join(' | ')
        : `${setting.fallback}${note}`;
    case 'url':
      return setting.note;
    case 'string':
    case 'int':
      if (setting.fallback === undefined)
        return setting.note ?? (setting.kind === 'int' ? 'unset' : undefined);
      return `${setting.fallback}${note}`;
    case 'bool':
      return `${setting.fallback}${note}`;
  }
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (typeof child === 'object' && child !== null) deepFreeze(child);
  }
  return Object.freeze(value);
}
