/**
 * Whether the upstream can serve: server ready (GET /v2/health/ready) and model ready
 * (GET /v2/models/{name}/ready), KServe v2's health endpoints. Polled until ready at start-up,
 * then re-checked in the background so /readyz follows the upstream without a request failing.
 */
import type { Readiness } from '../backend.js';
import type { UpstreamClient } from './upstream-client.js';

/** Background readiness re-check. */
export const DEFAULT_HEALTH_INTERVAL_MS = 5_000;
/** Pause between readiness probes while init() waits. */
const STARTUP_POLL_MS = 1_000;

export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface UpstreamHealthOptions {
  readonly client: UpstreamClient;
  readonly modelName: string;
  /** `/v2/models/{name}`, URL-encoded. */
  readonly modelPath: string;
  readonly log: Logger;
  readonly now: () => number;
}

export class UpstreamHealth {
  readonly #o: UpstreamHealthOptions;
  /** Why the upstream cannot serve, as last seen; undefined once it can. */
  #reason: string | undefined = 'not initialised';
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
      const reason = await this.#notReady();
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
  }

  /** Re-checks every `intervalMs` (0: never) until stop(); the timer never holds the process. */
  start(intervalMs: number): void {
    if (intervalMs <= 0 || this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.check(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  /** One background check; logs only when the answer changes. */
  async check(): Promise<void> {
    if (this.#stopped) return;
    const reason = await this.#notReady();
    if (reason !== this.#reason) {
      this.#o.log[reason === undefined ? 'info' : 'warn'](
        { reason },
        reason === undefined ? 'model server ready again' : 'model server not ready',
      );
    }
    this.#reason = reason;
  }

  /** Why the upstream cannot serve now, or undefined when server and model are ready. */
  async #notReady(): Promise<string | undefined> {
    const { client, modelName, modelPath } = this.#o;
    try {
      if (!(await client.probe('health', '/v2/health/ready', 'server readiness'))) {
        return `the model server at ${client.url} is not ready (GET /v2/health/ready)`;
      }
      if (!(await client.probe('model_ready', `${modelPath}/ready`, 'model readiness'))) {
        return `model '${modelName}' is not ready on ${client.url} (GET ${modelPath}/ready)`;
      }
      return undefined;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }
}
