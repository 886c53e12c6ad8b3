/**
 * The embedded backend as the gateway runs it: a thin proxy on the main thread over an inference
 * worker (inference-worker.ts) that owns the onnxruntime session, the KV caches and the greedy
 * pass. onnxruntime-node runs a session synchronously on its caller's thread, so in-process
 * inference would freeze every probe, scrape and stream for the length of each step.
 *
 * A worker that crashes (an uncaught error, an exit) or hangs (a step that outlives the
 * watchdog) fails the steps in flight with a BackendError — 502 BACKEND_ERROR for a crash,
 * 504 BACKEND_TIMEOUT for a hang — and is replaced by a fresh one (new session and warm-up);
 * readiness() reports not ready until it is up. Steps that arrive meanwhile wait for it. Sequences
 * the old worker held are simply new to the next one: every StepRequest carries the sequence from
 * its first token, so their prefill runs again.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import {
  type Backend,
  type BackendDescription,
  BackendError,
  type Readiness,
  type StepCost,
  type StepRequest,
  type StepResult,
} from '../backend.js';
import type { EmbeddedBackendOptions } from './embedded-backend.js';
import type { FromWorker, ToWorker, WorkerInit, WorkerTestHooks } from './worker-protocol.js';

/**
 * Longest a step may run before the worker counts as hung. Generous: with chunked prefill a step
 * is one chunk per prefilling sequence plus one decode per running one — well under a second for
 * gpt2 on two cores — so only a real hang, or an unchunked prefill of many long prompts, gets near.
 */
export const DEFAULT_STEP_TIMEOUT_MS = 120_000;
/** Waits between failed restarts: doubling from the first to the last. */
const RESTART_BACKOFF_MS = 1000;
const MAX_RESTART_BACKOFF_MS = 30_000;
/**
 * The worker's intra-op threads sleep when idle instead of spinning (onnxruntime's default). The
 * event loop now runs beside inference, and spinning threads take the cores it needs: on two
 * cores, 10 short requests/s through the gateway went from p50 11.5 s (queue full, 23 % refused)
 * with spinning to p50 0.7 s, p99 1.1 s, all served without it.
 */
const DEFAULT_INTRA_OP_SPINNING = false;
/** How long close() lets the worker release its session before terminating it. */
const CLOSE_GRACE_MS = 5000;

export interface WorkerBackendOptions extends Omit<EmbeddedBackendOptions, 'modelFile'> {
  /** The .onnx file, or a function run first in init() that finds (or builds) it. */
  readonly modelFile: string | (() => Promise<string>);
  /** Watchdog per step; default DEFAULT_STEP_TIMEOUT_MS. */
  readonly stepTimeoutMs?: number;
  readonly logger?: Pick<Logger, 'info' | 'error'>;
  /** Tests only: see WorkerTestHooks. */
  readonly testHooks?: WorkerTestHooks;
}

interface Pending {
  readonly resolve: (results: (StepResult | undefined)[]) => void;
  readonly reject: (err: unknown) => void;
  readonly timer: NodeJS.Timeout;
}

/** One live worker: the thread and the steps it has not answered. */
interface Incarnation {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
}

export class WorkerBackend implements Backend {
  readonly #options: WorkerBackendOptions;
  #modelFile: string | undefined;
  #description: BackendDescription | undefined;
  #current: Incarnation | undefined;
  #state = 'not initialised';
  #restarting: Promise<void> | undefined;
  /** The restart attempt under way; a step waits for it, never for the whole backoff loop. */
  #attempt: Promise<void> | undefined;
  #started = 0;
  #nextStepId = 1;
  #closed = false;
  #restarts: Counter | undefined;
  #lastCost: StepCost | undefined;

  constructor(options: WorkerBackendOptions) {
    this.#options = options;
  }

