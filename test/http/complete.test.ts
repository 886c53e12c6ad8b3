import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { BackendError } from '../../src/backends/backend.js';
import { loadGpt2Tokenizer } from '../../src/tokenizer/gpt2-tokenizer.js';
import { toyApp } from '../support/app.js';
import { parseSse } from '../support/sse.js';
import { ToyBackend, toyNext } from '../support/toy-backend.js';

const tokenizer = loadGpt2Tokenizer();
let app: FastifyInstance;
let backend: ToyBackend;

before(async () => {
  // A raised body limit, as an operator might set it: the cheap token bound must still refuse a
  // 200 KB word before the BPE run.
  ({ app, backend } = await toyApp({
    MAX_NEW_TOKENS_LIMIT: '64',
    DEFAULT_MAX_NEW_TOKENS: '5',
    BODY_LIMIT_BYTES: String(256 * 1024),
  }));
});
after(() => app.close());

const PROMPT = 'I love Artificial Intelligence';
const PROMPT_IDS = [40, 1842, 35941, 9345];

/** What the toy model greedily produces, computed here independently of the gateway. */
function expectedIds(prompt: number[], n: number): number[] {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) seq.push(toyNext(seq));
  return seq.slice(prompt.length);
}

const complete = (payload: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: '/complete', payload: payload as object, headers });

interface Completion {
  id: string;
  created: number;
  tokens: {
    index: number;
    id: number;
    text: string;
    logprob: number;
    backend_step_ms: number;
    since_previous_ms: number;
  }[];
  timings: Record<string, number | null>;
  [key: string]: unknown;
}

test('POST /complete returns max_new_tokens greedy tokens with text, usage and timings', async () => {
  const res = await complete({ prompt: PROMPT, max_new_tokens: 8 }, { 'x-request-id': 'abc-1' });
  assert.equal(res.statusCode, 200);
  const body = res.json<Completion>();
  const ids = expectedIds(PROMPT_IDS, 8);
  const { tokens, timings, created, ...rest } = body;
  assert.deepEqual(rest, {
    id: 'cmpl-abc-1',
    object: 'text_completion',
    model: 'toy',
    text: tokenizer.decode(ids),
    finish_reason: 'length',
    usage: { prompt_tokens: 4, completion_tokens: 8, total_tokens: 12 },
  });
  assert.ok(Math.abs(created - Date.now() / 1000) < 60);
  assert.deepEqual(
    tokens.map(({ index, id, text, logprob }) => ({ index, id, text, logprob })),
    ids.map((id, index) => ({
      index,
      id,
      text: tokenizer.decode([id]),
      logprob: -((id % 13) + 1) / 8,
    })),
  );
  for (const t of tokens) {
    assert.ok(t.backend_step_ms >= 0 && t.since_previous_ms >= 0);
  }
  assert.deepEqual(Object.keys(timings), [
    'tokenize_ms',
    'queue_ms',
    'time_to_first_token_ms',
    'time_per_output_token_ms',
    'backend_ms',
    'total_ms',
    'tokens_per_second',
  ]);
  assert.equal(timings.time_to_first_token_ms, tokens[0]!.since_previous_ms);
  assert.ok((timings.total_ms as number) >= (timings.time_to_first_token_ms as number));
  assert.equal(res.headers['x-request-id'], 'abc-1');
  assert.equal(res.headers['x-prompt-tokens'], '4');
  assert.equal(res.headers['x-generated-tokens'], '8');
  for (const h of [
    'x-total-time',
    'x-validation-time',
    'x-queue-time',
    'x-inference-time',
    'x-time-per-token',
  ]) {
    assert.match(String(res.headers[h]), /^\d+$/, h);
  }
  // The same request again gives the same tokens (greedy is deterministic).
  const again = (await complete({ prompt: PROMPT, max_new_tokens: 8 })).json<Completion>();
  assert.deepEqual(
    again.tokens.map((t) => t.id),
    ids,
  );
});

test('the default max_new_tokens applies, and shrinks to fit the context', async () => {
  const short = (await complete({ prompt: PROMPT })).json<Completion>();
  assert.equal(short.tokens.length, 5);
  // 1021 tokens of prompt leave room for 3.
  const long = (await complete({ prompt: ' a'.repeat(1021) })).json<Completion>();
  assert.equal(long.tokens.length, 3);
});

test('a stop string ends generation and is left out of the text', async () => {
  const ids = expectedIds(PROMPT_IDS, 8);
  const full = tokenizer.decode(ids);
  const stopAt = tokenizer.decode(ids.slice(0, 3)).length;
  // A stop string spanning the end of token 3 and the start of token 4.
  const stop = full.slice(stopAt - 2, stopAt + 2);
  const body = (
    await complete({ prompt: PROMPT, max_new_tokens: 8, stop: ['zzz', stop] })
  ).json<Completion>();
  assert.equal(body.finish_reason, 'stop');
  assert.equal(body.text, full.slice(0, stopAt - 2));
  assert.equal(body.tokens.length, 4);
  assert.equal(body.tokens.map((t) => t.text).join(''), body.text);
});

