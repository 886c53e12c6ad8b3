/**
 * The Triton backend: GPT-2 greedy steps as KServe v2 REST calls to NVIDIA Triton (or anything
 * that speaks its subset, such as `gpt2-gateway model-server`). Issue 4, reference
 * triton-kserve-v2.md §1, §2, §4, §7.
 *
 * - init(): server ready, model ready, metadata (+ config where reachable), understood through
 *   understandSignature; a model it cannot drive fails here, not at the first request.
 * - Only the outputs a step needs are requested, as binary tensors (direct to Triton) or JSON
 *   (through the Seldon executor, which corrupts binary bodies, §7.6).
 * - max_batch_size > 0: one call per step with the batch right-padded; otherwise (the notebook's
 *   model, or a kv model under the sequence batcher, which takes batch 1 only) one call per
 *   sequence, concurrently.
 * - kv: implicit state (Triton >= 21.11): sequence_id/start/end and only the new tokens; every
 *   sequence is ended in release(), whatever happened.
 */
import { getRandomValues } from 'node:crypto';
import type { Registry } from 'prom-client';
import { Registry as PromRegistry } from 'prom-client';
import { type Dispatcher, Pool } from 'undici';
import {
  decodeInferResponse,
  encodeInferRequest,
  HEADER_LENGTH_HEADER,
} from '../../kserve/infer-body.js';
import {
  type ModelMetadataJson,
  type Parameters,
  parseModelMetadata,
  parseServerMetadata,
} from '../../kserve/messages.js';
import { modelConfigFromJson, type TritonModelConfig } from '../../kserve/model-config.js';
import {
  fixedDatatype,
  numberAt,
  type Tensor,
  tensorFromValues,
  WireFormatError,
} from '../../kserve/tensor-codec.js';
import { GPT2_CONTEXT_LENGTH, GPT2_VOCAB_SIZE } from '../../model/configs.js';
import { type ModelSignature, type TensorRef, understandSignature } from '../../model/signature.js';
import {
  type Backend,
  type BackendDescription,
  BackendError,
  type Readiness,
  type StepRequest,
  type StepResult,
} from '../backend.js';
import { greedyFromLogits } from '../embedded/greedy.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { UpstreamClient } from './upstream-client.js';
import { UpstreamErrorBody } from './upstream-errors.js';
import { UpstreamMetrics } from './upstream-metrics.js';

/** Calls retried when nothing was sent (refused, DNS, connect timeout). */
export const DEFAULT_RETRIES = 2;
/** Consecutive transport failures that open the breaker, and how long it stays open. */
export const DEFAULT_BREAKER_FAILURES = 5;
export const DEFAULT_BREAKER_COOLDOWN_MS = 5_000;
/** How long init() waits for the server and model to become ready. */
export const DEFAULT_STARTUP_TIMEOUT_MS = 60_000;
const STARTUP_POLL_MS = 1_000;
/** Background readiness re-check, so /readyz follows the upstream without a request failing. */
export const DEFAULT_HEALTH_INTERVAL_MS = 5_000;
/** Implicit state needs Triton 2.16.0 (21.11) (§0, §4.3). */
const IMPLICIT_STATE_MIN_VERSION = [2, 16, 0] as const;

export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface TritonBackendOptions {
  /** KServe v2 base URL, e.g. http://gpt2gpu-default-gpt2.default.svc.cluster.local:9000 */
  readonly url: string;
  readonly modelName: string;
  readonly wire: 'binary' | 'json';
  /** Deadline for one whole call (connect, send, headers, body). */
  readonly timeoutMs: number;
  /** Pool size; also how many sequences one step may carry when the model does not batch. */
  readonly connections: number;
  /** A dispatcher owned by the caller (not closed here); otherwise a Pool is made and closed. */
  readonly dispatcher?: Dispatcher;
  readonly retries?: number;
  readonly breakerFailures?: number;
  readonly breakerCooldownMs?: number;
  readonly startupTimeoutMs?: number;
  readonly healthIntervalMs?: number;
  readonly contextLength?: number;
  /** The model's max_batch_size when GET .../config cannot be read (the Seldon executor does
   * not route it); the config wins when it can be read. Unset: one call per sequence. */
  readonly maxBatchSize?: number;
  readonly registry?: Registry;
  readonly logger?: Logger;
  /** Another readiness condition (SeldonDeployment status), ANDed with the upstream's. */
  readonly gate?: () => Readiness;
  /** Called once by close() (stops the SeldonDeployment watch). */
  readonly onClose?: () => void;
  readonly now?: () => number;
}

