/**
 * Open-loop, constant-rate load against POST /complete (the way vegeta attacks): request i is sent
 * at start + i/rate whether or not earlier ones have answered, so a slow server shows up as
 * latency, not as a lower offered rate. `rate: 'max'` instead keeps `concurrency` requests in
 * flight back to back (vegeta's -rate=0), which finds the saturation throughput.
 * Always bounded: a fixed request count decided up front, a per-request timeout, and a cap on
 * requests in flight.
 */
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';

export interface AttackOptions {
  url: URL;
  /** Requests per second, or 'max' for closed-loop saturation with `concurrency` workers. */
  rate: number | 'max';
  durationMs: number;
  /** Hard cap on requests sent (in addition to rate × duration). */
  maxRequests: number;
  /** Workers for rate 'max'. */
  concurrency: number;
  /** Open loop: a request due while this many are outstanding is not sent and counts as an error. */
  maxInFlight: number;
  timeoutMs: number;
  /** JSON bodies, used round-robin. */
  bodies: readonly string[];
  headers?: Readonly<Record<string, string>>;
  stream: boolean;
  signal?: AbortSignal;
}

export interface RequestResult {
  /** When the request was sent, ms since the attack started. */
  startMs: number;
  latencyMs: number;
  /** HTTP status, or 0 when no response came (connection error, timeout, dropped). */
  status: number;
  bytesIn: number;
  bytesOut: number;
  error?: string;
  completionTokens?: number;
  /** Time to first token: measured by us when streaming, else as the gateway reported it. */
  ttftMs?: number;
}

export interface AttackResult {
  results: RequestResult[];
  /** From the first request sent to the last. */
  attackMs: number;
  /** From the last request sent to the last response. */
  waitMs: number;
}

export async function attack(options: AttackOptions): Promise<AttackResult> {
  const dispatcher = new Agent({
    connections: options.rate === 'max' ? options.concurrency : options.maxInFlight,
    // The gateway may hold a request for a long generation; our own timeout governs.
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
  });
  const results: RequestResult[] = [];
  const t0 = performance.now();
  let lastSent = 0;
  let inFlight = 0;
  const fire = async (i: number): Promise<void> => {
    const body = options.bodies[i % options.bodies.length] ?? '{}';
    const startMs = performance.now() - t0;
    lastSent = Math.max(lastSent, startMs);
    inFlight++;
    try {
      results.push(await send(dispatcher, options, body, startMs));
    } finally {
      inFlight--;
    }
  };
  try {
    if (options.rate === 'max') {
      let next = 0;
      const deadline = t0 + options.durationMs;
      const worker = async () => {
        while (
          next < options.maxRequests &&
          performance.now() < deadline &&
          options.signal?.aborted !== true
        ) {
          await fire(next++);
        }
      };
      await Promise.all(Array.from({ length: options.concurrency }, worker));
    } else {
      const total = Math.min(
        options.maxRequests,
        Math.floor((options.rate * options.durationMs) / 1000),
      );
      const pending: Promise<void>[] = [];
      for (let i = 0; i < total && options.signal?.aborted !== true; i++) {
        const due = (i * 1000) / options.rate;
        // Timers have millisecond granularity and may fire a fraction early: never send before
        // the request is due, or the open-loop schedule (request i at i / rate) is not kept.
        for (
          let wait = due - (performance.now() - t0);
          wait > 0;
          wait = due - (performance.now() - t0)
        ) {
          await new Promise((resolve) => setTimeout(resolve, Math.ceil(wait)));
        }
        if (inFlight >= options.maxInFlight) {
          const startMs = performance.now() - t0;
          results.push({
            startMs,
            latencyMs: 0,
            status: 0,
            bytesIn: 0,
            bytesOut: 0,
            error: `not sent: ${options.maxInFlight} requests already in flight`,
          });
          continue;
        }
        pending.push(fire(i));
      }
      await Promise.all(pending);
    }
  } finally {
    await dispatcher.close();
  }
  const end = performance.now() - t0;
  results.sort((a, b) => a.startMs - b.startMs);
  const first = results[0]?.startMs ?? 0;
  return { results, attackMs: lastSent - first, waitMs: Math.max(0, end - lastSent) };
}

async function send(
  dispatcher: Agent,
  options: AttackOptions,
  body: string,
  startMs: number,
): Promise<RequestResult> {
  const bytesOut = Buffer.byteLength(body);
  const started = performance.now();
  const signal = AbortSignal.timeout(options.timeoutMs);
  try {
    const res = await request(options.url, {
      method: 'POST',
      dispatcher,
      body,
      headers: {
        'content-type': 'application/json',
        accept: options.stream ? 'text/event-stream' : 'application/json',
        ...options.headers,
      },
      signal,
    });
    let bytesIn = 0;
    let text = '';
    let ttftMs: number | undefined;
    for await (const chunk of res.body) {
      const buf = chunk as Buffer;
      bytesIn += buf.length;
      text += buf.toString('utf8');
      if (options.stream && ttftMs === undefined && text.includes('event: token'))
        ttftMs = performance.now() - started;
    }
    const latencyMs = performance.now() - started;
    const result: RequestResult = { startMs, latencyMs, status: res.statusCode, bytesIn, bytesOut };
    if (res.statusCode < 200 || res.statusCode >= 300) {
      result.error = errorCode(text) ?? `HTTP ${res.statusCode}`;
      return result;
    }
    const facts = options.stream ? streamFacts(text) : jsonFacts(text);
    if (facts.completionTokens !== undefined) result.completionTokens = facts.completionTokens;
    const ttft = options.stream ? ttftMs : facts.ttftMs;
    if (ttft !== undefined) result.ttftMs = ttft;
    if (facts.error !== undefined) result.error = facts.error;
    return result;
  } catch (err) {
    const latencyMs = performance.now() - started;
    const why = signal.aborted
      ? `timeout after ${options.timeoutMs} ms`
      : err instanceof Error
        ? `${(err as { code?: string }).code ?? err.name}: ${err.message}`
        : String(err);
    return { startMs, latencyMs, status: 0, bytesIn: 0, bytesOut, error: why };
  }
}

interface Facts {
  completionTokens?: number;
  ttftMs?: number;
  error?: string;
}

function jsonFacts(text: string): Facts {
  const body = parseJson(text);
  const usage = record(record(body).usage);
  const timings = record(record(body).timings);
  const facts: Facts = {};
  if (typeof usage.completion_tokens === 'number') facts.completionTokens = usage.completion_tokens;
  if (typeof timings.time_to_first_token_ms === 'number')
    facts.ttftMs = timings.time_to_first_token_ms;
  return facts;
}

/** SSE: one `event: token` per token, then `event: done` with the totals or `event: error`. */
function streamFacts(text: string): Facts {
  let tokens = 0;
  const facts: Facts = {};
  for (const block of text.split(/\r?\n\r?\n/)) {
    const event = /^event: *(.*)$/m.exec(block)?.[1]?.trim();
    const data = block
      .split(/\r?\n/)
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).trimStart())
      .join('\n');
    if (event === 'token') tokens++;
    if (event === 'done') {
      const usage = record(record(parseJson(data)).usage);
      if (typeof usage.completion_tokens === 'number') tokens = usage.completion_tokens;
    }
    if (event === 'error') facts.error = errorCode(data) ?? 'stream error';
  }
  facts.completionTokens = tokens;
  return facts;
}

/** The gateway's error body is {"error": {"code", "message"}}; its code is the stable thing to count. */
function errorCode(text: string): string | undefined {
  const error = record(record(parseJson(text)).error);
  return typeof error.code === 'string' ? error.code : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}