test('EOS ends generation with finish_reason eos and adds no text', async () => {
  const eos = await toyApp(
    {},
    {
      backend: new ToyBackend({ next: (t) => (t.length >= 6 ? 50256 : 262) }),
    },
  );
  const res = await eos.app.inject({
    method: 'POST',
    url: '/complete',
    payload: { prompt: PROMPT, max_new_tokens: 10 },
  });
  const body = res.json<Completion>();
  assert.equal(body.finish_reason, 'eos');
  assert.deepEqual(
    body.tokens.map((t) => [t.id, t.text]),
    [
      [262, ' the'],
      [262, ' the'],
      [50256, ''],
    ],
  );
  assert.equal(body.text, ' the the');
  assert.deepEqual(body.usage, { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 });
  await eos.app.close();
});

const INVALID: [string, unknown, string | undefined, number, string, string][] = [
  [
    'missing prompt',
    { max_new_tokens: 2 },
    undefined,
    400,
    'INVALID_REQUEST',
    "'prompt' is required",
  ],
  ['empty prompt', { prompt: '' }, undefined, 400, 'INVALID_REQUEST', "'prompt' must not be empty"],
  [
    'non-string prompt',
    { prompt: 42 },
    undefined,
    400,
    'INVALID_REQUEST',
    "'prompt' must be string",
  ],
  ['array prompt', { prompt: ['a'] }, undefined, 400, 'INVALID_REQUEST', "'prompt' must be string"],
  [
    'unknown field',
    { prompt: 'a', temperature: 0.7 },
    undefined,
    400,
    'INVALID_REQUEST',
    "unknown field 'temperature'; allowed fields: prompt, max_new_tokens, stop, stream",
  ],
  [
    'unknown field with a huge name',
    { prompt: 'a', ['x'.repeat(100_000)]: 1 },
    undefined,
    400,
    'INVALID_REQUEST',
    `unknown field '${'x'.repeat(64)}… (100000 characters)'; allowed fields: prompt, max_new_tokens, stop, stream`,
  ],
  [
    'max_new_tokens 0',
    { prompt: 'a', max_new_tokens: 0 },
    undefined,
    400,
    'INVALID_REQUEST',
    "'max_new_tokens' must be >= 1",
  ],
  [
    'max_new_tokens above the limit',
    { prompt: 'a', max_new_tokens: 65 },
    undefined,
    400,
    'INVALID_REQUEST',
    "'max_new_tokens' must be <= 64",
  ],
  [
    'fractional max_new_tokens',
    { prompt: 'a', max_new_tokens: 1.5 },
    undefined,
    400,
    'INVALID_REQUEST',
    "'max_new_tokens' must be integer",
  ],
  [
    'max_new_tokens as a string',
    { prompt: 'a', max_new_tokens: '8' },
    undefined,
    400,
    'INVALID_REQUEST',
    "'max_new_tokens' must be integer",
  ],
  [
    'five stop sequences',
    { prompt: 'a', stop: ['1', '2', '3', '4', '5'] },
    undefined,
    400,
    'INVALID_REQUEST',
    "'stop' must be a string of 1 to 256 characters, or an array of at most 4 such strings",
  ],
  [
    'an empty stop sequence',
    { prompt: 'a', stop: [''] },
    undefined,
    400,
    'INVALID_REQUEST',
    "'stop' must be a string of 1 to 256 characters, or an array of at most 4 such strings",
  ],
  [
    'stream not boolean',
    { prompt: 'a', stream: 'yes' },
    undefined,
    400,
    'INVALID_REQUEST',
    "'stream' must be boolean",
  ],
  [
    'body not an object',
    [1, 2],
    undefined,
    400,
    'INVALID_REQUEST',
    'the body must be a JSON object',
  ],
  [
    'prompt + max_new_tokens beyond the context',
    { prompt: ' a'.repeat(1000), max_new_tokens: 30 },
    undefined,
    400,
    'CONTEXT_LENGTH_EXCEEDED',
    "the prompt is 1000 tokens and max_new_tokens is 30: 1030 tokens exceed the model's context of 1024; shorten the prompt or lower max_new_tokens",
  ],
  [
    'a stop string over 256 characters (the message names the length cap)',
    { prompt: 'a', stop: 'x'.repeat(257) },
    undefined,
    400,
    'INVALID_REQUEST',
    "'stop' must be a string of 1 to 256 characters, or an array of at most 4 such strings",
  ],
  [
    'a 1024-token prompt without max_new_tokens (no max_new_tokens to lower)',
    { prompt: ' a'.repeat(1024) },
    undefined,
    400,
    'CONTEXT_LENGTH_EXCEEDED',
    "the prompt is 1024 tokens, which leaves no room for a new token in the model's context of 1024; shorten the prompt",
  ],
  [
    'one 200 KB word: refused from a cheap bound, without the BPE run (1.5 s of event loop)',
    { prompt: 'x'.repeat(200_000) },
    undefined,
    400,
    'CONTEXT_LENGTH_EXCEEDED',
    "the prompt is at least 25000 tokens, more than the model's context of 1024; shorten the prompt",
  ],
  [
    '"a" x 60,000: refused from the run bound (no token holds more than "aaaa"), without BPE',
    { prompt: 'a'.repeat(60_000) },
    undefined,
    400,
    'CONTEXT_LENGTH_EXCEEDED',
    "the prompt is at least 15000 tokens, more than the model's context of 1024; shorten the prompt",
  ],
  [
    'broken JSON',
    '{"prompt":',
    'application/json',
    400,
    'INVALID_JSON',
    'the body is not valid JSON; send one JSON object (keys named __proto__ or constructor are refused)',
  ],
  [
    'valid JSON with a __proto__ key (the message says why it is refused)',
    '{"prompt":"a","__proto__":{"x":1}}',
    'application/json',
    400,
    'INVALID_JSON',
    'the body is not valid JSON; send one JSON object (keys named __proto__ or constructor are refused)',
  ],
  [
    'empty JSON body',
    '',
    'application/json',
    400,
    'INVALID_JSON',
    'the body is empty; send a JSON object',
  ],
  [
    'text/plain',
    'I love',
    'text/plain',
    415,
    'UNSUPPORTED_MEDIA_TYPE',
    'send the body as JSON with the header content-type: application/json',
  ],
  [
    'form encoded',
    'prompt=I+love',
    'application/x-www-form-urlencoded',
    415,
    'UNSUPPORTED_MEDIA_TYPE',
    'send the body as JSON with the header content-type: application/json',
  ],
  [
    'a body over the limit',
    { prompt: 'a'.repeat(300 * 1024) },
    undefined,
    413,
    'PAYLOAD_TOO_LARGE',
    'the body must not exceed 262144 bytes',
  ],
];

