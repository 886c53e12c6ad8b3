/**
 * POST /v1/completions and the rest of /v1/* through app.inject on the toy backend: the wire
 * format of the stream, OpenAI's error body on every /v1 answer (validation, 404, 405, 415, 503),
 * all-or-nothing admission of array prompts, and no 5xx for any malformed body.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { BackendError } from '../../src/backends/backend.js';
import { toyApp } from '../support/app.js';

interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

const post = (payload: unknown, headers: Record<string, string> = {}) => ({
  method: 'POST' as const,
  url: '/v1/completions',
  headers: { 'content-type': 'application/json', ...headers },
  payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
});

/** Every key of an OpenAI error body, and nothing of the gateway's own shape. */
function assertOpenAIError(body: string, expected: Partial<OpenAIErrorBody['error']>): void {
  const parsed = JSON.parse(body) as OpenAIErrorBody;
  assert.deepEqual(Object.keys(parsed), ['error']);
  assert.deepEqual(Object.keys(parsed.error).sort(), ['code', 'message', 'param', 'type']);
  for (const [k, v] of Object.entries(expected)) {
    assert.equal(parsed.error[k as keyof OpenAIErrorBody['error']], v, `${k} in ${body}`);
  }
}

test('a streamed answer is data-only SSE: one chunk per token, a finishing chunk, usage, [DONE]', async () => {
  const { app } = await toyApp();
  const res = await app.inject(
    post({
      model: 'toy',
      prompt: 'hello',
      max_tokens: 3,
      stream: true,
      stream_options: { include_usage: true },
    }),
  );
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^text\/event-stream/);
  const blocks = res.body.split('\n\n').filter((b) => b !== '');
  assert.equal(blocks[0], ': accepted');
  assert.equal(blocks.at(-1), 'data: [DONE]');
  const chunks = blocks.slice(1, -1).map((b) => {
    assert.match(b, /^data: \{/);
    return JSON.parse(b.slice('data: '.length)) as {
      choices: { text: string; finish_reason: string | null; gateway_token?: unknown }[];
      usage: unknown;
    };
  });
  // 3 tokens, 1 finishing chunk, 1 usage chunk.
  assert.equal(chunks.length, 5);
  assert.ok(chunks.slice(0, 3).every((c) => c.choices[0]!.gateway_token !== undefined));
  assert.equal(chunks[3]!.choices[0]!.finish_reason, 'length');
  assert.deepEqual(chunks[4]!.choices, []);
  assert.deepEqual(chunks[4]!.usage, { prompt_tokens: 1, completion_tokens: 3, total_tokens: 4 });
  await app.close();
});

test('/v1 answers 404, 405 and 415 with OpenAI bodies; the gateway routes keep theirs', async () => {
  const { app } = await toyApp();
  const missing = await app.inject({ method: 'GET', url: '/v1/embeddings' });
  assert.equal(missing.statusCode, 404);
  assertOpenAIError(missing.body, { type: 'invalid_request_error', code: 'unknown_url' });
  const wrongMethod = await app.inject({ method: 'GET', url: '/v1/completions' });
  assert.equal(wrongMethod.statusCode, 405);
  assert.equal(wrongMethod.headers.allow, 'POST');
  assertOpenAIError(wrongMethod.body, { type: 'invalid_request_error' });
  const text = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    headers: { 'content-type': 'text/plain' },
    payload: 'hello',
  });
  assert.equal(text.statusCode, 415);
  assertOpenAIError(text.body, { code: 'unsupported_media_type' });
  const chat = await app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    payload: { model: 'toy', messages: [] },
  });
  assert.equal(chat.statusCode, 404);
  assertOpenAIError(chat.body, { code: 'unknown_url', param: null });
  assert.deepEqual((await app.inject({ method: 'GET', url: '/nope' })).json(), {
    error: { code: 'NOT_FOUND', message: 'no route GET /nope' },
  });
  await app.close();
});

test('an unknown model is 404 model_not_found; a not-ready backend is 503 with Retry-After', async () => {
  const { app, backend } = await toyApp();
  const unknown = await app.inject(post({ model: 'gpt-4', prompt: 'x' }));
  assert.equal(unknown.statusCode, 404);
  assertOpenAIError(unknown.body, { param: 'model', code: 'model_not_found' });
  const model = await app.inject({ method: 'GET', url: '/v1/models/gpt-4' });
  assert.equal(model.statusCode, 404);
  assertOpenAIError(model.body, { code: 'model_not_found' });
  backend.ready = false;
  const asleep = await app.inject(post({ model: 'toy', prompt: 'x' }));
  assert.equal(asleep.statusCode, 503);
  assert.equal(asleep.headers['retry-after'], '1');
  assertOpenAIError(asleep.body, { type: 'server_error', code: 'backend_not_ready' });
  await app.close();
});

