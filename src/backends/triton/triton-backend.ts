/**
 * The Triton backend: GPT-2 greedy steps as KServe v2 REST calls to NVIDIA Triton (or anything
 * that speaks its subset, such as `gpt2-gateway model-server`). A thin composition:
 * - init(): health.ts polls until server and model are ready, discovery.ts reads metadata (and
 *   config and server version where reachable), plan.ts decides how to drive the model; a model
 *   it cannot drive fails here, not at the first request. Then health.ts re-checks in the
 *   background.
 * - step(): tensors.ts packs the inputs and checks the outputs, infer-call.ts makes the call;
 *   kv models go through kv-sequences.ts, which owns correlation ids and always ends a sequence.
 * - Transport: upstream-client.ts (deadline, retries, circuit breaker, metrics) over one Pool.
 */
import type { Registry } from 'prom-client';
import { type Dispatcher, Pool } from 'undici';
import {
  DEFAULT_TRITON_BREAKER_COOLDOWN_MS,
  DEFAULT_TRITON_BREAKER_FAILURES,
  DEFAULT_TRITON_HEALTH_FAILURES,
  DEFAULT_TRITON_HEALTH_INTERVAL_MS,
  DEFAULT_TRITON_HEALTH_TIMEOUT_MS,
  DEFAULT_TRITON_RETRIES,
} from '../../config.js';
import { UpstreamMetrics } from '../../metrics/upstream-metrics.js';
import {
  type Backend,
  type BackendDescription,
  BackendError,
  type Readiness,
  type StepRequest,
  type StepResult,
} from '../backend.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { discoverModel } from './discovery.js';
import { type Logger, UpstreamHealth } from './health.js';
import { type Infer, inferCall } from './infer-call.js';
import { KvSequences } from './kv-sequences.js';
import { describePlan, type Plan, planFromMetadata, type Wire } from './plan.js';
import { readRow, statelessInputs } from './tensors.js';
import { UpstreamClient } from './upstream-client.js';

export type { Logger } from './health.js';

/** The longest a connect may take, whatever the call deadline. */
const MAX_CONNECT_TIMEOUT_MS = 10_000;

export interface TritonBackendOptions {
  /** KServe v2 base URL, e.g. http://gpt2gpu-default-gpt2.default.svc.cluster.local:9000 */
  readonly url: string;
  readonly modelName: string;
  readonly wire: Wire;
  /** Deadline for one whole call (connect, send, headers, body). */
  readonly timeoutMs: number;
  /** Pool size; also how many sequences one step may carry when the model does not batch. */
  readonly connections: number;
  /** How long init() waits for the server and model to become ready (TRITON_STARTUP_TIMEOUT_MS;
   * its default lives in config.ts). */
  readonly startupTimeoutMs: number;
  /** A dispatcher owned by the caller (not closed here); otherwise a Pool is made and closed. */
  readonly dispatcher?: Dispatcher;
  /** Calls retried when nothing was sent; default config.ts's TRITON_RETRIES default. */
  readonly retries?: number;
  /** Consecutive transport failures that open the breaker, and how long it stays open. */
  readonly breakerFailures?: number;
  readonly breakerCooldownMs?: number;
  /** Background readiness re-check; 0 turns it off. */
  readonly healthIntervalMs?: number;
  /** A health poll with no answer within this long is missed... */
  readonly healthTimeoutMs?: number;
  /** ...and this many misses in a row make the backend not ready. */
  readonly healthFailures?: number;
  readonly contextLength?: number;
  /** The model's max_batch_size when GET .../config cannot be read (the Seldon executor does
   * not route it); the config wins when it can be read. Unset: one call per sequence. */
  readonly maxBatchSize?: number;
  readonly logger?: Logger;
  /** Another readiness condition (SeldonDeployment status), ANDed with the upstream's. */
  readonly gate?: () => Readiness;
  /** Called once by close() (stops the SeldonDeployment watch). */
  readonly onClose?: () => void;
  readonly now?: () => number;
}

const nullLogger: Logger = { info() {}, warn() {}, debug() {} };

/** What init() sets up; absent until then. */
interface Ready {
  readonly plan: Plan;
  readonly description: BackendDescription;
  readonly infer: Infer;
  /** kv models only. */
  readonly sequences: KvSequences | undefined;
}

export class TritonBackend implements Backend {
  readonly #o: TritonBackendOptions;
  readonly #log: Logger;
  readonly #pool: Dispatcher;
  readonly #ownsPool: boolean;
  readonly #metrics = new UpstreamMetrics();
  readonly #client: UpstreamClient;
  readonly #breaker: CircuitBreaker;
  readonly #health: UpstreamHealth;
  readonly #modelPath: string;
  #ready: Ready | undefined;
  #closed = false;

