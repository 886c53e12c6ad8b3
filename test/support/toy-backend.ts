/**
 * A real Backend for tests: a deterministic toy "model" whose next token is a function of the
 * sequence, with hooks to hold steps (queueing, cancellation, shutdown) and to fail them. It lets
 * the gateway's tests run without onnxruntime while exercising exactly the code paths a real
 * backend does.
 */
import {
  type Backend,
  type BackendDescription,
  BackendError,
  type Readiness,
  type StepRequest,
  type StepResult,
} from '../../src/backends/backend.js';

export interface ToyOptions {
  /** Next token for a sequence; default: a hash of the last token and the length. */
  next?: (tokens: readonly number[]) => number;
  contextLength?: number;
  maxBatchSize?: number;
  /** Say the toy takes prefill chunks (it answers them like any step; the scheduler ignores it). */
  chunkedPrefill?: boolean;
  ready?: boolean;
}

export const toyNext = (tokens: readonly number[]) =>
  ((tokens.at(-1) ?? 0) * 7919 + tokens.length * 104_729) % 50_000;

export class ToyBackend implements Backend {
  readonly description: BackendDescription;
  ready: boolean;
  readonly steps: number[][] = [];
  /** The abort signal each step was given, in step order. */
  readonly stepSignals: (AbortSignal | undefined)[] = [];
  readonly released: number[] = [];
  closed = false;
  /** When set, every step waits for it (tests release it by calling the returned function). */
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;
  /** When set, the next step rejects with it. */
  failNext: BackendError | undefined;
  readonly #next: (tokens: readonly number[]) => number;

  constructor(options: ToyOptions = {}) {
    this.#next = options.next ?? toyNext;
    this.ready = options.ready ?? true;
    this.description = {
      kind: 'embedded',
      modelName: 'toy',
      variant: 'logits',
      contextLength: options.contextLength ?? 1024,
      vocabSize: 50257,
      maxBatchSize: options.maxBatchSize ?? 64,
      ...(options.chunkedPrefill === undefined ? {} : { chunkedPrefill: options.chunkedPrefill }),
      details: { toy: true },
    };
  }

  async init(): Promise<void> {
    this.ready = true;
  }

  readiness(): Readiness {
    return this.ready ? { ready: true } : { ready: false, reason: 'toy is asleep' };
  }

  /** Make steps wait until the returned function is called. */
  hold(): () => void {
    this.#gate = new Promise((resolve) => {
      this.#open = resolve;
    });
    return () => {
      this.#gate = undefined;
      this.#open?.();
    };
  }

  async step(batch: readonly StepRequest[], signal?: AbortSignal): Promise<StepResult[]> {
    if (this.closed) throw new BackendError('BACKEND_NOT_READY', 'toy is closed');
    this.steps.push(batch.map((r) => r.sequenceId));
    this.stepSignals.push(signal);
    if (this.#gate) await this.#gate;
    const failure = this.failNext;
    if (failure) {
      this.failNext = undefined;
      throw failure;
    }
    return batch.map((r) => {
      const tokenId = this.#next(r.tokens);
      return { tokenId, logprob: -((tokenId % 13) + 1) / 8 };
    });
  }

  async release(sequenceId: number): Promise<void> {
    this.released.push(sequenceId);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