interface Plan {
  readonly signature: ModelSignature;
  readonly config: TritonModelConfig | undefined;
  readonly serverVersion: string | undefined;
  /** One infer call carries the whole step (max_batch_size > 0 and not a sequence model). */
  readonly batched: boolean;
  readonly maxBatchSize: number;
  /** Outputs requested on every call. */
  readonly outputs: readonly TensorRef[];
}

interface KvSequence {
  readonly correlationId: number;
  /** Tokens the upstream has seen for this sequence (its implicit state covers them). */
  seen: number;
  lastToken: number;
  /** A START went out, so an END is owed. */
  started: boolean;
}

const nullLogger: Logger = { info() {}, warn() {}, debug() {} };

function versionAtLeast(version: string, min: readonly number[]): boolean {
  const parts = version.split(/[.-]/).map((p) => Number.parseInt(p, 10));
  for (let i = 0; i < min.length; i++) {
    const a = parts[i] ?? 0;
    const b = min[i] ?? 0;
    if (Number.isNaN(a)) return false;
    if (a !== b) return a > b;
  }
  return true;
}

/** A uint64-safe, non-zero correlation id, unique across gateway replicas sharing one Triton. */
function newCorrelationId(): number {
  const [r] = getRandomValues(new BigUint64Array(1));
  return Number((r ?? 1n) >> 11n) || 1;
}

