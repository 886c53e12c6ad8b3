/**
 * Continuous batching with bounded concurrency and a bounded queue.
 *
 * At most `maxBatchSize` generations are active; every step carries all of them in one
 * backend.step call, and a generation that finishes frees its slot for the next queued one at the
 * following step (no waiting for the whole batch). At most `maxQueue` generations wait; beyond
 * that, submit() refuses with QUEUE_FULL (503 + Retry-After). A cancelled generation (client gone)
 * leaves at the next step boundary. drain() refuses new work and resolves once all accepted work
 * has finished (SIGTERM); abortAll() ends whatever is left at the shutdown deadline.
 *
 * Chunked prefill (as vLLM's): on a backend that takes prefill chunks, each step feeds at most
 * `prefillChunkTokens` prompt tokens in all, first come first served, beside one decode token
 * for every running generation. A long prompt is thus prefilled over several steps and delays
 * the others' next tokens by at most one chunk per step, instead of freezing them for its whole
 * prefill; a generation whose prompt gets no budget this step sits it out. Decode tokens do not
 * count against the budget: a decode step is bound by reading the weights, not by its tokens.
 * The budget shrinks below `prefillChunkTokens` when steps run long (prefill-budget.ts).
 */
import { setTimeout as delay, setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { type Backend, BackendError, type StepRequest } from '../backends/backend.js';
import { GatewayError } from '../contract/errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { Gpt2Tokenizer } from '../tokenizer/gpt2-tokenizer.js';
import { Generation, type GenerationOutcome, type GenerationSpec } from './generation.js';
import { PrefillBudget } from './prefill-budget.js';

/**
 * From idle, the first step waits for the generations that arrive with the first one: in slices
 * of this many ms, for as long as each slice brings more (at most GATHER_MAX_SLICES, or until the
 * batch is full). A burst of requests is parsed and tokenized one after another: 16 at once
 * reached the scheduler over 10-20 ms on two cores. Stepping at the first arrival prefilled it
 * alone (a whole step, ~50 ms of gpt2) and the rest a step later, and the first then ran a step
 * ahead to the end: two extra steps in the ~33 of 16 clients asking 32 tokens each. A lone
 * request pays one quiet slice. Only from idle: while a step runs, arrivals wait for it anyway
 * and join the next one. (Triton's dynamic batcher waits likewise: max_queue_delay_microseconds.)
 */
export const DEFAULT_GATHER_MS = 2;
const GATHER_MAX_SLICES = 10;
/** Recent generation durations kept to estimate Retry-After when the queue is full. */
const RETRY_AFTER_WINDOW = 32;
const MIN_RETRY_AFTER_SECONDS = 1;
const MAX_RETRY_AFTER_SECONDS = 60;

export interface SchedulerOptions {
  readonly backend: Backend;
  readonly tokenizer: Gpt2Tokenizer;
  readonly metrics: GatewayMetrics;
  readonly maxBatchSize: number;
  readonly maxQueue: number;
  /** Prompt tokens fed per step, over all generations; 0 (the default) feeds prompts whole. */
  readonly prefillChunkTokens?: number;
  /**
   * A step that feeds prompt tokens is sized to take at most this many times the fastest recent
   * decode (PrefillBudget), on backends that report their step costs; 0 or absent: every step
   * may feed prefillChunkTokens.
   */
  readonly prefillStepSlowdown?: number;
  /**
   * Bound on the sum of (prompt + max_new_tokens) over the active generations: what their KV
   * caches can grow to. The next queued generation waits (in order) until it fits; one alone is
   * always admitted. 0 or absent: no bound beyond maxBatchSize.
   */
  readonly maxBatchTotalTokens?: number;
  /** How long the first step from idle waits for more arrivals; default DEFAULT_GATHER_MS. */
  readonly gatherMs?: number;
  readonly now?: () => number;
}

/** Raised into a generation's promise when its client went away; nobody is left to answer. */
export class GenerationCancelledError extends Error {
  override readonly name = 'GenerationCancelledError';
}

interface Job {
  readonly generation: Generation;
  readonly sequenceId: number;
  readonly signal: AbortSignal | undefined;
  stepped: boolean;
  /** Answered (resolved or rejected): a step that completes afterwards must not answer again. */
  settled: boolean;
  /** Prompt tokens the backend has been fed (the whole prompt once its prefill is done). */
  fed: number;
  resolve(outcome: GenerationOutcome): void;
  reject(err: unknown): void;
}

/** One job's part in a step: what the backend is asked, and the prompt tokens fed after it. */
interface Planned {
  readonly job: Job;
  readonly request: StepRequest;
  readonly fed: number;
}

export class Scheduler {
  readonly #options: SchedulerOptions;
  readonly #now: () => number;
  readonly #queue: Job[] = [];
  readonly #active: Job[] = [];
  readonly #recentSeconds: number[] = [];
  #nextSequenceId = 1;
  #running = false;
  #draining = false;
  #idleWaiters: (() => void)[] = [];
  /** Aborted by abortAll(): cuts the backend call of the step in flight. */
  readonly #stepAbort = new AbortController();
  readonly #prefillBudget: PrefillBudget;

  constructor(options: SchedulerOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
    this.#prefillBudget = new PrefillBudget({
      maxTokens: options.prefillChunkTokens ?? 0,
      stepSlowdown: options.prefillStepSlowdown ?? 0,
    });
  }

  get maxBatchSize(): number {
    return Math.min(this.#options.maxBatchSize, this.#options.backend.description.maxBatchSize);
  }

  get draining(): boolean {
    return this.#draining;
  }

  get activeCount(): number {
    return this.#active.length;
  }

  get queuedCount(): number {
    return this.#queue.length;
  }

  /**
   * Admits a generation or throws GatewayError (QUEUE_FULL, SHUTTING_DOWN) at once, so that a
   * streaming route can still answer with a status code. The returned promise settles with the
   * outcome, a BackendError, or GenerationCancelledError once `signal` aborts.
   */
  submit(spec: GenerationSpec, signal?: AbortSignal): Promise<GenerationOutcome> {
    return this.submitAll([spec], signal)[0]!;
  }

  /** Generations that can be accepted at once: the batch slots plus the wait queue. */
  get capacity(): number {
    return this.maxBatchSize + this.#options.maxQueue;
  }

  /**
   * Admits several generations together or none of them: the refusal (QUEUE_FULL, SHUTTING_DOWN)
   * is thrown before any of them queues, so a client that retries a refused multi-prompt request
   * never leaves half of it running. One promise per spec, in order, each as submit()'s; they
   * join the queue side by side, so free slots take them into the same step.
   */
  submitAll(specs: readonly GenerationSpec[], signal?: AbortSignal): Promise<GenerationOutcome>[] {
    if (this.#draining) {
      // The catalogue's message and Retry-After: retry soon, elsewhere.
      throw new GatewayError('SHUTTING_DOWN');
    }
    const waiting = this.#active.length + this.#queue.length;
    if (waiting + specs.length > this.capacity) {
      const asked = specs.length === 1 ? '' : ` (this request needs ${specs.length})`;
      throw new GatewayError(
        'QUEUE_FULL',
        `all ${this.maxBatchSize} generation slots are busy and ${this.#options.maxQueue} requests are waiting${asked}; retry later`,
        { retryAfterSeconds: this.#retryAfterSeconds() },
      );
    }
    const promises = specs.map((spec) => this.#enqueue(spec, signal));
    this.#updateGauges();
    void this.#loop();
    return promises;
  }

  #enqueue(spec: GenerationSpec, signal: AbortSignal | undefined): Promise<GenerationOutcome> {
    this.#options.metrics.promptTokens.inc(spec.promptIds.length);
    return new Promise<GenerationOutcome>((resolve, reject) => {
      const job: Job = {
        generation: new Generation(spec, this.#options.tokenizer, this.#now()),
        sequenceId: this.#nextSequenceId++,
        signal,
        stepped: false,
        fed: 0,
        settled: false,
        resolve(outcome) {
          if (job.settled) return;
          job.settled = true;
          resolve(outcome);
        },
        reject(err) {
          if (job.settled) return;
          job.settled = true;
          reject(err);
        },
      };
      if (signal?.aborted) {
        reject(new GenerationCancelledError('the client went away'));
        return;
      }
      // A queued job that is cancelled leaves the queue at once; an active one at the next step.
      signal?.addEventListener('abort', () => this.#cancelQueued(job), { once: true });
      this.#queue.push(job);
    });
  }

  /** Refuse new generations from now on; resolves when every accepted one has ended. */
  drain(): Promise<void> {
    this.#draining = true;
    if (!this.#running && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * The shutdown deadline: refuse new work and fail every accepted generation with `error` now —
   * queued ones leave the queue, active ones are answered at once and leave at the step boundary
   * (their backend state released there, once), and the backend call in flight is aborted where
   * the backend honours the signal. Returns how many generations it ended.
   */
  abortAll(error: unknown): number {
    this.#draining = true;
    const { metrics } = this.#options;
    // A client already gone is left to the step boundary, which counts it as cancelled.
    const unanswered = this.#active.filter((job) => !job.settled && job.signal?.aborted !== true);
    const ended = [...this.#queue.splice(0), ...unanswered];
    for (const job of ended) {
      metrics.generations.inc({ finish_reason: 'error' });
      job.reject(error);
    }
    this.#updateGauges();
    if (this.#active.length > 0) this.#stepAbort.abort(error);
    return ended.length;
  }

  async #loop(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      // Checked here, not awaited in vain: with no wait the first step keeps its old tick.
      if (this.#gatherSliceMs > 0 && this.#active.length === 0) await this.#gather();
      for (;;) {
        // Let HTTP I/O (new requests, disconnects) run before every step, even when the backend
        // answers synchronously; requests that arrive meanwhile join this step.
        await yieldToEventLoop();
        this.#admit();
        await this.#dropCancelled();
        if (this.#active.length === 0) {
          if (this.#queue.length === 0) break;
          continue;
        }
        await this.#step(this.#plan());
      }
    } finally {
      this.#running = false;
      this.#updateGauges();
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  get #gatherSliceMs(): number {
    return this.#options.gatherMs ?? DEFAULT_GATHER_MS;
  }

  async #gather(): Promise<void> {
    const slice = this.#gatherSliceMs;
    for (let n = 0; n < GATHER_MAX_SLICES && this.#queue.length < this.maxBatchSize; n++) {
      const seen = this.#queue.length;
      await delay(slice);
      if (this.#queue.length <= seen) return;
    }
  }

  #admit(): void {
    const budget = this.#options.maxBatchTotalTokens ?? 0;
    let tokens = 0;
    for (const job of this.#active) tokens += reservedTokens(job);
    while (this.#active.length < this.maxBatchSize && this.#queue.length > 0) {
      const next = reservedTokens(this.#queue[0]!);
      // In order, never skipping ahead: a long generation is not starved by short ones behind it.
      if (budget > 0 && this.#active.length > 0 && tokens + next > budget) break;
      this.#active.push(this.#queue.shift()!);
      tokens += next;
    }
    this.#updateGauges();
  }

  async #dropCancelled(): Promise<void> {
    for (const job of [...this.#active]) {
      if (job.settled) {
        // Answered by abortAll() while its step was in flight: only its backend state is left.
        await this.#end(job);
      } else if (job.signal?.aborted) {
        this.#options.metrics.generations.inc({ finish_reason: 'cancelled' });
        await this.#end(job);
        job.reject(new GenerationCancelledError('the client went away'));
      }
    }
  }

  /** This step's request for each active job that takes part, under the prefill budget. */
  #plan(): Planned[] {
    const { backend, prefillChunkTokens = 0 } = this.#options;
    const chunking = backend.description.chunkedPrefill === true && prefillChunkTokens > 0;
    const decodes = this.#active.some((job) => job.fed >= job.generation.spec.promptIds.length);
    let budget = chunking ? this.#prefillBudget.tokens(decodes) : Number.POSITIVE_INFINITY;
    const plan: Planned[] = [];
    for (const job of this.#active) {
      const { sequence } = job.generation;
      const promptLength = job.generation.spec.promptIds.length;
      if (job.fed >= promptLength) {
        plan.push({ job, request: { sequenceId: job.sequenceId, tokens: sequence }, fed: job.fed });
        continue;
      }
      const take = Math.min(promptLength - job.fed, budget);
      // No budget left: this prompt's next chunk waits for the next step.
      if (take <= 0) continue;
      budget -= take;
      const fed = job.fed + take;
      const request: StepRequest =
        fed === promptLength
          ? { sequenceId: job.sequenceId, tokens: sequence }
          : { sequenceId: job.sequenceId, tokens: sequence.slice(0, fed), wantToken: false };
      plan.push({ job, request, fed });
    }
    return plan;
  }

  async #step(plan: Planned[]): Promise<void> {
    const { backend, metrics } = this.#options;
    const started = this.#now();
    const abort = this.#stepAbort.signal;
    for (const { job } of plan) {
      job.generation.markStarted(started);
      job.stepped = true;
    }
    let results: Awaited<ReturnType<Backend['step']>>;
    try {
      results = await backend.step(
        plan.map((p) => p.request),
        abort,
      );
      if (results.length !== plan.length) {
        throw new BackendError(
          'BACKEND_BAD_RESPONSE',
          `backend returned ${results.length} results for a batch of ${plan.length}`,
        );
      }
      const vocabSize = this.#options.tokenizer.vocabSize;
      for (const [i, r] of results.entries()) {
        if (plan[i]!.request.wantToken === false) continue;
        if (r === undefined) {
          throw new BackendError(
            'BACKEND_BAD_RESPONSE',
            'backend returned no token for a sequence',
          );
        }
        if (!Number.isInteger(r.tokenId) || r.tokenId < 0 || r.tokenId >= vocabSize) {
          throw new BackendError(
            'BACKEND_BAD_RESPONSE',
            `backend returned token id ${r.tokenId}, outside the vocabulary`,
          );
        }
      }
    } catch (err) {
      // One failed forward pass fails every generation in it: there is no partial result.
      for (const { job } of plan) {
        if (!job.settled) metrics.generations.inc({ finish_reason: 'error' });
        await this.#end(job);
        job.reject(err);
      }
      return;
    }
    const now = this.#now();
    const stepSeconds = (now - started) / 1000;
    const { kind, variant } = backend.description;
    metrics.backendStep.observe({ backend: kind, variant }, stepSeconds);
    metrics.batchSize.observe(plan.length);
    const promptTokens = plan.reduce((sum, p) => sum + p.fed - p.job.fed, 0);
    this.#prefillBudget.observe(promptTokens, backend.lastStepCost?.());
    if (promptTokens > 0) metrics.stepPromptTokens.observe(promptTokens);
    let generated = 0;
    for (const [i, { job, request, fed }] of plan.entries()) {
      job.fed = fed;
      // Ended by abortAll() during the step: no token after its error; released at the boundary.
      if (job.settled) continue;
      // A prefill chunk that does not end its prompt produces no token.
      if (request.wantToken === false) continue;
      generated++;
      const token = job.generation.accept(results[i]!, now - started, now);
      if (token.index === 0) metrics.timeToFirstToken.observe(token.sincePreviousMs / 1000);
      else metrics.timePerOutputToken.observe(token.sincePreviousMs / 1000);
      if (job.generation.finished) {
        const outcome = job.generation.outcome(now);
        metrics.generations.inc({ finish_reason: outcome.finishReason });
        this.#remember(outcome.timings.totalMs / 1000);
        await this.#end(job);
        job.resolve(outcome);
      }
    }
    metrics.generatedTokens.inc(generated);
  }

  /** Removes an active job and frees its backend state (exactly once per stepped sequence). */
  async #end(job: Job): Promise<void> {
    const at = this.#active.indexOf(job);
    if (at !== -1) this.#active.splice(at, 1);
    if (job.stepped) {
      job.stepped = false;
      // release() must not reject (backend.ts); a bug there must not stop the loop either.
      await this.#options.backend.release(job.sequenceId).catch(() => undefined);
    }
    this.#updateGauges();
  }

  #cancelQueued(job: Job): void {
    const at = this.#queue.indexOf(job);
    if (at === -1) return;
    this.#queue.splice(at, 1);
    this.#options.metrics.generations.inc({ finish_reason: 'cancelled' });
    this.#updateGauges();
    job.reject(new GenerationCancelledError('the client went away'));
  }

  #remember(seconds: number): void {
    this.#recentSeconds.push(seconds);
    if (this.#recentSeconds.length > RETRY_AFTER_WINDOW) this.#recentSeconds.shift();
  }

  /** A waiting client frees up about every (mean generation time / batch size). */
  #retryAfterSeconds(): number {
    const n = this.#recentSeconds.length;
    if (n === 0) return MIN_RETRY_AFTER_SECONDS;
    const mean = this.#recentSeconds.reduce((a, b) => a + b, 0) / n;
    const estimate = Math.ceil((mean * (this.#queue.length + 1)) / this.maxBatchSize);
    return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(MIN_RETRY_AFTER_SECONDS, estimate));
  }

  #updateGauges(): void {
    this.#options.metrics.inFlight.set(this.#active.length);
    this.#options.metrics.queued.set(this.#queue.length);
  }
}

/** The most tokens a generation's sequence can hold: its prompt plus every token it may add. */
function reservedTokens(job: Job): number {
  return job.generation.spec.promptIds.length + job.generation.spec.maxNewTokens;
}