for (const [name, payload, type, status, code, message] of INVALID) {
  test(`invalid request: ${name} → ${status} ${code}`, async () => {
    const steps = backend.steps.length;
    const res = await app.inject({
      method: 'POST',
      url: '/complete',
      ...(typeof payload === 'string'
        ? { payload, headers: { 'content-type': type ?? 'application/json' } }
        : { payload: payload as object }),
    });
    assert.equal(res.statusCode, status);
    const body = res.json<{ error: { code: string; message: string } }>();
    assert.deepEqual(body, { error: { code, message } });
    assert.equal(backend.steps.length, steps, 'nothing reached the backend');
  });
}

test('stream: true answers with one SSE token event per token and a done event', async () => {
  const res = await complete({ prompt: PROMPT, max_new_tokens: 4, stream: true });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
  assert.equal(res.headers['cache-control'], 'no-cache');
  const events = parseSse(res.body);
  const ids = expectedIds(PROMPT_IDS, 4);
  assert.deepEqual(
    events.map((e) => e.event),
    ['token', 'token', 'token', 'token', 'done'],
  );
  events.slice(0, 4).forEach((e, i) => {
    const data = e.data as Completion['tokens'][number];
    assert.deepEqual(Object.keys(data), [
      'index',
      'id',
      'text',
      'logprob',
      'backend_step_ms',
      'since_previous_ms',
    ]);
    assert.equal(data.index, i);
    assert.equal(data.id, ids[i]);
  });
  const done = events[4]!.data as Completion;
  assert.equal(done.text, tokenizer.decode(ids));
  assert.equal(done.finish_reason, 'length');
  assert.deepEqual(done.usage, { prompt_tokens: 4, completion_tokens: 4, total_tokens: 8 });
  assert.equal('tokens' in done, false);
  assert.equal(typeof done.timings.total_ms, 'number');
});

test('a backend failure mid-stream ends the stream with an error event', async () => {
  const failing = await toyApp();
  const open = failing.backend.hold();
  const pending = failing.app.inject({
    method: 'POST',
    url: '/complete',
    payload: { prompt: PROMPT, max_new_tokens: 4, stream: true },
  });
  // Let the first step through, then fail the second.
  await new Promise((resolve) => setImmediate(resolve));
  failing.backend.failNext = new BackendError('BACKEND_TIMEOUT', 'upstream took 10 s');
  open();
  const events = parseSse((await pending).body);
  assert.deepEqual(events.at(-1), {
    event: 'error',
    data: {
      error: {
        code: 'BACKEND_TIMEOUT',
        message: 'the model server did not answer in time; retry later',
      },
    },
  });
  await failing.app.close();
});

