/**
 * The real `openai` npm SDK (v6, unmodified) against the gateway on a real socket, serving the
 * tiny GPT-2 through the embedded backend: what an app written for OpenAI gets from /v1/*.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { pino } from 'pino';
import { buildApp } from '../../src/app.js';
import type { Backend } from '../../src/backends/backend.js';
import { createBackend } from '../../src/backends/create-backend.js';
import { NAMED_CONFIGS } from '../../src/model/configs.js';
import { writeModelRepository } from '../../src/model/model-repository.js';
import { loadGpt2Tokenizer } from '../../src/tokenizer/gpt2-tokenizer.js';
import { testConfig } from '../support/app.js';
import { type KeysDir, secretKeysFile } from '../support/keys-file.js';

const MODEL = 'tiny-kv';
const KEY = 'sk-test-3f9a1c07d2b64e58';
const PROMPT = 'The quick brown fox';

let repository: string;
let keys: KeysDir;
let backend: Backend;
let app: FastifyInstance;
let baseURL: string;

async function listen(a: FastifyInstance): Promise<string> {
  await a.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(a.server.address() as AddressInfo).port}/v1`;
}

/** The app as server.ts builds it, on the tiny model, with `overrides` on top. */
async function gateway(overrides: Record<string, string> = {}) {
  const config = testConfig({
    MODEL_REPOSITORY: repository,
    MODEL_NAME: MODEL,
    API_KEYS_FILE: keys.path,
    ...overrides,
  });
  const created = await createBackend(config, pino({ level: 'silent' }));
  await created.backend.init();
  const built = await buildApp(config, { backend: created.backend, model: created.model });
  return { app: built, backend: created.backend };
}

const client = (apiKey = KEY, url = baseURL) => new OpenAI({ apiKey, baseURL: url, maxRetries: 0 });

before(async () => {
  repository = await mkdtemp(join(tmpdir(), 'openai-sdk-'));
  await writeModelRepository({
    config: NAMED_CONFIGS.tiny,
    weights: { kind: 'random', seed: 5 },
    variant: 'kv',
    repository,
    name: MODEL,
    instanceKind: 'cpu',
  });
  keys = await secretKeysFile(`# test clients\nsdk-tests:${KEY}\n`);
  ({ app, backend } = await gateway());
  baseURL = await listen(app);
});

after(async () => {
  await app.close();
  await backend.close();
  await keys.remove();
  await rm(repository, { recursive: true, force: true });
});

/** /complete's text for the same prompt and length, the reference. */
async function completeText(prompt: string, maxNewTokens: number, stop?: string[]) {
  const res = await app.inject({
    method: 'POST',
    url: '/complete',
    headers: { authorization: `Bearer ${KEY}` },
    payload: { prompt, max_new_tokens: maxNewTokens, ...(stop ? { stop } : {}) },
  });
  assert.equal(res.statusCode, 200, res.body);
  return res.json<{ text: string; finish_reason: string; tokens: { id: number }[] }>();
}

test('models.list and models.retrieve name the served model', async () => {
  const models = [];
  for await (const model of client().models.list()) models.push(model);
  assert.deepEqual(
    models.map((m) => [m.id, m.object, m.owned_by]),
    [[MODEL, 'model', 'gpt2-gateway']],
  );
  const one = await client().models.retrieve(MODEL);
  assert.equal(one.id, MODEL);
  assert.ok(Number.isInteger(one.created));
});

test('completions.create, plain and streamed, give the same text as /complete', async () => {
  const reference = await completeText(PROMPT, 12);
  const plain = await client().completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 12 });
  assert.equal(plain.object, 'text_completion');
  assert.equal(plain.model, MODEL);
  assert.equal(plain.choices.length, 1);
  assert.equal(plain.choices[0]!.text, reference.text);
  assert.equal(
    plain.choices[0]!.finish_reason,
    reference.finish_reason === 'length' ? 'length' : 'stop',
  );
  const promptTokens = loadGpt2Tokenizer().encode(PROMPT).length;
  assert.deepEqual(plain.usage, {
    prompt_tokens: promptTokens,
    completion_tokens: reference.tokens.length,
    total_tokens: promptTokens + reference.tokens.length,
  });

  const stream = await client().completions.create({
    model: MODEL,
    prompt: PROMPT,
    max_tokens: 12,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish: string | null = null;
  let usage: unknown;
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      text += choice.text;
      finish = choice.finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, reference.text);
  assert.equal(finish, plain.choices[0]!.finish_reason);
  assert.deepEqual(usage, plain.usage);
});

test('stop strings end the choice with finish_reason "stop", the stop string left out', async () => {
  const reference = await completeText(PROMPT, 20);
  // A stop string from the middle of the greedy continuation: the text ends just before it.
  const at = Math.floor(reference.text.length / 2);
  const stop = reference.text.slice(at, at + 2);
  assert.ok(stop.length === 2, `continuation too short: ${JSON.stringify(reference.text)}`);
  const expected = reference.text.slice(0, reference.text.indexOf(stop));
  const plain = await client().completions.create({
    model: MODEL,
    prompt: PROMPT,
    max_tokens: 20,
    stop: [stop],
  });
  assert.equal(plain.choices[0]!.text, expected);
  assert.equal(plain.choices[0]!.finish_reason, 'stop');
  assert.equal(plain.choices[0]!.text, (await completeText(PROMPT, 20, [stop])).text);
});

