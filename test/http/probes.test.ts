import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toyApp } from '../support/app.js';

test('GET /healthz answers without touching the backend, even when it is not ready', async () => {
  const { app, backend } = await toyApp();
  backend.ready = false;
  const res = await app.inject('/healthz');
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.json(), { status: 'ok' });
  await app.close();
});

test('GET /readyz follows the backend', async () => {
  const { app, backend } = await toyApp();
  assert.deepEqual((await app.inject('/readyz')).json(), { status: 'ready' });
  backend.ready = false;
  const res = await app.inject('/readyz');
  assert.equal(res.statusCode, 503);
  assert.deepEqual(res.json(), {
    error: { code: 'NOT_READY', message: 'backend not ready: toy is asleep' },
  });
  await app.close();
});

test('GET /info reports model, backend, limits and version, and the random-weights notice', async () => {
  const { app } = await toyApp(
    { MAX_BATCH_SIZE: '4', RATE_LIMIT_MAX: '10' },
    { model: { randomWeights: true, notice: 'random weights: the text is meaningless' } },
  );
  const res = await app.inject('/info');
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.json(), {
    name: 'gpt2-gateway',
    version: '0.1.0',
    auth: { required: false },
    model: {
      name: 'toy',
      variant: 'logits',
      context_length: 1024,
      vocab_size: 50257,
      random_weights: true,
      notice: 'random weights: the text is meaningless',
    },
    backend: { kind: 'embedded', max_batch_size: 4, details: { toy: true } },
    limits: {
      max_new_tokens: 512,
      default_max_new_tokens: 16,
      max_stop_sequences: 4,
      max_batch_size: 4,
      max_queue: 64,
      body_limit_bytes: 65536,
      rate_limit_max: 10,
      rate_limit_window_ms: 60000,
    },
  });
  await app.close();
});

test('POST /tokenize gives ids and per-token text', async () => {
  const { app } = await toyApp();
  const res = await app.inject({
    method: 'POST',
    url: '/tokenize',
    payload: { text: 'Hello world' },
  });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.json(), {
    ids: [15496, 995],
    tokens: [
      { id: 15496, text: 'Hello' },
      { id: 995, text: ' world' },
    ],
    count: 2,
  });
  const bad = await app.inject({
    method: 'POST',
    url: '/tokenize',
    payload: { text: 'x', prompt: 'x' },
  });
  assert.equal(bad.statusCode, 400);
  assert.deepEqual(bad.json(), {
    error: { code: 'INVALID_REQUEST', message: "unknown field 'prompt'; allowed fields: text" },
  });
  await app.close();
});

test('unknown routes get 404 NOT_FOUND in the error body shape', async () => {
  const { app } = await toyApp();
  const res = await app.inject('/v2/completions');
  assert.equal(res.statusCode, 404);
  assert.deepEqual(res.json(), {
    error: { code: 'NOT_FOUND', message: 'no route GET /v2/completions' },
  });
  await app.close();
});

test('a known path with the wrong method gets 405 METHOD_NOT_ALLOWED and Allow', async () => {
  const { app } = await toyApp();
  const res = await app.inject({ method: 'GET', url: '/complete?x=1' });
  assert.equal(res.statusCode, 405);
  assert.equal(res.headers.allow, 'POST');
  assert.deepEqual(res.json(), {
    error: { code: 'METHOD_NOT_ALLOWED', message: '/complete accepts POST, not GET' },
  });
  await app.close();
});

test('405 for a route with two methods reads as a sentence: "accepts GET or HEAD, not POST"', async () => {
  const { app } = await toyApp();
  const res = await app.inject({ method: 'POST', url: '/info', payload: {} });
  assert.equal(res.statusCode, 405);
  assert.equal(res.headers.allow, 'GET, HEAD');
  assert.deepEqual(res.json(), {
    error: { code: 'METHOD_NOT_ALLOWED', message: '/info accepts GET or HEAD, not POST' },
  });
  await app.close();
});
