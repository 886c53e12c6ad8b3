/**
 * Tokenization off the event loop. BPE of a 64 KiB prompt holds its thread for 0.1-0.25 s as
 * prose and far longer as one long word or CJK (npm run bench:tokenizer), and on the main thread
 * every other request would wait as long. Short texts are still encoded inline (a hop to a worker costs more than they do); long
 * ones go to a small pool of worker threads, each with its own copy of the tokenizer.
 *
 * - The queue of texts waiting for a worker is bounded: a full queue refuses at once with
 *   TOKENIZER_BUSY rather than holding memory and latency without limit.
 * - A worker that dies (an uncaught error, out of memory) fails only its own call, with
 *   TOKENIZER_WORKER_FAILED, and is replaced; a worker that cannot even start is retried a few
 *   times, then every call fails with TOKENIZER_WORKER_FAILED instead of respawning for ever.
 * - A worker keeps the process alive only while a caller waits on it; an idle pool never does.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type Gpt2Tokenizer, loadGpt2Tokenizer } from './gpt2-tokenizer.js';
import type { EncodeRequest, WorkerReply, WorkerTestHooks } from './tokenizer-worker.js';

/**
 * Texts up to this many UTF-16 code units are encoded on the calling thread. Measured (npm run
 * bench:tokenizer, a loaded 2-core machine): 256 characters take ~1.1 ms as CJK, the worst kind,
 * 0.6 ms as one long word, 0.25 ms as prose; 512 take up to 2.4 ms. The pool's round trip for a
 * text just over the limit is ~0.25 ms, so routing short texts inline saves only latency.
 */
export const DEFAULT_INLINE_MAX_CHARS = 256;
/** Texts waiting for a worker, beyond the ones being encoded, before the pool refuses. */
export const DEFAULT_MAX_QUEUE = 64;
/**
 * One worker per core beyond the main thread's, at most two: the main thread needs its own core
 * for the event loop (and, with the embedded backend, inference), and large tokenizations are
 * rare once the token bound refuses hopeless prompts. On a 2-core machine: one worker.
 */
export const DEFAULT_WORKERS = Math.max(1, Math.min(2, availableParallelism() - 1));
/** Workers that die before they are ready, in a row, before the pool gives up starting them. */
const MAX_STARTUP_FAILURES = 3;
/** Compiled beside this module (dist/src/tokenizer/), like every other module of the package. */
const WORKER_SCRIPT = new URL('./tokenizer-worker.js', import.meta.url);

export type TokenizerPoolErrorCode =
  | 'TOKENIZER_BUSY'
  | 'TOKENIZER_WORKER_FAILED'
  | 'TOKENIZER_CLOSED';

/**
 * Why the pool did not encode a text. The code is stable; prompt-tokenizer.ts turns it into the
 * gateway's answer: TOKENIZER_BUSY (queue full: 503 QUEUE_FULL, retry later),
 * TOKENIZER_WORKER_FAILED (the worker died or cannot start: 500 INTERNAL_ERROR),
 * TOKENIZER_CLOSED (the pool is shutting down: 503 SHUTTING_DOWN).
 */