export class TritonBackend implements Backend {
  readonly #o: TritonBackendOptions;
  readonly #log: Logger;
  readonly #pool: Dispatcher;
  readonly #ownsPool: boolean;
  readonly #client: UpstreamClient;
  readonly #breaker: CircuitBreaker;
  readonly #modelPath: string;
  readonly #kv = new Map<number, KvSequence>();
  readonly #ending = new Set<Promise<void>>();
  #plan: Plan | undefined;
  #description: BackendDescription | undefined;
  #upstreamReason: string | undefined = 'not initialised';
  #healthTimer: NodeJS.Timeout | undefined;
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
        connect: { timeout: Math.min(opts.timeoutMs, 10_000) },
        // The call deadline in UpstreamClient governs; these only stop a silent socket early.
        headersTimeout: opts.timeoutMs,
        bodyTimeout: opts.timeoutMs,
      });
    const metrics = new UpstreamMetrics(opts.registry ?? new PromRegistry());
    this.#breaker = new CircuitBreaker({
      failureThreshold: opts.breakerFailures ?? DEFAULT_BREAKER_FAILURES,
      cooldownMs: opts.breakerCooldownMs ?? DEFAULT_BREAKER_COOLDOWN_MS,
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
      retries: opts.retries ?? DEFAULT_RETRIES,
      breaker: this.#breaker,
      metrics,
    });
    this.#modelPath = `/v2/models/${encodeURIComponent(opts.modelName)}`;
  }

  get description(): BackendDescription {
    if (this.#description === undefined)
      throw new BackendError('BACKEND_NOT_READY', 'the Triton backend is not initialised');
    return this.#description;
  }

  async init(): Promise<void> {
    await this.#waitUntilReady();
    const metadata = await this.#metadata();
    const config = await this.#optional(
      'config',
      `${this.#modelPath}/config`,
      'model config',
      modelConfigFromJson,
    );
    const server = await this.#optional(
      'server_metadata',
      '/v2',
      'server metadata',
      parseServerMetadata,
    );
    this.#plan = this.#understand(metadata, config, server?.version);
    const p = this.#plan;
    this.#description = Object.freeze({
      kind: 'triton',
      modelName: this.#o.modelName,
      variant: p.signature.variant,
      contextLength: this.#o.contextLength ?? GPT2_CONTEXT_LENGTH,
      vocabSize:
        (p.signature.vocabSize ?? -1) > 0 ? (p.signature.vocabSize as number) : GPT2_VOCAB_SIZE,
      maxBatchSize: p.maxBatchSize,
      details: Object.freeze({
        url: this.#client.url,
        wire: this.#o.wire,
        platform: metadata.platform,
        serverVersion: p.serverVersion ?? 'unknown (GET /v2 not reachable)',
        batching: p.batched ? 'one call per step' : 'one call per sequence',
        tritonMaxBatchSize:
          config?.max_batch_size ??
          (this.#o.maxBatchSize === undefined
            ? 'unknown (config not reachable)'
            : `${this.#o.maxBatchSize} (TRITON_MAX_BATCH_SIZE; config not reachable)`),
        inputs: [
          p.signature.inputIds,
          p.signature.attentionMask,
          ...(p.signature.positionIds ? [p.signature.positionIds] : []),
        ].map((t) => `${t.name} ${t.datatype}`),
        requestedOutputs: p.outputs.map((t) => t.name),
        implicitState: p.signature.kv?.implicitState ?? false,
      }),
    });
    this.#upstreamReason = undefined;
    this.#log.info({ backend: this.#description }, 'Triton backend ready');
    const interval = this.#o.healthIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS;
    if (interval > 0) {
      this.#healthTimer = setInterval(() => void this.#checkHealth(), interval);
      this.#healthTimer.unref();
    }
  }

  readiness(): Readiness {
    if (this.#closed) return { ready: false, reason: 'the Triton backend is closed' };
    const gate = this.#o.gate?.();
    if (gate !== undefined && !gate.ready) return gate;
    if (this.#upstreamReason !== undefined) return { ready: false, reason: this.#upstreamReason };
    if (this.#breaker.state === 'open') {
      return {
        ready: false,
        reason: `calls to the model server at ${this.#client.url} keep failing (circuit open)`,
      };
    }
    return { ready: true };
  }

  async step(batch: readonly StepRequest[], signal?: AbortSignal): Promise<StepResult[]> {
    const plan = this.#plan;
    if (this.#closed || plan === undefined) {
      throw new BackendError(
        'BACKEND_NOT_READY',
        this.#closed ? 'the Triton backend is closed' : 'the Triton backend is not initialised',
      );
    }
    if (batch.length === 0) return [];
    if (batch.length > plan.maxBatchSize) {
      throw new BackendError(
        'BACKEND_ERROR',
        `a step carries ${batch.length} sequences, more than ${plan.maxBatchSize}`,
      );
    }
    if (plan.signature.variant === 'kv')
      return Promise.all(batch.map((s) => this.#kvStep(plan, s, signal)));
    if (plan.batched) return this.#statelessStep(plan, batch, signal);
    const rows = await Promise.all(batch.map((s) => this.#statelessStep(plan, [s], signal)));
    return rows.map((r) => r[0] as StepResult);
  }

  /**
   * Ends the sequence in the background: the scheduler awaits release() before answering the
   * client and stepping the others, and the END call is a whole round trip plus a forward pass.
   * close() waits for every END still in flight.
   */
  async release(sequenceId: number): Promise<void> {
    const seq = this.#kv.get(sequenceId);
    this.#kv.delete(sequenceId);
    const plan = this.#plan;
    if (seq === undefined || !seq.started || plan === undefined) return;
    const ending = this.#endSequence(plan, seq, sequenceId).finally(() =>
      this.#ending.delete(ending),
    );
    this.#ending.add(ending);
  }

  async #endSequence(plan: Plan, seq: KvSequence, sequenceId: number): Promise<void> {
    // A sequence holds a Triton slot until END or idle reaping (§4.4): always end it. Triton has
    // no END without an inference, so send one more token (the last one) and ignore the answer.
    try {
      await this.#infer(
        plan,
        this.#kvInputs(plan, [seq.lastToken], seq.seen),
        this.#kvParameters(seq, false, true),
        undefined,
        'sequence_end',
      );
    } catch (err) {
      this.#log.warn(
        { err, sequenceId, correlationId: seq.correlationId },
        'ending a Triton sequence failed; Triton will reap it when idle',
      );
    }
  }

  /** Resolves once every sequence END sent so far has been answered (close(), tests). */
  async settled(): Promise<void> {
    while (this.#ending.size > 0) await Promise.all([...this.#ending]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    for (const id of [...this.#kv.keys()]) await this.release(id);
    await this.settled();
    this.#closed = true;
    clearInterval(this.#healthTimer);
    this.#o.onClose?.();
    if (this.#ownsPool) await this.#pool.close();
  }

  // ---- start-up ----

  async #waitUntilReady(): Promise<void> {
    const timeout = this.#o.startupTimeoutMs ?? DEFAULT_STARTUP_TIMEOUT_MS;
    const now = this.#o.now ?? Date.now;
    const deadline = now() + timeout;
    for (;;) {
      const reason = await this.#upstreamNotReady();
      if (reason === undefined) return;
      this.#upstreamReason = reason;
      if (now() + STARTUP_POLL_MS > deadline) {
        throw new Error(
          `Triton backend: ${reason} (waited ${timeout} ms; TRITON_URL=${this.#client.url}, MODEL_NAME=${this.#o.modelName})`,
        );
      }
      this.#log.info({ reason }, 'waiting for the model server');
      await new Promise((r) => setTimeout(r, STARTUP_POLL_MS));
    }
  }

  /** Why the upstream cannot serve now, or undefined when server and model are ready. */
  async #upstreamNotReady(): Promise<string | undefined> {
    try {
      if (!(await this.#client.probe('health', '/v2/health/ready', 'server readiness'))) {
        return `the model server at ${this.#client.url} is not ready (GET /v2/health/ready)`;
      }
      if (
        !(await this.#client.probe('model_ready', `${this.#modelPath}/ready`, 'model readiness'))
      ) {
        return `model '${this.#o.modelName}' is not ready on ${this.#client.url} (GET ${this.#modelPath}/ready)`;
      }
      return undefined;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }

  async #checkHealth(): Promise<void> {
    if (this.#closed) return;
    const reason = await this.#upstreamNotReady();
    if (reason !== this.#upstreamReason) {
      this.#log[reason === undefined ? 'info' : 'warn'](
        { reason },
        reason === undefined ? 'model server ready again' : 'model server not ready',
      );
    }
    this.#upstreamReason = reason;
  }

  async #metadata(): Promise<ModelMetadataJson> {
    const json = await this.#client.getJson('metadata', this.#modelPath, 'model metadata');
    try {
      return parseModelMetadata(json);
    } catch (err) {
      throw new Error(
        `Triton backend: GET ${this.#modelPath} answered something that is not model metadata: ${(err as Error).message}`,
      );
    }
  }

  /** GET /config and /v2 are not routed by the Seldon executor (§7.6): their absence is normal. */
  async #optional<T>(
    endpoint: 'config' | 'server_metadata',
    path: string,
    what: string,
    parse: (v: unknown) => T,
  ): Promise<T | undefined> {
    try {
      return parse(await this.#client.getJson(endpoint, path, what));
    } catch (err) {
      this.#log.info(
        { path, err: err instanceof Error ? err.message : String(err) },
        `${what} not available; going on without it`,
      );
      return undefined;
    }
  }

  #understand(
    metadata: ModelMetadataJson,
    config: TritonModelConfig | undefined,
    serverVersion: string | undefined,
  ): Plan {
    const where = `model '${this.#o.modelName}' on ${this.#client.url}`;
    let signature: ModelSignature;
    try {
      signature = understandSignature(metadata);
    } catch (err) {
      throw new Error(`Triton backend: ${(err as Error).message}`);
    }
    const s = signature;
    if (s.variant === 'kv') {
      if (s.kv?.implicitState !== true) {
        throw new Error(
          `Triton backend: ${where} is a kv model whose past_key_values are plain inputs; the gateway only drives kv models through Triton's implicit state (config.pbtxt sequence_batching.state, Triton >= 21.11, reference §4)`,
        );
      }
      if (config !== undefined && config.sequence_batching === undefined) {
        throw new Error(
          `Triton backend: ${where} hides its past_key_values but its config has no sequence_batching block`,
        );
      }
      if (
        serverVersion !== undefined &&
        !versionAtLeast(serverVersion, IMPLICIT_STATE_MIN_VERSION)
      ) {
        throw new Error(
          `Triton backend: ${where} needs implicit state, which Triton ${serverVersion} lacks (needs >= 2.16.0 / 21.11; Seldon's default is 21.08: set the image, reference §0)`,
        );
      }
    }
    const outputs =
      s.variant === 'next-token'
        ? [s.outputs.nextToken, s.outputs.logprob]
        : s.variant === 'last'
          ? [s.outputs.lastLogits]
          : [s.outputs.logits];
    const wanted = outputs.filter((t): t is TensorRef => t !== undefined);
    if (this.#o.wire === 'json') {
      const half = wanted.find((t) => t.datatype === 'FP16' || t.datatype === 'BF16');
      if (half !== undefined) {
        throw new Error(
          `Triton backend: output ${half.name} is ${half.datatype}, which Triton cannot send as JSON (§1.8); use TRITON_WIRE=binary directly to Triton`,
        );
      }
    }
    const tritonMax = config?.max_batch_size ?? this.#o.maxBatchSize ?? 0;
    const batched = s.variant !== 'kv' && tritonMax > 0;
    return {
      signature: s,
      config,
      serverVersion,
      batched,
      maxBatchSize: batched ? tritonMax : this.#o.connections,
      outputs: wanted,
    };
  }

  // ---- steps ----

  #idsTensor(ref: TensorRef, shape: number[], values: number[]): Tensor {
    return tensorFromValues(ref.name, fixedDatatype(ref.datatype, ref.name), shape, values);
  }

  async #statelessStep(
    plan: Plan,
    batch: readonly StepRequest[],
    signal: AbortSignal | undefined,
  ): Promise<StepResult[]> {
    const s = plan.signature;
    const width = Math.max(...batch.map((r) => r.tokens.length));
    const ids: number[] = [];
    const mask: number[] = [];
    for (const r of batch) {
      if (r.tokens.length === 0)
        throw new BackendError('BACKEND_ERROR', `sequence ${r.sequenceId} has no tokens`);
      // Right padding: real tokens first, mask 0 over the pad (issue 2's contract).
      for (let i = 0; i < width; i++) {
        ids.push(i < r.tokens.length ? (r.tokens[i] as number) : 0);
        mask.push(i < r.tokens.length ? 1 : 0);
      }
    }
    const shape = [batch.length, width];
    const outputs = await this.#infer(
      plan,
      [this.#idsTensor(s.inputIds, shape, ids), this.#idsTensor(s.attentionMask, shape, mask)],
      undefined,
      signal,
    );
    return batch.map((r, b) =>
      this.#readRow(plan, outputs, b, batch.length, r.tokens.length, width),
    );
  }

  #kvInputs(plan: Plan, tokens: readonly number[], seen: number): Tensor[] {
    const s = plan.signature;
    const n = tokens.length;
    // Issue 2's implicit-state protocol (signature.ts): one masked dummy past slot, then every
    // real token; positions count real tokens only.
    const mask = [0, ...new Array<number>(seen + n).fill(1)];
    const positions = Array.from({ length: n }, (_, i) => seen + i);
    return [
      this.#idsTensor(s.inputIds, [1, n], [...tokens]),
      this.#idsTensor(s.attentionMask, [1, mask.length], mask),
      this.#idsTensor(s.positionIds as TensorRef, [1, n], positions),
    ];
  }

  #kvParameters(seq: KvSequence, start: boolean, end: boolean): Parameters {
    return { sequence_id: seq.correlationId, sequence_start: start, sequence_end: end };
  }

  async #kvStep(plan: Plan, r: StepRequest, signal: AbortSignal | undefined): Promise<StepResult> {
    let seq = this.#kv.get(r.sequenceId);
    if (seq === undefined) {
      seq = { correlationId: newCorrelationId(), seen: 0, lastToken: 0, started: false };
      this.#kv.set(r.sequenceId, seq);
    }
    const fresh = r.tokens.slice(seq.seen);
    if (fresh.length === 0)
      throw new BackendError('BACKEND_ERROR', `sequence ${r.sequenceId} brought no new token`);
    const start = !seq.started;
    seq.started = true;
    const outputs = await this.#infer(
      plan,
      this.#kvInputs(plan, fresh, seq.seen),
      this.#kvParameters(seq, start, false),
      signal,
    );
    seq.seen += fresh.length;
    seq.lastToken = fresh[fresh.length - 1] as number;
    return this.#readRow(plan, outputs, 0, 1, fresh.length, fresh.length);
  }

  async #infer(
    plan: Plan,
    inputs: Tensor[],
    parameters: Parameters | undefined,
    signal: AbortSignal | undefined,
    endpoint: 'infer' | 'sequence_end' = 'infer',
  ): Promise<ReadonlyMap<string, Tensor>> {
    const binary = this.#o.wire === 'binary';
    const { body, headerLength } = encodeInferRequest({
      ...(parameters ? { parameters } : {}),
      inputs: inputs.map((tensor) => ({ tensor, binary })),
      outputs: plan.outputs.map((t) => ({ name: t.name, binary })),
    });
    const headers: Record<string, string> =
      headerLength === undefined
        ? { 'content-type': 'application/json' }
        : {
            'content-type': 'application/octet-stream',
            [HEADER_LENGTH_HEADER]: String(headerLength),
          };
    let res: Awaited<ReturnType<UpstreamClient['expectOk']>>;
    try {
      res = await this.#client.expectOk({
        endpoint,
        method: 'POST',
        path: `${this.#modelPath}/infer`,
        body,
        headers,
        what: 'inference',
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if (err instanceof BackendError && err.cause instanceof UpstreamErrorBody) {
        // Logged in full here; the client gets only the code and a generic message (issue 4).
        this.#log.warn(
          { upstreamStatus: err.cause.status, upstreamError: err.cause.message, code: err.code },
          'model server refused an inference',
        );
      }
      throw err;
    }
    try {
      return decodeInferResponse(res.body, res.headers[HEADER_LENGTH_HEADER]).outputs;
    } catch (err) {
      if (err instanceof WireFormatError) {
        throw new BackendError(
          'BACKEND_BAD_RESPONSE',
          `inference: the model server's answer is malformed: ${err.message}`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /** Row b of a step's outputs: `length` real tokens of `width` sent. */
  #readRow(
    plan: Plan,
    outputs: ReadonlyMap<string, Tensor>,
    b: number,
    rows: number,
    length: number,
    width: number,
  ): StepResult {
    const s = plan.signature;
    const get = (
      ref: TensorRef,
      dims: (shape: readonly number[]) => boolean,
      expect: string,
    ): Tensor => {
      const t = outputs.get(ref.name);
      if (t === undefined)
        throw new BackendError(
          'BACKEND_BAD_RESPONSE',
          `inference: the answer lacks output '${ref.name}'`,
        );
      if (!dims(t.shape)) {
        throw new BackendError(
          'BACKEND_BAD_RESPONSE',
          `inference: output '${ref.name}' has shape [${t.shape.join(',')}], expected ${expect}`,
        );
      }
      return t;
    };
    if (s.variant === 'next-token') {
      const one = (shape: readonly number[]) =>
        shape[0] === rows && shape.slice(1).every((d) => d === 1);
      const token = get(s.outputs.nextToken as TensorRef, one, `[${rows}, 1]`);
      const logprob = get(s.outputs.logprob as TensorRef, one, `[${rows}, 1]`);
      return { tokenId: numberAt(token.data, b), logprob: numberAt(logprob.data, b) };
    }
    if (s.variant === 'last') {
      const t = get(
        s.outputs.lastLogits as TensorRef,
        (sh) => sh.length === 2 && sh[0] === rows && (sh[1] ?? 0) > 0,
        `[${rows}, vocab]`,
      );
      const vocab = t.shape[1] as number;
      return greedyFromLogits(t.data as Float32Array, b * vocab, vocab);
    }
    // A kv model returns each row's last position only ([rows, 1, vocab], the default build) or
    // every position ([rows, width, vocab], --full-logits); the dims returned decide which.
    const lastOnly = s.variant === 'kv';
    const t = get(
      s.outputs.logits as TensorRef,
      (sh) =>
        sh.length === 3 &&
        sh[0] === rows &&
        (sh[1] === width || (lastOnly && sh[1] === 1)) &&
        (sh[2] ?? 0) > 0,
      lastOnly ? `[${rows}, 1 or ${width}, vocab]` : `[${rows}, ${width}, vocab]`,
    );
    const seq = t.shape[1] as number;
    const vocab = t.shape[2] as number;
    // seq 1: the graph already picked the row's last real token.
    const position = seq === width ? length - 1 : 0;
    return greedyFromLogits(t.data as Float32Array, (b * seq + position) * vocab, vocab);
  }
}