test('array prompts are admitted all together or not at all: a 503 comes before any work', async () => {
  const { app, backend } = await toyApp({ MAX_BATCH_SIZE: '1', MAX_QUEUE: '1' });
  const open = backend.hold();
  const running = app.inject(post({ model: 'toy', prompt: 'a', max_tokens: 1 }));
  await tick();
  await tick();
  // One place is left and two prompts need two: refused whole, nothing of it queued.
  const refused = await app.inject(post({ model: 'toy', prompt: ['b', 'c'], max_tokens: 1 }));
  assert.equal(refused.statusCode, 503);
  assert.equal(refused.headers['retry-after'], '1');
  assertOpenAIError(refused.body, { type: 'server_error', code: 'queue_full' });
  // More prompts than the gateway can ever hold at once is the client's to fix: a 400.
  const tooMany = await app.inject(post({ model: 'toy', prompt: ['b', 'c', 'd'], max_tokens: 1 }));
  assert.equal(tooMany.statusCode, 400);
  assertOpenAIError(tooMany.body, { param: 'prompt', code: 'array_above_max_length' });
  open();
  assert.equal((await running).statusCode, 200);
  // Only the first request's generation ever reached the backend.
  assert.deepEqual(backend.steps.flat(), [1]);
  const both = await app.inject(post({ model: 'toy', prompt: ['b', 'c'], max_tokens: 1 }));
  assert.equal(both.statusCode, 200);
  assert.equal(both.json<{ choices: unknown[] }>().choices.length, 2);
  await app.close();
});

test('a failure mid-stream ends the stream with an OpenAI error chunk', async () => {
  const { app, backend } = await toyApp();
  const open = backend.hold();
  const pending = app.inject(post({ model: 'toy', prompt: 'hi', max_tokens: 4, stream: true }));
  await tick();
  backend.failNext = new BackendError('BACKEND_ERROR', 'model exploded mid-stream');
  open();
  const res = await pending;
  assert.equal(res.statusCode, 200);
  const last = res.body.trim().split('\n\n').at(-1)!;
  assert.match(last, /^data: /);
  assertOpenAIError(last.slice('data: '.length), { type: 'server_error', code: 'backend_error' });
  assert.ok(!res.body.includes('model exploded'), 'a 5xx message stays generic');
  await app.close();
});

