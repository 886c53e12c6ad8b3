/**
 * Capacity (503 QUEUE_FULL) versus per-client rate limits (429 RATE_LIMITED), client disconnects
 * and graceful shutdown, over real sockets where the behaviour depends on them.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { request } from 'undici';
import { toyApp } from '../support/app.js';

const json = { 'content-type': 'application/json' };

test('a full queue answers 503 QUEUE_FULL with Retry-After; the rate limit answers 429', async () => {
  const { app, backend } = await toyApp({
    MAX_BATCH_SIZE: '1',
    MAX_QUEUE: '1',
    RATE_LIMIT_MAX: '3',
  });
  const open = backend.hold();
  const a = app.inject({
    method: 'POST',
    url: '/complete',
    payload: { prompt: 'a', max_new_tokens: 1 },
  });
  const b = app.inject({
    method: 'POST',
    url: '/complete',
    payload: { prompt: 'b', max_new_tokens: 1 },
  });
  await tick();
  await tick();
  const full = await app.inject({
    method: 'POST',
    url: '/complete',
    payload: { prompt: 'c', max_new_tokens: 1 },
  });
  assert.equal(full.statusCode, 503);
  assert.equal(full.headers['retry-after'], '1');
  assert.deepEqual(full.json(), {
    error: {
      code: 'QUEUE_FULL',
      message: 'all 1 generation slots are busy and 1 requests are waiting; retry later',
    },
  });
  open();
  assert.equal((await a).statusCode, 200);
  assert.equal((await b).statusCode, 200);
  // Three requests used this client's window: the fourth is rate limited, not a capacity problem.
  const limited = await app.inject({
    method: 'POST',
    url: '/complete',
    payload: { prompt: 'd', max_new_tokens: 1 },
  });
  assert.equal(limited.statusCode, 429);
  assert.equal(limited.headers['retry-after'], '60');
  assert.deepEqual(limited.json(), {
    error: {
      code: 'RATE_LIMITED',
      message: 'rate limit of 3 requests per 60 s exceeded; retry in 1 minute',
    },
  });
  // Without API_KEYS_FILE a key is not checked, so a made-up one does not mint a new budget...
  const madeUp = await app.inject({
    method: 'POST',
    url: '/complete',
    headers: { 'x-api-key': 'team-b' },
    payload: { prompt: 'e', max_new_tokens: 1 },
  });
  assert.equal(madeUp.statusCode, 429);
  // ...but another client address has its own.
  const other = await app.inject({
    method: 'POST',
    url: '/complete',
    remoteAddress: '10.0.0.2',
    payload: { prompt: 'e', max_new_tokens: 1 },
  });
  assert.equal(other.statusCode, 200);
  // Probes and metrics are never rate limited.
  assert.equal((await app.inject('/healthz')).statusCode, 200);
  const metrics = (await app.inject('/metrics')).body;
  assert.match(metrics, /^gpt2_gateway_rejections_total\{reason="queue_full"\} 1$/m);
  assert.match(metrics, /^gpt2_gateway_rejections_total\{reason="rate_limited"\} 2$/m);
  await app.close();
});

test('a client that disconnects stops its generation at the next step', async () => {
  const { app, backend } = await toyApp();
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const open = backend.hold();
  const abort = new AbortController();
  const pending = request(`http://127.0.0.1:${port}/complete`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ prompt: 'a', max_new_tokens: 500 }),
    signal: abort.signal,
  }).catch((err: unknown) => err);
  while (backend.steps.length === 0) await tick();
  abort.abort();
  await pending;
  // Wait until the server has seen the socket close.
  while ((await app.inject('/metrics')).body.includes('finish_reason="cancelled"') === false) {
    open();
    await tick();
  }
  assert.ok(backend.steps.length <= 2, `stopped after ${backend.steps.length} steps, not 500`);
  assert.deepEqual(backend.released, [1]);
  await app.close();
});

test('drain (SIGTERM) finishes in-flight generations and refuses new ones with 503', async () => {
  const { app, backend } = await toyApp();
  const open = backend.hold();
  const inflight = app.inject({
    method: 'POST',
    url: '/complete',
    payload: { prompt: 'a', max_new_tokens: 3 },
  });
  while (backend.steps.length === 0) await tick();
  const drained = app.drain();
  const refused = await app.inject({ method: 'POST', url: '/complete', payload: { prompt: 'b' } });
  assert.equal(refused.statusCode, 503);
  assert.equal(refused.headers['retry-after'], '1');
  assert.deepEqual(refused.json(), {
    error: {
      code: 'SHUTTING_DOWN',
      message: 'the server is shutting down; retry on another instance',
    },
  });
  const ready = await app.inject('/readyz');
  assert.equal(ready.statusCode, 503);
  assert.deepEqual(ready.json(), {
    error: { code: 'NOT_READY', message: 'shutting down: draining in-flight generations' },
  });
  open();
  const done = await inflight;
  assert.equal(done.statusCode, 200);
  assert.equal(done.json<{ usage: { completion_tokens: number } }>().usage.completion_tokens, 3);
  await drained;
  await app.close();
});

test('a streaming client that disconnects stops its generation too', async () => {
  const { app, backend } = await toyApp();
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const open = backend.hold();
  const abort = new AbortController();
  const res = await request(`http://127.0.0.1:${port}/complete`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ prompt: 'a', max_new_tokens: 500, stream: true }),
    signal: abort.signal,
  });
  // The headers come at admission, before any token: the first step is still held.
  assert.equal(res.statusCode, 200);
  abort.abort();
  await res.body.text().catch(() => undefined);
  while (!(await app.inject('/metrics')).body.includes('finish_reason="cancelled"')) {
    open();
    await tick();
  }
  assert.ok(backend.steps.length <= 2, `stopped after ${backend.steps.length} steps, not 500`);
  assert.deepEqual(backend.released, [1]);
  await app.close();
});

test('the default body limit refuses a 70 KB body: a huge single word cannot stall the tokenizer', async () => {
  const { app } = await toyApp();
  const res = await app.inject({
    method: 'POST',
    url: '/complete',
    payload: { prompt: 'x'.repeat(70 * 1024) },
  });
  assert.equal(res.statusCode, 413);
  assert.deepEqual(res.json(), {
    error: { code: 'PAYLOAD_TOO_LARGE', message: 'the body must not exceed 65536 bytes' },
  });
  await app.close();
});
