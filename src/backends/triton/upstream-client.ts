/**
 * HTTP calls to one KServe v2 upstream over an undici dispatcher (a keep-alive Pool): per-call
 * deadline, retry only when nothing was sent, the circuit breaker, metrics, and every body read
 * to the end or dumped (undici README "Garbage Collection"). Everything thrown is a BackendError.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import type { UpstreamEndpoint, UpstreamMetrics } from '../../metrics/upstream-metrics.js';
import { BackendError } from '../backend.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import {
  countsAgainstUpstream,
  fromErrorResponse,
  fromTransportError,
  isNotSent,
} from './upstream-errors.js';

/** Backoff before retry n (1-based) of a call that was never sent. */
const RETRY_BACKOFF_MS = 50;

export interface UpstreamClientOptions {
  readonly dispatcher: Dispatcher;
  /** Base URL; a path prefix (an ingress route such as /seldon/ns/sdep) is kept. */
  readonly baseUrl: URL;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly breaker: CircuitBreaker;
  readonly metrics: UpstreamMetrics;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: Buffer;
}

export interface CallOptions {
  readonly endpoint: UpstreamEndpoint;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: Buffer;
  readonly headers?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
  /** Names the call in error messages. */
  readonly what: string;
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export class UpstreamClient {
  readonly #o: UpstreamClientOptions;
  readonly #origin: string;
  readonly #prefix: string;

  constructor(opts: UpstreamClientOptions) {
    this.#o = opts;
    this.#origin = opts.baseUrl.origin;
    this.#prefix = opts.baseUrl.pathname.replace(/\/+$/, '');
  }

  get url(): string {
    return `${this.#origin}${this.#prefix}`;
  }

  /** Send one call; any HTTP status comes back (the body read in full). Transport failures throw. */
  async send(call: CallOptions): Promise<UpstreamResponse> {
    const { breaker, metrics } = this.#o;
    for (let attempt = 0; ; attempt++) {
      if (!breaker.tryAcquire()) {
        throw new BackendError(
          'BACKEND_UNAVAILABLE',
          `${call.what}: the model server is failing; calls are paused (circuit open)`,
          { retryAfterSeconds: Math.max(1, Math.ceil(breaker.retryAfterMs() / 1000)) },
        );
      }
      const started = performance.now();
      try {
        const res = await this.#once(call);
        metrics.duration.observe({ endpoint: call.endpoint }, (performance.now() - started) / 1000);
        metrics.receivedBytes.inc({ endpoint: call.endpoint }, res.body.byteLength);
        // A live server answered: whatever it said, the transport works.
        breaker.success();
        return res;
      } catch (err) {
        if (call.signal?.aborted) {
          breaker.release();
          throw call.signal.reason;
        }
        const mapped = fromTransportError(err, call.what);
        if (countsAgainstUpstream(mapped)) breaker.failure();
        else breaker.release();
        if (isNotSent(err) && attempt < this.#o.retries) {
          metrics.retries.inc({ endpoint: call.endpoint });
          await sleep(RETRY_BACKOFF_MS * 2 ** attempt, undefined, { signal: call.signal }).catch(
            () => undefined,
          );
          if (call.signal?.aborted) throw call.signal.reason;
          continue;
        }
        metrics.requests.inc({ endpoint: call.endpoint, outcome: mapped.code });
        throw mapped;
      }
    }
  }

  async #once(call: CallOptions): Promise<UpstreamResponse> {
    const deadline = AbortSignal.timeout(this.#o.timeoutMs);
    const signal = call.signal === undefined ? deadline : AbortSignal.any([deadline, call.signal]);
    const headers: Record<string, string> = { ...call.headers };
    if (call.body !== undefined)
      this.#o.metrics.sentBytes.inc({ endpoint: call.endpoint }, call.body.byteLength);
    let res: Dispatcher.ResponseData | undefined;
    try {
      res = await this.#o.dispatcher.request({
        origin: this.#origin,
        path: `${this.#prefix}${call.path}`,
        method: call.method,
        headers,
        body: call.body ?? null,
        signal,
      });
      const body = Buffer.from(await res.body.arrayBuffer());
      const out: Record<string, string | undefined> = {};
      for (const [k, v] of Object.entries(res.headers)) out[k] = headerValue(v);
      return { status: res.statusCode, headers: out, body };
    } catch (err) {
      // Free the connection whatever happened mid-body (destroy, never leave it half-read).
      if (res !== undefined && !res.body.destroyed) res.body.destroy();
      if (deadline.aborted && call.signal?.aborted !== true) {
        throw new BackendError(
          'BACKEND_TIMEOUT',
          `${call.what}: no complete answer from the model server within ${this.#o.timeoutMs} ms`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /** A call whose answer must be 2xx; anything else is mapped to a BackendError. */
  async expectOk(call: CallOptions): Promise<UpstreamResponse> {
    const res = await this.send(call);
    if (res.status >= 200 && res.status < 300) {
      this.#o.metrics.requests.inc({ endpoint: call.endpoint, outcome: 'ok' });
      return res;
    }
    const err = fromErrorResponse(
      res.status,
      res.body.toString('utf8'),
      res.headers['retry-after'],
      call.what,
    );
    this.#o.metrics.requests.inc({ endpoint: call.endpoint, outcome: err.code });
    throw err;
  }

  /** GET a JSON document (2xx required). */
  async getJson(
    endpoint: UpstreamEndpoint,
    path: string,
    what: string,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const res = await this.expectOk({
      endpoint,
      method: 'GET',
      path,
      what,
      ...(signal ? { signal } : {}),
    });
    try {
      return JSON.parse(res.body.toString('utf8'));
    } catch (err) {
      throw new BackendError(
        'BACKEND_BAD_RESPONSE',
        `${what}: the model server's answer is not JSON`,
        { cause: err },
      );
    }
  }

  /** A health-style probe: true on 2xx, false on any other status (KServe v2: any non-200 means not ready; Triton answers 400). */
  async probe(
    endpoint: UpstreamEndpoint,
    path: string,
    what: string,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const res = await this.send({
      endpoint,
      method: 'GET',
      path,
      what,
      ...(signal ? { signal } : {}),
    });
    const ok = res.status >= 200 && res.status < 300;
    this.#o.metrics.requests.inc({ endpoint, outcome: ok ? 'ok' : 'not_ready' });
    return ok;
  }
}