test('bad input on /v1/completions is never a 5xx: every malformed body is a 4xx in OpenAI shape', async () => {
  const { app } = await toyApp();
  const bodies: unknown[] = [
    '',
    '{',
    'null',
    '[]',
    '"prompt"',
    '42',
    '{"__proto__": {"x": 1}}',
    {},
    { model: 'toy' },
    { prompt: 'x' },
    { model: 1, prompt: 'x' },
    { model: '', prompt: 'x' },
    { model: 'toy', prompt: '' },
    { model: 'toy', prompt: [] },
    { model: 'toy', prompt: [[]] },
    { model: 'toy', prompt: [1, 'a'] },
    { model: 'toy', prompt: ['a', 1] },
    { model: 'toy', prompt: [[1], 'a'] },
    { model: 'toy', prompt: [-1] },
    { model: 'toy', prompt: [50257] },
    { model: 'toy', prompt: [1.5] },
    { model: 'toy', prompt: { text: 'x' } },
    { model: 'toy', prompt: Array.from({ length: 17 }, () => 'x') },
    { model: 'toy', prompt: 'x', max_tokens: 0 },
    { model: 'toy', prompt: 'x', max_tokens: -3 },
    { model: 'toy', prompt: 'x', max_tokens: 1e9 },
    { model: 'toy', prompt: 'x', max_tokens: '8' },
    { model: 'toy', prompt: 'x', max_tokens: 2.5 },
    { model: 'toy', prompt: 'x', stop: 1 },
    { model: 'toy', prompt: 'x', stop: [''] },
    { model: 'toy', prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] },
    { model: 'toy', prompt: 'x', stop: 'x'.repeat(300) },
    { model: 'toy', prompt: 'x', stream: 'yes' },
    { model: 'toy', prompt: 'x', stream_options: { include_usage: true } },
    { model: 'toy', prompt: 'x', stream: true, stream_options: { nope: 1 } },
    { model: 'toy', prompt: 'x', stream: true, stream_options: [] },
    { model: 'toy', prompt: 'x', logprobs: 6 },
    { model: 'toy', prompt: 'x', logprobs: true },
    { model: 'toy', prompt: 'x', echo: 'yes' },
    { model: 'toy', prompt: 'x', user: 5 },
    { model: 'toy', prompt: 'x', seed: 'x' },
    { model: 'toy', prompt: 'x', temperature: 0.7 },
    { model: 'toy', prompt: 'x', temperature: 'hot' },
    { model: 'toy', prompt: 'x', top_p: 0.9 },
    { model: 'toy', prompt: 'x', n: 2 },
    { model: 'toy', prompt: 'x', best_of: 3 },
    { model: 'toy', prompt: 'x', presence_penalty: 1 },
    { model: 'toy', prompt: 'x', frequency_penalty: -1 },
    { model: 'toy', prompt: 'x', logit_bias: { '50256': -100 } },
    { model: 'toy', prompt: 'x', logit_bias: [] },
    { model: 'toy', prompt: 'x', suffix: 'end' },
    { model: 'toy', prompt: 'x', messages: [] },
    { model: 'toy', prompt: ' a'.repeat(1100) },
    { model: 'toy', prompt: ' a'.repeat(1000), max_tokens: 100 },
    { model: 'toy', prompt: Array.from({ length: 1024 }, () => 1) },
    { model: 'gpt-4', prompt: 'x' },
  ];
  for (const body of bodies) {
    const res = await app.inject(post(body));
    const label = typeof body === 'string' ? body : JSON.stringify(body).slice(0, 80);
    assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${label}: ${res.statusCode}`);
    assertOpenAIError(res.body, {});
    assert.ok(JSON.parse(res.body).error.message.length > 0, label);
  }
  // Not JSON at all, and too big.
  const huge = await app.inject(post({ model: 'toy', prompt: 'x'.repeat(70_000) }));
  assert.equal(huge.statusCode, 413);
  assertOpenAIError(huge.body, { code: 'payload_too_large' });
  await app.close();
});

test('every greedy value is accepted, and null means omitted', async () => {
  const { app } = await toyApp();
  const res = await app.inject(
    post({
      model: 'toy',
      prompt: 'x',
      max_tokens: 2,
      temperature: 0,
      top_p: 1,
      n: 1,
      best_of: 1,
      presence_penalty: 0,
      frequency_penalty: 0,
      logit_bias: {},
      suffix: null,
      stop: null,
      user: 'end-user-7',
      seed: 42,
      logprobs: null,
      echo: false,
      stream: false,
    }),
  );
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json<{ choices: { text: string; finish_reason: string }[] }>();
  assert.equal(body.choices[0]!.finish_reason, 'length');
  await app.close();
});

test('an omitted max_tokens is DEFAULT_MAX_NEW_TOKENS, as on /complete, not a fixed 16', async () => {
  const { app } = await toyApp({ DEFAULT_MAX_NEW_TOKENS: '3' });
  const openAI = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { model: 'toy', prompt: 'hello' },
  });
  assert.equal(openAI.statusCode, 200, openAI.body);
  const gateway = await app.inject({
    method: 'POST',
    url: '/complete',
    payload: { prompt: 'hello' },
  });
  assert.equal(gateway.statusCode, 200, gateway.body);
  assert.equal(
    openAI.json<{ usage: { completion_tokens: number } }>().usage.completion_tokens,
    gateway.json<{ usage: { completion_tokens: number } }>().usage.completion_tokens,
  );
  assert.equal(openAI.json<{ usage: { completion_tokens: number } }>().usage.completion_tokens, 3);
  await app.close();
});

test('a huge unknown model id comes back as its start and its length, not whole', async () => {
  const { app } = await toyApp();
  const model = 'm'.repeat(50_000);
  const res = await app.inject(post({ model, prompt: 'hello', max_tokens: 1 }));
  assert.equal(res.statusCode, 404);
  assertOpenAIError(res.body, {
    code: 'model_not_found',
    message: `The model \`${'m'.repeat(64)}… (50000 characters)\` does not exist`,
  });
  await app.close();
});