  constructor(opts: TritonBackendOptions) {
    this.#o = opts;
    this.#log = opts.logger ?? nullLogger;
    const base = new URL(opts.url);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new Error(`TRITON_URL must be http(s)://host:port, not ${opts.url}`);
    }
    this.#ownsPool = opts.dispatcher === undefined;
    this.#pool =
      opts.dispatcher ??
      new Pool(base.origin, {
        connections: opts.connections,
        connect: { timeout: Math.min(opts.timeoutMs, MAX_CONNECT_TIMEOUT_MS) },
        // The call deadline in UpstreamClient governs; these only stop a silent socket early.
        headersTimeout: opts.timeoutMs,
        bodyTimeout: opts.timeoutMs,
      });
    const metrics = this.#metrics;
    this.#breaker = new CircuitBreaker({
      failureThreshold: opts.breakerFailures ?? DEFAULT_TRITON_BREAKER_FAILURES,
      cooldownMs: opts.breakerCooldownMs ?? DEFAULT_TRITON_BREAKER_COOLDOWN_MS,
      ...(opts.now ? { now: opts.now } : {}),
      onStateChange: (state) => {
        metrics.breakerChanged(state);
        this.#log.warn({ breaker: state, url: this.#client.url }, `model server circuit ${state}`);
      },
    });
    metrics.breakerChanged('closed');
    this.#client = new UpstreamClient({
      dispatcher: this.#pool,
      baseUrl: base,
      timeoutMs: opts.timeoutMs,
      retries: opts.retries ?? DEFAULT_TRITON_RETRIES,
      breaker: this.#breaker,
      metrics,
    });
    this.#modelPath = `/v2/models/${encodeURIComponent(opts.modelName)}`;
    this.#health = new UpstreamHealth({
      client: this.#client,
      modelName: opts.modelName,
      modelPath: this.#modelPath,
      log: this.#log,
      now: opts.now ?? Date.now,
      timeoutMs: opts.healthTimeoutMs ?? DEFAULT_TRITON_HEALTH_TIMEOUT_MS,
      failures: opts.healthFailures ?? DEFAULT_TRITON_HEALTH_FAILURES,
    });
  }

  get description(): BackendDescription {
    if (this.#ready === undefined)
      throw new BackendError('BACKEND_NOT_READY', 'the Triton backend is not initialised');
    return this.#ready.description;
  }

  /** The gpt2_gateway_upstream_* metrics join the app's registry (they count from the start). */
  registerMetrics(registry: Registry): void {
    this.#metrics.registerOn(registry);
  }

  async init(): Promise<void> {
    const o = this.#o;
    await this.#health.waitUntilReady(o.startupTimeoutMs);
    const found = await discoverModel(this.#client, this.#modelPath, this.#log);
    const plan = planFromMetadata({
      ...found,
      wire: o.wire,
      maxBatchSize: o.maxBatchSize,
      connections: o.connections,
      where: `model '${o.modelName}' on ${this.#client.url}`,
    });
    const description = describePlan({
      plan,
      modelName: o.modelName,
      url: this.#client.url,
      wire: o.wire,
      platform: found.metadata.platform,
      contextLength: o.contextLength,
      maxBatchSize: o.maxBatchSize,
    });
    const infer = inferCall(
      { client: this.#client, modelPath: this.#modelPath, wire: o.wire, log: this.#log },
      plan.outputs,
    );
    const s = plan.signature;
    const sequences = s.variant === 'kv' ? new KvSequences(s, infer, this.#log) : undefined;
    this.#ready = { plan, description, infer, sequences };
    this.#health.markReady();
    this.#log.info({ backend: description }, 'Triton backend ready');
    this.#health.start(o.healthIntervalMs ?? DEFAULT_TRITON_HEALTH_INTERVAL_MS);
  }

  readiness(): Readiness {
    if (this.#closed) return { ready: false, reason: 'the Triton backend is closed' };
    const gate = this.#o.gate?.();
    if (gate !== undefined && !gate.ready) return gate;
    const upstream = this.#health.readiness();
    if (!upstream.ready) return upstream;
    if (this.#breaker.state === 'open') {
      return {
        ready: false,
        reason: `calls to the model server at ${this.#client.url} keep failing (circuit open)`,
      };
    }
    return { ready: true };
  }

  async step(batch: readonly StepRequest[], signal?: AbortSignal): Promise<StepResult[]> {
    const ready = this.#ready;
    if (this.#closed || ready === undefined) {
      throw new BackendError(
        'BACKEND_NOT_READY',
        this.#closed ? 'the Triton backend is closed' : 'the Triton backend is not initialised',
      );
    }
    const { plan, sequences } = ready;
    if (batch.length === 0) return [];
    if (batch.length > plan.maxBatchSize) {
      throw new BackendError(
        'BACKEND_ERROR',
        `a step carries ${batch.length} sequences, more than ${plan.maxBatchSize}`,
      );
    }
    if (sequences !== undefined) return Promise.all(batch.map((r) => sequences.step(r, signal)));
    if (plan.batched) return this.#statelessStep(ready, batch, signal);
    const rows = await Promise.all(batch.map((r) => this.#statelessStep(ready, [r], signal)));
    return rows.map((r) => r[0] as StepResult);
  }

  /** Never rejects; a kv sequence is ended in the background (see KvSequences.release). */
  async release(sequenceId: number): Promise<void> {
    this.#ready?.sequences?.release(sequenceId);
  }

  /** Resolves once every sequence END sent so far has been answered (close(), tests). */
  async settled(): Promise<void> {
    await this.#ready?.sequences?.settled();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const sequences = this.#ready?.sequences;
    for (const id of sequences?.live ?? []) sequences?.release(id);
    await this.settled();
    this.#closed = true;
    this.#health.stop();
    this.#o.onClose?.();
    if (this.#ownsPool) await this.#pool.close();
  }

  async #statelessStep(
    ready: Ready,
    batch: readonly StepRequest[],
    signal: AbortSignal | undefined,
  ): Promise<StepResult[]> {
    const s = ready.plan.signature;
    const { inputs, width } = statelessInputs(s, batch);
    const outputs = await ready.infer(inputs, undefined, signal);
    return batch.map((r, b) => readRow(s, outputs, b, batch.length, r.tokens.length, width));
  }
}