test('a backend failure before streaming maps to its HTTP status', async () => {
  const cases: [BackendError, number, string | undefined][] = [
    [new BackendError('BACKEND_UNAVAILABLE', 'ECONNREFUSED'), 503, '1'],
    [new BackendError('BACKEND_TIMEOUT', 'headers timeout'), 504, undefined],
    [new BackendError('BACKEND_ERROR', 'HTTP 500'), 502, undefined],
    [new BackendError('BACKEND_BAD_RESPONSE', 'short body'), 502, undefined],
    [new BackendError('BACKEND_OVERLOADED', 'queue full', { retryAfterSeconds: 7 }), 503, '7'],
    [new BackendError('BACKEND_NOT_READY', 'closed'), 503, '1'],
  ];
  for (const [err, status, retryAfter] of cases) {
    backend.failNext = err;
    const res = await complete({ prompt: 'a', max_new_tokens: 1 });
    assert.equal(res.statusCode, status, err.code);
    assert.equal(res.json<{ error: { code: string } }>().error.code, err.code);
    assert.equal(res.headers['retry-after'], retryAfter, err.code);
    assert.doesNotMatch(res.body, new RegExp(err.message), 'upstream details stay in the log');
  }
});

test('POST /complete is refused with 503 BACKEND_NOT_READY while the backend is not ready', async () => {
  backend.ready = false;
  try {
    const res = await complete({ prompt: 'a' });
    assert.equal(res.statusCode, 503);
    assert.deepEqual(res.json(), {
      error: {
        code: 'BACKEND_NOT_READY',
        message: 'the model is not ready (toy is asleep); retry later',
      },
    });
  } finally {
    backend.ready = true;
  }
});

test('in a stream, text that may begin a stop string is held back, then released or dropped', async () => {
  const ids = expectedIds(PROMPT_IDS, 6);
  const pieces = ids.map((id) => tokenizer.decode([id]));
  // A stop string made of token 2's text plus one character that never follows: held, released.
  const res = await complete({
    prompt: PROMPT,
    max_new_tokens: 6,
    stream: true,
    stop: `${pieces[2]}\u0000`,
  });
  const events = parseSse(res.body);
  const tokens = events.filter((e) => e.event === 'token').map((e) => e.data as { text: string });
  assert.equal(tokens[2]!.text, '', 'held back while it could still be the stop string');
  assert.equal(tokens[3]!.text, pieces[2]! + pieces[3]!, 'released once it cannot');
  assert.equal(tokens.map((t) => t.text).join(''), pieces.join(''));
  const done = events.at(-1)!.data as { text: string; finish_reason: string };
  assert.deepEqual([done.text, done.finish_reason], [pieces.join(''), 'length']);
});

test('content-type application/json with charset=utf-8 (any case, quoted or not) is accepted', async () => {
  for (const type of [
    'application/json; charset=utf-8',
    'Application/JSON; Charset=UTF-8',
    'application/json;charset="utf-8"',
  ]) {
    const res = await app.inject({
      method: 'POST',
      url: '/complete',
      payload: JSON.stringify({ prompt: PROMPT, max_new_tokens: 2 }),
      headers: { 'content-type': type },
    });
    assert.equal(res.statusCode, 200, type);
    assert.deepEqual(
      res.json<Completion>().tokens.map((t) => t.id),
      expectedIds(PROMPT_IDS, 2),
    );
  }
});

test('a charset other than UTF-8 is 415, not a silently re-decoded prompt', async () => {
  const steps = backend.steps.length;
  const res = await app.inject({
    method: 'POST',
    url: '/complete',
    payload: Buffer.from('{"prompt":"caf\xe9"}', 'latin1'),
    headers: { 'content-type': 'application/json; charset=ISO-8859-1' },
  });
  assert.equal(res.statusCode, 415);
  assert.deepEqual(res.json(), {
    error: {
      code: 'UNSUPPORTED_MEDIA_TYPE',
      message:
        "charset 'iso-8859-1' is not supported; send the JSON body as UTF-8 (content-type: application/json; charset=utf-8)",
    },
  });
  assert.equal(backend.steps.length, steps);
});

test('a gzip-encoded body is 415 naming the encoding, not 400 INVALID_JSON', async () => {
  const { gzipSync } = await import('node:zlib');
  for (const url of ['/complete', '/tokenize']) {
    const res = await app.inject({
      method: 'POST',
      url,
      payload: gzipSync(JSON.stringify({ prompt: PROMPT, text: PROMPT })),
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    assert.equal(res.statusCode, 415, url);
    assert.deepEqual(res.json(), {
      error: {
        code: 'UNSUPPORTED_MEDIA_TYPE',
        message: "content-encoding 'gzip' is not supported; send the body uncompressed",
      },
    });
  }
});