export class TokenizerPoolError extends Error {
  override readonly name = 'TokenizerPoolError';
  constructor(
    readonly code: TokenizerPoolErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface TokenizerPoolOptions {
  /** Worker threads (default DEFAULT_WORKERS). */
  readonly workers?: number;
  /** Longest text encoded inline (default DEFAULT_INLINE_MAX_CHARS; 0 sends every text to a worker). */
  readonly inlineMaxChars?: number;
  /** Texts that may wait for a worker (default DEFAULT_MAX_QUEUE). */
  readonly maxQueue?: number;
  /** The tokenizer for inline encodes (default: the process's shared GPT-2 tokenizer). */
  readonly tokenizer?: Gpt2Tokenizer;
  /** Tests only: make workers fail on purpose. */
  readonly testHooks?: WorkerTestHooks;
}

interface Job {
  readonly id: number;
  readonly text: string;
  readonly resolve: (ids: number[]) => void;
  readonly reject: (err: Error) => void;
}

interface Slot {
  readonly worker: Worker;
  ready: boolean;
  job: Job | undefined;
  /** The uncaught error the worker reported before it exited, if any. */
  error: Error | undefined;
}

export class TokenizerPool {
  readonly #tokenizer: Gpt2Tokenizer;
  readonly #inlineMaxChars: number;
  readonly #maxQueue: number;
  readonly #testHooks: WorkerTestHooks | undefined;
  readonly #slots = new Set<Slot>();
  readonly #queue: Job[] = [];
  #nextId = 0;
  #startupFailures = 0;
  /** Set once workers cannot start: every later call fails with it. */
  #broken: TokenizerPoolError | undefined;
  #closed = false;
  /** Callers of ready() waiting for a worker to finish loading. */
  #readyWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];

  readonly #workers: number;
  #started = false;

  constructor(options: TokenizerPoolOptions = {}) {
    const workers = options.workers ?? DEFAULT_WORKERS;
    if (!Number.isInteger(workers) || workers < 1) {
      throw new RangeError(`workers must be a positive integer, got ${workers}`);
    }
    this.#inlineMaxChars = options.inlineMaxChars ?? DEFAULT_INLINE_MAX_CHARS;
    this.#maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
    if (!(this.#inlineMaxChars >= 0) || !Number.isInteger(this.#maxQueue) || this.#maxQueue < 0) {
      throw new RangeError(
        'inlineMaxChars and maxQueue must be numbers >= 0 (maxQueue an integer)',
      );
    }
    this.#tokenizer = options.tokenizer ?? loadGpt2Tokenizer();
    this.#testHooks = options.testHooks;
    this.#workers = workers;
  }

  /**
   * Workers start with the first long text (or ready()): an app that only ever sees short
   * prompts, like most tests, never pays for them.
   */
  #start(): void {
    if (this.#started) return;
    this.#started = true;
    for (let i = 0; i < this.#workers; i++) this.#spawn();
  }

  /** Workers alive (replaced ones included), texts being encoded, and texts waiting. */
  get stats(): { workers: number; busy: number; queued: number } {
    let busy = 0;
    for (const slot of this.#slots) if (slot.job !== undefined) busy++;
    return { workers: this.#slots.size, busy, queued: this.#queue.length };
  }

  /**
   * Resolves once every worker has loaded its tokenizer (about half a second each, in parallel),
   * so a server can hold readiness until large prompts can be served.
   */
  ready(): Promise<void> {
    if (this.#broken !== undefined) return Promise.reject(this.#broken);
    if (this.#closed) return Promise.reject(closedError());
    this.#start();
    if ([...this.#slots].every((slot) => slot.ready)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#readyWaiters.push({ resolve, reject });
      this.#updateRefs();
    });
  }

  /** GPT-2 ids of text, identical to Gpt2Tokenizer.encode; long texts never block the caller's thread. */
  encode(text: string): Promise<number[]> {
    if (this.#closed) return Promise.reject(closedError());
    if (text.length <= this.#inlineMaxChars) {
      try {
        return Promise.resolve(this.#tokenizer.encode(text));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (this.#broken !== undefined) return Promise.reject(this.#broken);
    if (this.#queue.length >= this.#maxQueue) {
      return Promise.reject(
        new TokenizerPoolError(
          'TOKENIZER_BUSY',
          `the tokenizer has ${this.#queue.length} long texts waiting already; retry later`,
        ),
      );
    }
    this.#start();
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, text, resolve, reject });
      this.#dispatch();
    });
  }

  /** Terminates the workers; calls not yet answered fail with TOKENIZER_CLOSED. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const err = closedError();
    for (const job of this.#queue.splice(0)) job.reject(err);
    for (const waiter of this.#readyWaiters.splice(0)) waiter.reject(err);
    const slots = [...this.#slots];
    this.#slots.clear();
    for (const slot of slots) {
      slot.job?.reject(err);
      slot.job = undefined;
    }
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
  }

  #spawn(): void {
    const worker = new Worker(WORKER_SCRIPT, { workerData: this.#testHooks ?? {} });
    const slot: Slot = { worker, ready: false, job: undefined, error: undefined };
    this.#slots.add(slot);
    this.#updateRefs();
    worker.on('message', (reply: WorkerReply) => this.#onReply(slot, reply));
    worker.on('error', (err) => {
      slot.error = err;
    });
    worker.on('exit', (code) => this.#onExit(slot, code));
  }

  #onReply(slot: Slot, reply: WorkerReply): void {
    if (reply.kind === 'ready') {
      slot.ready = true;
      this.#startupFailures = 0;
      if ([...this.#slots].every((s) => s.ready)) {
        for (const waiter of this.#readyWaiters.splice(0)) waiter.resolve();
      }
    } else {
      const job = slot.job;
      if (job === undefined || job.id !== reply.id) return; // answered after close: nobody waits
      slot.job = undefined;
      if (reply.kind === 'result') job.resolve(Array.from(reply.ids));
      else job.reject(new Error(`tokenizing failed: ${reply.message}`));
    }
    this.#dispatch();
  }

  #onExit(slot: Slot, code: number): void {
    if (!this.#slots.delete(slot)) return; // terminated by close()
    const reason = slot.error?.message ?? `exit code ${code}`;
    if (slot.job !== undefined) {
      slot.job.reject(
        new TokenizerPoolError(
          'TOKENIZER_WORKER_FAILED',
          `the tokenizer worker died while encoding this text (${reason}); retry`,
          { cause: slot.error },
        ),
      );
    }
    if (!slot.ready && ++this.#startupFailures >= MAX_STARTUP_FAILURES) {
      this.#giveUp(reason, slot.error);
      return;
    }
    this.#spawn();
    this.#dispatch();
  }

  /** Workers cannot start: fail everything waiting and everything to come, and stop respawning. */
  #giveUp(reason: string, cause: Error | undefined): void {
    this.#broken = new TokenizerPoolError(
      'TOKENIZER_WORKER_FAILED',
      `tokenizer workers fail to start (${reason}); long texts cannot be tokenized`,
      { cause },
    );
    for (const job of this.#queue.splice(0)) job.reject(this.#broken);
    for (const waiter of this.#readyWaiters.splice(0)) waiter.reject(this.#broken);
    const slots = [...this.#slots];
    this.#slots.clear();
    for (const slot of slots) void slot.worker.terminate();
  }

  /** Hands waiting texts to idle, loaded workers. */
  #dispatch(): void {
    for (const slot of this.#slots) {
      if (!slot.ready || slot.job !== undefined) continue;
      const job = this.#queue.shift();
      if (job === undefined) break;
      slot.job = job;
      slot.worker.postMessage({ id: job.id, text: job.text } satisfies EncodeRequest);
    }
    this.#updateRefs();
  }

  /**
   * A worker holds the process open only while someone waits on it: it is encoding, or texts
   * wait for a worker, or ready() waits for it to load. An idle pool never keeps a process alive.
   */
  #updateRefs(): void {
    const waiting = this.#queue.length > 0 || this.#readyWaiters.length > 0;
    for (const slot of this.#slots) {
      if (slot.job !== undefined || (waiting && !slot.ready)) slot.worker.ref();
      else slot.worker.unref();
    }
  }
}

function closedError(): TokenizerPoolError {
  return new TokenizerPoolError(
    'TOKENIZER_CLOSED',
    'the tokenizer is shutting down; retry on another replica',
  );
}
