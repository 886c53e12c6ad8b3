/**
 * Whether the upstream can serve: server ready (GET /v2/health/ready) and model ready
 * (GET /v2/models/{name}/ready), KServe v2's health endpoints. Polled until ready at start-up,
 * then re-checked in the background so /readyz follows the upstream without a request failing.
 *
 * A poll that gets an answer is believed at once (a "not ready" is the upstream's own word). A
 * poll that gets none — refused, reset, or silent for `timeoutMs` (a frozen or overloaded
 * server) — is a miss: after `failures` misses in a row the upstream is not ready, so the
 * Service sends traffic to replicas that can serve instead of letting every request wait for
 * its TRITON_TIMEOUT_MS.
 */
import type { Readiness } from '../backend.js';
import type { UpstreamClient } from './upstream-client.js';

/** Pause between readiness probes while init() waits. */
const STARTUP_POLL_MS = 1_000;

export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** The part of the upstream client that health polling uses. */
export type HealthClient = Pick<UpstreamClient, 'url' | 'probe'>;

export interface UpstreamHealthOptions {
  readonly client: HealthClient;
  readonly modelName: string;
  /** `/v2/models/{name}`, URL-encoded. */
  readonly modelPath: string;
  readonly log: Logger;
  readonly now: () => number;
  /** One poll (both probes) that has no answer within this long is missed. */
  readonly timeoutMs: number;
  /** Missed polls in a row before the upstream counts as not ready (at least 1). */
  readonly failures: number;
}

/** What one poll learned: an answer (ready or why not), or no answer at all. */
interface Poll {
  readonly answered: boolean;
  /** Why not ready; undefined when ready. */
  readonly reason: string | undefined;
}

export class UpstreamHealth {
  readonly #o: UpstreamHealthOptions;
  /** Why the upstream cannot serve, as last seen; undefined once it can. */
  #reason: string | undefined = 'not initialised';
  #missed = 0;
  /** The last answer logged (without the count of misses), so that a change is logged once. */
  #logged: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: UpstreamHealthOptions) {
    this.#o = options;
  }

  readiness(): Readiness {
    return this.#reason === undefined ? { ready: true } : { ready: false, reason: this.#reason };
  }

  /** Polls until server and model are ready; rejects with the last reason after `timeoutMs`. */
  async waitUntilReady(timeoutMs: number): Promise<void> {
    const { client, modelName, log, now } = this.#o;
    const deadline = now() + timeoutMs;
    for (;;) {
      const { reason } = await this.#poll();
      // Ready to be asked, not to serve: init() calls markReady() once it has a plan.
      if (reason === undefined) return;
      this.#reason = reason;
      if (now() + STARTUP_POLL_MS > deadline) {
        throw new Error(
          `Triton backend: ${reason} (waited ${timeoutMs} ms; TRITON_URL=${client.url}, MODEL_NAME=${modelName})`,
        );
      }
      log.info({ reason }, 'waiting for the model server');
      await new Promise((r) => setTimeout(r, STARTUP_POLL_MS));
    }
  }

  /** init() has understood the model: the backend can serve. */
  markReady(): void {
    this.#reason = undefined;
    this.#missed = 0;
  }

  /**
   * Re-checks every `intervalMs` (0: never) until stop(); the timer never holds the process.
   * Polls never overlap: one that ran past the interval is followed by the next at once.
   */
  start(intervalMs: number): void {
    if (intervalMs <= 0 || this.#timer !== undefined || this.#stopped) return;
    const schedule = (delayMs: number) => {
      this.#timer = setTimeout(async () => {
        const started = this.#o.now();
        await this.check();
        if (!this.#stopped) schedule(Math.max(0, intervalMs - (this.#o.now() - started)));
      }, delayMs);
      this.#timer.unref();
    };
    schedule(intervalMs);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** One background check; logs only when the answer changes. */
  async check(): Promise<void> {
    if (this.#stopped) return;
    const poll = await this.#poll();
    let reason = poll.reason;
    if (poll.answered) this.#missed = 0;
    else {
      this.#missed += 1;
      if (this.#missed < this.#o.failures) {
        // One miss may be a blip (a GC pause, a dropped connection): keep the last answer.
        this.#o.log.debug({ reason, missed: this.#missed }, 'model server health poll missed');
        return;
      }
      reason = `${reason} (${this.#missed} health polls in a row)`;
    }
    // Log a change of answer, not every further miss that keeps it.
    if (poll.reason !== this.#logged) {
      this.#o.log[reason === undefined ? 'info' : 'warn'](
        { reason },
        reason === undefined ? 'model server ready again' : 'model server not ready',
      );
      this.#logged = poll.reason;
    }
    this.#reason = reason;
  }

  /** Asks both health endpoints within the poll's deadline. */
  async #poll(): Promise<Poll> {
    const { client, modelName, modelPath, timeoutMs } = this.#o;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), timeoutMs);
    let asking = '/v2/health/ready';
    try {
      const signal = deadline.signal;
      if (!(await client.probe('health', asking, 'server readiness', signal))) {
        return {
          answered: true,
          reason: `the model server at ${client.url} is not ready (GET /v2/health/ready)`,
        };
      }
      asking = `${modelPath}/ready`;
      if (!(await client.probe('model_ready', asking, 'model readiness', signal))) {
        return {
          answered: true,
          reason: `model '${modelName}' is not ready on ${client.url} (GET ${modelPath}/ready)`,
        };
      }
      return { answered: true, reason: undefined };
    } catch (err) {
      const reason = deadline.signal.aborted
        ? `the model server at ${client.url} did not answer GET ${asking} within ${timeoutMs} ms`
        : err instanceof Error
          ? err.message
          : String(err);
      return { answered: false, reason };
    } finally {
      clearTimeout(timer);
    }
  }
}
