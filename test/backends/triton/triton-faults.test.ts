/**
 * Upstream faults → BackendError codes, no hang, no leaked connection, and the circuit breaker
 * Real servers on 127.0.0.1:0; the breaker's clock is injected, so no test sleeps for it.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { Pool } from 'undici';
import { BackendError, type BackendErrorCode } from '../../../src/backends/backend.js';
import {
  TritonBackend,
  type TritonBackendOptions,
} from '../../../src/backends/triton/triton-backend.js';
import { expectedNext, type Fault, ReplayTriton } from './replay-triton.js';

// Long enough that a loaded CI machine answers a healthy call in time; the stall cases wait it out.
const TIMEOUT_MS = 1500;
let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

interface Logged {
  readonly obj: object;
  readonly msg: string;
}

async function setup(extra: Partial<TritonBackendOptions> = {}, pool?: (url: string) => Pool) {
  const triton = await ReplayTriton.start();
  const dispatcher = pool?.(triton.url);
  const warnings: Logged[] = [];
  let clock = 0;
  const registry = new Registry();
  const backend = new TritonBackend({
    url: triton.url,
    modelName: 'gpt2',
    wire: 'binary',
    timeoutMs: TIMEOUT_MS,
    connections: 2,
    healthIntervalMs: 0,
    startupTimeoutMs: 0,
    breakerFailures: 3,
    breakerCooldownMs: 1000,
    now: () => clock,
    logger: { info() {}, debug() {}, warn: (obj, msg) => warnings.push({ obj, msg }) },
    ...extra,
    ...(dispatcher ? { dispatcher } : {}),
  });
  backend.registerMetrics(registry);
  cleanup.push(
    () => backend.close(),
    () => triton.close(),
  );
  await backend.init();
  return {
    triton,
    backend,
    warnings,
    registry,
    advance: (ms: number) => {
      clock += ms;
    },
  };
}

function isCode(code: BackendErrorCode, message?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof BackendError, `expected a BackendError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  };
}

const step = (b: TritonBackend, signal?: AbortSignal) =>
  b.step([{ sequenceId: 1, tokens: [42] }], signal);

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('upstream faults', () => {
  it('refused at start-up: init fails saying the server cannot be reached', async () => {
    const port = await freePort();
    const b = new TritonBackend({
      url: `http://127.0.0.1:${port}`,
      modelName: 'gpt2',
      wire: 'binary',
      timeoutMs: TIMEOUT_MS,
      connections: 1,
      startupTimeoutMs: 0,
      healthIntervalMs: 0,
    });
    cleanup.push(() => b.close());
    await assert.rejects(
      b.init(),
      /cannot be reached \(ECONNREFUSED\).*TRITON_URL=http:\/\/127\.0\.0\.1/,
    );
  });

  const cases: [string, Fault, BackendErrorCode, RegExp][] = [
    [
      'stalls before headers',
      'stall-before-headers',
      'BACKEND_TIMEOUT',
      new RegExp(`within ${TIMEOUT_MS} ms`),
    ],
    ['stalls mid-body', 'stall-mid-body', 'BACKEND_TIMEOUT', new RegExp(`within ${TIMEOUT_MS} ms`)],
    ['resets the connection', 'reset', 'BACKEND_UNAVAILABLE', /cannot be reached/],
    ['sends malformed JSON', 'malformed-json', 'BACKEND_BAD_RESPONSE', /does not parse/],
    [
      'is the Seldon executor mangling a binary answer',
      'seldon-executor',
      'BACKEND_BAD_RESPONSE',
      /does not parse/,
    ],
    [
      'sends a wrong Inference-Header-Content-Length',
      'wrong-header-length',
      'BACKEND_BAD_RESPONSE',
      /malformed/,
    ],
    [
      'answers 400 with an error (any Triton error on 21.08)',
      {
        status: 400,
        body: "{\"error\":\"inference input 'input_ids' data-type is 'INT32', but model 'gpt2' expects 'INT64'\"}",
      },
      'BACKEND_ERROR',
      /rejected the call \(HTTP 400\)/,
    ],
    [
      'answers 500 with an error',
      {
        status: 500,
        body: '{"error":"Failed to parse \'data\' field: shape does not match true shape"}',
      },
      'BACKEND_ERROR',
      /HTTP 500/,
    ],
    [
      'answers 503 queue full (>= 24.01)',
      { status: 503, body: '{"error":"Exceeds maximum queue size"}' },
      'BACKEND_OVERLOADED',
      /queue is full/,
    ],
    [
      'answers 400 queue full (21.08)',
      { status: 400, body: '{"error":"Exceeds maximum queue size"}' },
      'BACKEND_OVERLOADED',
      /queue is full/,
    ],
    [
      'answers 503 from a proxy, not Triton',
      { status: 503, body: 'no healthy upstream', headers: { 'content-type': 'text/plain' } },
      'BACKEND_UNAVAILABLE',
      /proxy/,
    ],
    [
      'answers 400 "Server not ready"',
      { status: 400, body: '{"error":"Server not ready"}' },
      'BACKEND_UNAVAILABLE',
      /not ready/,
    ],
  ];
  for (const [name, fault, code, message] of cases) {
    it(`upstream ${name} → ${code}, nothing hangs or leaks, the next call works`, async () => {
      const { triton, backend } = await setup();
      triton.faults.push(fault);
      await assert.rejects(step(backend), isCode(code, message));
      if (fault === 'stall-before-headers' || fault === 'stall-mid-body' || fault === 'reset') {
        // The half-used connection was destroyed, not returned to the pool.
        await triton.lastInferConnectionClosed();
      }
      const [r] = await step(backend);
      assert.equal(r?.tokenId, expectedNext(42));
    });
  }

  it('never retries a call that was sent (reset after the request arrived)', async () => {
    const { triton, backend } = await setup();
    triton.faults.push('reset');
    await assert.rejects(step(backend), isCode('BACKEND_UNAVAILABLE'));
    assert.equal(triton.infers().length, 1);
  });

  it('logs the upstream error message and keeps it out of the error message', async () => {
    const { triton, backend, warnings } = await setup();
    triton.faults.push({ status: 400, body: '{"error":"secret internal detail /models/gpt2/1"}' });
    await assert.rejects(step(backend), (e: unknown) => {
      assert.ok(e instanceof BackendError);
      assert.doesNotMatch(e.message, /secret/);
      return true;
    });
    assert.deepEqual(
      warnings.map((w) => w.obj),
      [
        {
          upstreamStatus: 400,
          upstreamError: 'secret internal detail /models/gpt2/1',
          code: 'BACKEND_ERROR',
        },
      ],
    );
  });

  it('gives Retry-After from the upstream, or 1 s, on overload', async () => {
    const { triton, backend } = await setup();
    triton.faults.push({
      status: 503,
      body: '{"error":"Exceeds maximum queue size"}',
      headers: { 'retry-after': '7' },
    });
    await assert.rejects(
      step(backend),
      (e: unknown) => e instanceof BackendError && e.retryAfterSeconds === 7,
    );
    triton.faults.push({ status: 400, body: '{"error":"Exceeds maximum queue size"}' });
    await assert.rejects(
      step(backend),
      (e: unknown) => e instanceof BackendError && e.retryAfterSeconds === 1,
    );
  });

  it('a cancelled step rejects with the caller’s reason and frees its connection', async () => {
    const { triton, backend } = await setup({ timeoutMs: 60_000 });
    triton.faults.push('stall-before-headers');
    const ac = new AbortController();
    const pending = step(backend, ac.signal);
    while (triton.infers().length === 0) await new Promise((r) => setImmediate(r));
    ac.abort(new Error('client went away'));
    await assert.rejects(pending, /client went away/);
    await triton.lastInferConnectionClosed();
  });
});

describe('circuit breaker', () => {
  it('opens after consecutive transport failures, fails fast, reports not ready, then closes after a good trial', async () => {
    const { triton, backend, registry, advance } = await setup();
    for (let i = 0; i < 3; i++) {
      triton.faults.push('stall-before-headers');
      await assert.rejects(step(backend), isCode('BACKEND_TIMEOUT'));
    }
    assert.equal(backend.readiness().ready, false);
    assert.match(backend.readiness().reason ?? '', /circuit open/);
    const before = triton.infers().length;
    await assert.rejects(step(backend), (e: unknown) => {
      isCode('BACKEND_UNAVAILABLE', /circuit open/)(e);
      assert.equal((e as BackendError).retryAfterSeconds, 1);
      return true;
    });
    assert.equal(triton.infers().length, before, 'an open circuit sends nothing');
    assert.match(await registry.metrics(), /gpt2_gateway_upstream_breaker_state 2\n/);

    advance(1000);
    triton.faults.push('reset');
    await assert.rejects(step(backend), isCode('BACKEND_UNAVAILABLE'));
    assert.equal(backend.readiness().ready, false, 'a failed trial re-opens the circuit');
    await assert.rejects(step(backend), isCode('BACKEND_UNAVAILABLE', /circuit open/));

    advance(1000);
    const [r] = await step(backend);
    assert.equal(r?.tokenId, expectedNext(42));
    assert.deepEqual(backend.readiness(), { ready: true });
    assert.match(await registry.metrics(), /gpt2_gateway_upstream_breaker_state 0\n/);
  });

  it('does not open on answers from a live server (400 errors)', async () => {
    const { triton, backend } = await setup();
    for (let i = 0; i < 4; i++) {
      triton.faults.push({ status: 400, body: '{"error":"unexpected inference input"}' });
      await assert.rejects(step(backend), isCode('BACKEND_ERROR'));
    }
    assert.deepEqual(backend.readiness(), { ready: true });
  });

  it('retries refused connections before giving up, then opens', async () => {
    let pool: Pool | undefined;
    const { triton, backend, registry } = await setup({}, (url) => {
      pool = new Pool(url, { connections: 2 });
      return pool;
    });
    cleanup.push(() => pool?.close() ?? Promise.resolve());
    await triton.close();
    // Wait until the pool has seen its keep-alive socket close, so the next call must connect.
    while ((pool?.stats.connected ?? 0) > 0) await new Promise((r) => setImmediate(r));
    await assert.rejects(step(backend), isCode('BACKEND_UNAVAILABLE', /ECONNREFUSED/));
    assert.match(
      await registry.metrics(),
      /gpt2_gateway_upstream_retries_total\{endpoint="infer"\} 2\n/,
    );
    assert.equal(backend.readiness().ready, false, '3 refused attempts opened the circuit');
  });
});