test('array prompts: one choice each, in order, each as its own /complete', async () => {
  const prompts = ['Hello world', 'Once upon a time', PROMPT];
  const answer = await client().completions.create({
    model: MODEL,
    prompt: prompts,
    max_tokens: 6,
  });
  assert.deepEqual(
    answer.choices.map((c) => c.index),
    [0, 1, 2],
  );
  for (const [i, prompt] of prompts.entries()) {
    assert.equal(answer.choices[i]!.text, (await completeText(prompt, 6)).text, prompt);
  }
  const streamed = new Map<number, string>();
  for await (const chunk of await client().completions.create({
    model: MODEL,
    prompt: prompts,
    max_tokens: 6,
    stream: true,
  })) {
    for (const c of chunk.choices) streamed.set(c.index, (streamed.get(c.index) ?? '') + c.text);
  }
  assert.deepEqual(
    [...streamed].sort((a, b) => a[0] - b[0]).map(([, t]) => t),
    answer.choices.map((c) => c.text),
  );
});

test('token-id prompts, one array or several, answer like the text they encode', async () => {
  const tokenizer = loadGpt2Tokenizer();
  const ids = tokenizer.encode(PROMPT);
  const reference = await completeText(PROMPT, 8);
  const one = await client().completions.create({ model: MODEL, prompt: ids, max_tokens: 8 });
  assert.equal(one.choices[0]!.text, reference.text);
  const two = await client().completions.create({
    model: MODEL,
    prompt: [ids, tokenizer.encode('Hello world')],
    max_tokens: 8,
  });
  assert.equal(two.choices.length, 2);
  assert.equal(two.choices[0]!.text, reference.text);
  assert.equal(two.choices[1]!.text, (await completeText('Hello world', 8)).text);
});

test('echo and logprobs come back in the legacy shape', async () => {
  const answer = await client().completions.create({
    model: MODEL,
    prompt: PROMPT,
    max_tokens: 3,
    echo: true,
    logprobs: 1,
  });
  const choice = answer.choices[0]!;
  assert.ok(choice.text.startsWith(PROMPT));
  const logprobs = choice.logprobs!;
  assert.equal(logprobs.tokens!.join(''), choice.text);
  assert.equal(logprobs.token_logprobs![0], null);
  assert.ok(logprobs.token_logprobs!.slice(-3).every((lp) => lp !== null && lp <= 0));
});

test("the SDK's error classes: context overflow, unknown model, made-up key, greedy-only", async () => {
  const overflow = await client()
    .completions.create({ model: MODEL, prompt: ' a'.repeat(1000), max_tokens: 100 })
    .catch((err: unknown) => err);
  assert.ok(overflow instanceof OpenAI.BadRequestError, String(overflow));
  assert.equal(overflow.code, 'context_length_exceeded');
  assert.equal(overflow.param, 'prompt');
  assert.match(overflow.message, /context is 1024 tokens/);

  const unknown = await client()
    .completions.create({ model: 'gpt-4', prompt: PROMPT })
    .catch((err: unknown) => err);
  assert.ok(unknown instanceof OpenAI.NotFoundError, String(unknown));
  assert.equal(unknown.code, 'model_not_found');
  const unknownModel = await client()
    .models.retrieve('gpt-4')
    .catch((err: unknown) => err);
  assert.ok(unknownModel instanceof OpenAI.NotFoundError);

  const madeUp = await client('sk-made-up-key')
    .completions.create({ model: MODEL, prompt: PROMPT })
    .catch((err: unknown) => err);
  assert.ok(madeUp instanceof OpenAI.AuthenticationError, String(madeUp));
  assert.equal(madeUp.code, 'invalid_api_key');
  assert.ok(!madeUp.message.includes('sk-made-up-key'), 'the key is not echoed');

  const sampled = await client()
    .completions.create({ model: MODEL, prompt: PROMPT, temperature: 0.7 })
    .catch((err: unknown) => err);
  assert.ok(sampled instanceof OpenAI.BadRequestError);
  assert.equal(sampled.param, 'temperature');

  const chat = await client()
    .chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] })
    .catch((err: unknown) => err);
  assert.ok(chat instanceof OpenAI.NotFoundError);
  assert.match(chat.message, /no chat format.*\/v1\/completions/);
});

test('an exhausted budget is a RateLimitError with Retry-After (retries disabled)', async () => {
  const limited = await gateway({ RATE_LIMIT_MAX: '1', RATE_LIMIT_WINDOW_MS: '60000' });
  const url = await listen(limited.app);
  try {
    const first = await client(KEY, url).completions.create({
      model: MODEL,
      prompt: PROMPT,
      max_tokens: 1,
    });
    assert.equal(first.choices.length, 1);
    const second = await client(KEY, url)
      .completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 1 })
      .catch((err: unknown) => err);
    assert.ok(second instanceof OpenAI.RateLimitError, String(second));
    assert.equal(second.code, 'rate_limit_exceeded');
    assert.equal(second.headers.get('retry-after'), '60');
  } finally {
    await limited.app.close();
    await limited.backend.close();
  }
});