  get description(): BackendDescription {
    if (this.#description === undefined) throw new Error('WorkerBackend: init() has not run');
    return this.#description;
  }

  async init(): Promise<void> {
    this.#state = 'loading the model';
    const option = this.#options.modelFile;
    this.#modelFile = typeof option === 'string' ? option : await option();
    this.#state = 'starting the inference worker';
    await this.#start();
  }

  /** As the worker measured it: its runs' time, without the messages to and fro. */
  lastStepCost(): StepCost | undefined {
    return this.#lastCost;
  }

  readiness(): Readiness {
    return this.#state === 'ready' ? { ready: true } : { ready: false, reason: this.#state };
  }

  /**
   * `signal` (the scheduler's shutdown deadline) answers the step at once; the worker still
   * finishes it, and the releases that follow queue behind it there.
   */
  async step(
    batch: readonly StepRequest[],
    signal?: AbortSignal,
  ): Promise<(StepResult | undefined)[]> {
    if (this.#current === undefined) await this.#attempt?.catch(() => undefined);
    const current = this.#current;
    if (current === undefined || this.#closed) {
      throw new BackendError('BACKEND_NOT_READY', `the embedded model is ${this.#state}`);
    }
    if (signal?.aborted) throw signal.reason;
    const id = this.#nextStepId++;
    const timeoutMs = this.#options.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#lost(
          current,
          new BackendError(
            'BACKEND_TIMEOUT',
            `the inference worker did not finish a step in ${timeoutMs} ms; it is being restarted`,
          ),
        );
      }, timeoutMs);
      const onAbort = () => {
        if (!current.pending.delete(id)) return;
        clearTimeout(timer);
        reject(
          signal?.reason instanceof Error
            ? signal.reason
            : new BackendError('BACKEND_UNAVAILABLE', 'the step was aborted'),
        );
      };
      // The scheduler's signal lives as long as it does: a settled step takes its listener back.
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => signal?.removeEventListener('abort', onAbort);
      current.pending.set(id, {
        resolve: (results) => {
          settle();
          resolve(results);
        },
        reject: (err) => {
          settle();
          reject(err);
        },
        timer,
      });
      this.#post(current, { kind: 'step', id, batch });
    });
  }

  async release(sequenceId: number): Promise<void> {
    const current = this.#current;
    if (current !== undefined) this.#post(current, { kind: 'release', sequenceId });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#state = 'closed';
    const current = this.#current;
    this.#current = undefined;
    if (current === undefined) return;
    this.#failAll(current, new BackendError('BACKEND_NOT_READY', 'the embedded model is closed'));
    const closed = new Promise<void>((resolve) => {
      current.worker.on('message', (m: FromWorker) => m.kind === 'closed' && resolve());
      current.worker.once('exit', () => resolve());
    });
    this.#post(current, { kind: 'close' });
    const grace = delay(CLOSE_GRACE_MS, undefined, { ref: false });
    await Promise.race([closed, grace]);
    await current.worker.terminate();
  }

  registerMetrics(registry: Registry): void {
    this.#restarts = new Counter({
      name: 'gpt2_gateway_embedded_worker_restarts_total',
      help: 'Inference workers replaced after a crash or a hung step',
      labelNames: ['reason'],
      registers: [registry],
    });
  }

  /** Spawns a worker and waits until its session is loaded and warmed up. */
  async #start(): Promise<void> {
    const hooks: WorkerTestHooks = {
      ...(this.#options.testHooks?.holdSteps === undefined
        ? {}
        : { holdSteps: this.#options.testHooks.holdSteps }),
      // Only the first worker dies on purpose: the test checks that the next one serves.
      ...(this.#started === 0 && this.#options.testHooks?.exitOnStep !== undefined
        ? { exitOnStep: this.#options.testHooks.exitOnStep }
        : {}),
    };
    this.#started++;
    const {
      modelFile: _,
      stepTimeoutMs: __,
      logger: ___,
      testHooks: ____,
      ...rest
    } = this.#options;
    const init: WorkerInit = {
      options: {
        ...rest,
        intraOpSpinning: rest.intraOpSpinning ?? DEFAULT_INTRA_OP_SPINNING,
        modelFile: this.#modelFile as string,
      },
      hooks,
    };
    const worker = new Worker(new URL('./inference-worker.js', import.meta.url), {
      workerData: init,
    });
    const incarnation: Incarnation = { worker, pending: new Map() };
    const description = await new Promise<BackendDescription>((resolve, reject) => {
      const early = (err: Error) => reject(err);
      const earlyExit = (code: number) =>
        reject(new Error(`the inference worker exited with code ${code} while loading`));
      worker.once('error', early);
      worker.once('exit', earlyExit);
      worker.once('message', (m: FromWorker) => {
        worker.off('error', early);
        worker.off('exit', earlyExit);
        if (m.kind === 'ready') resolve(m.description);
        else if (m.kind === 'init-failed') reject(new Error(m.message));
        else reject(new Error(`the inference worker said '${m.kind}' before it was ready`));
      });
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    worker.on('message', (m: FromWorker) => this.#answer(incarnation, m));
    worker.on('error', (err) =>
      this.#lost(
        incarnation,
        new BackendError(
          'BACKEND_ERROR',
          `the inference worker crashed (${err.message}); it is being restarted`,
          { cause: err },
        ),
      ),
    );
    worker.on('exit', (code) =>
      this.#lost(
        incarnation,
        new BackendError(
          'BACKEND_ERROR',
          `the inference worker exited with code ${code}; it is being restarted`,
        ),
      ),
    );
    this.#description ??= description;
    if (this.#closed) {
      await worker.terminate();
      return;
    }
    this.#current = incarnation;
    this.#state = 'ready';
  }

  #answer(incarnation: Incarnation, m: FromWorker): void {
    if (m.kind !== 'result' && m.kind !== 'failed') return;
    const pending = incarnation.pending.get(m.id);
    if (pending === undefined) return;
    incarnation.pending.delete(m.id);
    clearTimeout(pending.timer);
    if (m.kind === 'result') {
      this.#lastCost = m.cost;
      pending.resolve([...m.results]);
    } else pending.reject(new BackendError(m.code, m.message));
  }

  #post(incarnation: Incarnation, message: ToWorker): void {
    incarnation.worker.postMessage(message);
  }

  #failAll(incarnation: Incarnation, err: BackendError): void {
    for (const pending of incarnation.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(err);
    }
    incarnation.pending.clear();
  }

  /** The worker crashed or hung: fail its steps, drop it, and bring up a new one. */
  #lost(incarnation: Incarnation, err: BackendError): void {
    if (this.#current !== incarnation) return;
    this.#current = undefined;
    this.#failAll(incarnation, err);
    void incarnation.worker.terminate();
    if (this.#closed) return;
    const reason = err.code === 'BACKEND_TIMEOUT' ? 'hung' : 'crashed';
    this.#restarts?.inc({ reason });
    this.#options.logger?.error({ err: err.message }, 'inference worker lost; restarting it');
    this.#state = `restarting the inference worker: ${err.message}`;
    this.#restarting = this.#restart().finally(() => {
      this.#restarting = undefined;
    });
  }

  /** Starts workers until one is up (or the backend is closed), backing off between failures. */
  async #restart(): Promise<void> {
    for (let wait = RESTART_BACKOFF_MS; !this.#closed; ) {
      try {
        this.#attempt = this.#start();
        await this.#attempt;
        this.#options.logger?.info('inference worker restarted');
        return;
      } catch (err) {
        this.#state = `the inference worker failed to restart (${(err as Error).message}); retrying in ${wait} ms`;
        this.#options.logger?.error(
          { err: (err as Error).message },
          'inference worker restart failed',
        );
        await delay(wait, undefined, { ref: false });
        wait = Math.min(MAX_RESTART_BACKOFF_MS, wait * 2);
      }
    }
  }

  /** Test hook: resolves once a worker is serving (after init or a restart). */
  async whenReady(): Promise<void> {
    while (this.#current === undefined && this.#restarting !== undefined) await this.#restarting;
  }
}
