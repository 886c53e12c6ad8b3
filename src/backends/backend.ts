/**
 * The one seam between generation and inference. Everything above it — the greedy loop, stop
 * rules, timings, batching, streaming — is written once and runs on every backend.
 */
import type { Registry } from 'prom-client';
import type { BackendErrorCode } from '../contract/errors.js';
import type { ModelVariant } from '../contract/model.js';

/** What a backend understood about its model; reported by /info and /readyz. */
export interface BackendDescription {
  /** 'embedded' (onnxruntime-node in-process) or 'triton' (KServe v2 over HTTP). */
  readonly kind: 'embedded' | 'triton';
  readonly modelName: string;
  readonly variant: ModelVariant;
  /** Longest sequence (prompt + generated) the model accepts: GPT-2's n_positions. */
  readonly contextLength: number;
  readonly vocabSize: number;
  /** Most sequences one step() may carry; 1 when the model has no batch dimension. */
  readonly maxBatchSize: number;
  /**
   * Whether step() takes prefill chunks (requests with `wantToken: false`), so that the scheduler
   * may feed a long prompt over several steps. Absent means no: each prompt arrives whole.
   */
  readonly chunkedPrefill?: boolean;
  /** Backend-specific facts worth showing an operator (tensor names, dtypes, wire mode, URL). */
  readonly details: Readonly<Record<string, unknown>>;
}

export interface StepRequest {
  /** Stable handle for one generation; backends that keep a KV cache key their state by it. */
  readonly sequenceId: number;
  /**
   * The whole sequence so far: prompt plus every token generated. Stateless backends send all
   * of it; stateful ones send only the tokens they have not seen for this sequence. For a
   * prefill chunk it is the prompt up to the end of the chunk.
   */
  readonly tokens: readonly number[];
  /**
   * false for a prefill chunk that does not end the prompt: the backend only extends the
   * sequence's state with the tokens it has not seen, and its result is undefined. Sent only to
   * backends whose description says `chunkedPrefill`. Default true.
   */
  readonly wantToken?: boolean;
}

export interface StepResult {
  /** Greedy (argmax) next token. */
  readonly tokenId: number;
  /** Natural-log probability of tokenId under the model's softmax at the last position. */
  readonly logprob: number;
}

/**
 * Where a step's time went, as the backend measured its own runs: the runs that fed prompt
 * tokens (new prompts, prefill chunks) and the runs that decoded one token per running sequence.
 * The scheduler sizes the next prefill chunk from it (prefill-budget.ts).
 */
export interface StepCost {
  readonly prefillMs: number;
  readonly decodeMs: number;
}

export interface Readiness {
  readonly ready: boolean;
  /** Why not ready, in words an operator can act on. */
  readonly reason?: string;
}

export interface Backend {
  /** Valid once init() has resolved. */
  readonly description: BackendDescription;
  /** Load or connect and learn the model; rejects with a clear message when it cannot serve. */
  init(): Promise<void>;
  /** Cheap and synchronous: /readyz calls it on every probe. */
  readiness(): Readiness;
  /**
   * One greedy step for each sequence in the batch (batch.length <= maxBatchSize).
   * Results are in the order of the batch, undefined exactly for the requests with
   * `wantToken: false`. Rejects with a BackendError on failure.
   */
  step(batch: readonly StepRequest[], signal?: AbortSignal): Promise<(StepResult | undefined)[]>;
  /**
   * The cost of the step that completed last, split as StepCost says; undefined before the first
   * one. Optional: only a backend that takes prefill chunks needs it, and without it every step
   * feeds a whole PREFILL_CHUNK_TOKENS.
   */
  lastStepCost?(): StepCost | undefined;
  /** Forget a sequence (free its KV cache, end its Triton sequence). Called exactly once per
   * sequence that was stepped, on completion, cancellation and error alike. Never rejects. */
  release(sequenceId: number): Promise<void>;
  /** Release every resource; after it, step() rejects. */
  close(): Promise<void>;
  /**
   * Register the backend's own metrics (e.g. gpt2_gateway_upstream_*) on the app's registry, so
   * that /metrics serves them beside the gateway's. buildApp calls it once, before listening.
   */
  registerMetrics?(registry: Registry): void;
}

/**
 * Stable reasons a backend fails (listed, with their HTTP answers, in src/contract/errors.ts).
 * Backends map their transport's errors onto them; handlers never see transport errors.
 */
export type { BackendErrorCode };

export class BackendError extends Error {
  override readonly name = 'BackendError';
  constructor(
    readonly code: BackendErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
  /** For BACKEND_OVERLOADED / BACKEND_UNAVAILABLE: when the client may try again. */
  readonly retryAfterSeconds: number | undefined;
}
