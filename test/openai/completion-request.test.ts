import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import {
  COMPLETION_PARAMETERS,
  type CompletionRequestLimits,
  completionRequestSchema,
  fitContext,
  MAX_STOP_LENGTH,
  validateCompletionRequest,
} from '../../src/openai/completion-request.js';

const LIMITS: CompletionRequestLimits = { maxTokensLimit: 256, vocabSize: 50257, maxPrompts: 4 };

function refusal(body: unknown) {
  const result = validateCompletionRequest(body, LIMITS);
  assert.equal(result.ok, false, JSON.stringify(body));
  assert.ok(!result.ok);
  assert.equal(result.error.status, 400);
  assert.equal(result.error.body.error.type, 'invalid_request_error');
  return result.error.body.error;
}

function accepted(body: unknown) {
  const result = validateCompletionRequest(body, LIMITS);
  assert.ok(result.ok, JSON.stringify(result.ok ? null : result.error.body));
  return result.request;
}

test('a minimal request gets OpenAI defaults', () => {
  assert.deepEqual(accepted({ model: 'gpt2', prompt: 'Hello' }), {
    model: 'gpt2',
    prompts: [{ kind: 'text', text: 'Hello' }],
    maxTokens: 16,
    maxTokensDefaulted: true,
    stop: [],
    stream: false,
    includeUsage: false,
    logprobs: null,
    echo: false,
    user: undefined,
    seed: undefined,
  });
});

test('every supported parameter is read, and the greedy values of the sampling ones are accepted', () => {
  assert.deepEqual(
    accepted({
      model: 'gpt2',
      prompt: ['a', 'b'],
      max_tokens: 5,
      stop: ['\n', '.'],
      stream: true,
      stream_options: { include_usage: true, include_obfuscation: false },
      logprobs: 2,
      echo: true,
      user: 'user-42',
      seed: 7,
      temperature: 0,
      top_p: 1,
      n: 1,
      best_of: 1,
      presence_penalty: 0,
      frequency_penalty: 0,
      logit_bias: {},
      suffix: null,
    }),
    {
      model: 'gpt2',
      prompts: [
        { kind: 'text', text: 'a' },
        { kind: 'text', text: 'b' },
      ],
      maxTokens: 5,
      maxTokensDefaulted: false,
      stop: ['\n', '.'],
      stream: true,
      includeUsage: true,
      logprobs: 2,
      echo: true,
      user: 'user-42',
      seed: 7,
    },
  );
});

test('null means omitted for every nullable parameter, as in OpenAI', () => {
  const request = accepted({
    model: 'gpt2',
    prompt: 'x',
    max_tokens: null,
    stop: null,
    stream: null,
    stream_options: null,
    logprobs: null,
    echo: null,
    user: null,
    seed: null,
    temperature: null,
    top_p: null,
    n: null,
    best_of: null,
    presence_penalty: null,
    frequency_penalty: null,
    logit_bias: null,
    suffix: null,
  });
  assert.equal(request.maxTokens, 16);
  assert.equal(request.maxTokensDefaulted, true);
  assert.deepEqual(request.stop, []);
});

test('prompts as token ids, one array or several', () => {
  assert.deepEqual(accepted({ model: 'm', prompt: [15496, 11, 995] }).prompts, [
    { kind: 'tokens', ids: [15496, 11, 995] },
  ]);
  assert.deepEqual(accepted({ model: 'm', prompt: [[1], [2, 3]] }).prompts, [
    { kind: 'tokens', ids: [1] },
    { kind: 'tokens', ids: [2, 3] },
  ]);
  // A single stop string becomes a list of one.
  assert.deepEqual(accepted({ model: 'm', prompt: 'x', stop: 'END' }).stop, ['END']);
});

test('greedy only: every other sampling value is refused and names its parameter', () => {
  const cases: [string, unknown][] = [
    ['temperature', 0.7],
    ['temperature', 1],
    ['top_p', 0.9],
    ['n', 2],
    ['best_of', 3],
    ['presence_penalty', 0.5],
    ['frequency_penalty', -1],
    ['logit_bias', { '50256': -100 }],
    ['suffix', ' and then'],
    ['suffix', ''],
  ];
  for (const [param, value] of cases) {
    const error = refusal({ model: 'gpt2', prompt: 'x', [param]: value });
    assert.equal(error.param, param);
    assert.equal(error.code, 'unsupported_value');
    assert.match(error.message, new RegExp(`^\`${param}\` must be`));
  }
  assert.match(
    refusal({ model: 'gpt2', prompt: 'x', temperature: 0.7 }).message,
    /must be 0 or omitted: this gateway decodes greedily/,
  );
});

test('every refusable parameter names itself in param', () => {
  const cases: [Record<string, unknown>, string, string][] = [
    [{ prompt: 'x' }, 'model', 'missing_required_parameter'],
    [{ model: 7, prompt: 'x' }, 'model', 'invalid_type'],
    [{ model: '', prompt: 'x' }, 'model', 'invalid_value'],
    [{ model: 'm' }, 'prompt', 'missing_required_parameter'],
    [{ model: 'm', prompt: null }, 'prompt', 'missing_required_parameter'],
    [{ model: 'm', prompt: '' }, 'prompt', 'invalid_value'],
    [{ model: 'm', prompt: [] }, 'prompt', 'invalid_value'],
    [{ model: 'm', prompt: 5 }, 'prompt', 'invalid_type'],
    [{ model: 'm', prompt: [{}] }, 'prompt', 'invalid_type'],
    [{ model: 'm', prompt: ['a', 2] }, 'prompt', 'invalid_type'],
    [{ model: 'm', prompt: ['a', ''] }, 'prompt', 'invalid_value'],
    [{ model: 'm', prompt: [1, 50257] }, 'prompt', 'invalid_value'],
    [{ model: 'm', prompt: [1, -1] }, 'prompt', 'invalid_value'],
    [{ model: 'm', prompt: [1, 2.5] }, 'prompt', 'invalid_value'],
    [{ model: 'm', prompt: [[1], []] }, 'prompt', 'invalid_value'],
    [{ model: 'm', prompt: [[1], 2] }, 'prompt', 'invalid_type'],
    [{ model: 'm', prompt: ['a', 'b', 'c', 'd', 'e'] }, 'prompt', 'array_above_max_length'],
    [{ model: 'm', prompt: 'x', max_tokens: 0 }, 'max_tokens', 'integer_below_min_value'],
    [{ model: 'm', prompt: 'x', max_tokens: 257 }, 'max_tokens', 'integer_above_max_value'],
    [{ model: 'm', prompt: 'x', max_tokens: 1.5 }, 'max_tokens', 'invalid_type'],
    [{ model: 'm', prompt: 'x', max_tokens: '16' }, 'max_tokens', 'invalid_type'],
    [{ model: 'm', prompt: 'x', stop: 3 }, 'stop', 'invalid_type'],
    [{ model: 'm', prompt: 'x', stop: '' }, 'stop', 'invalid_value'],
    [{ model: 'm', prompt: 'x', stop: ['a', 1] }, 'stop', 'invalid_type'],
    [{ model: 'm', prompt: 'x', stop: 'x'.repeat(257) }, 'stop', 'string_above_max_length'],
    [
      { model: 'm', prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] },
      'stop',
      'array_above_max_length',
    ],
    [{ model: 'm', prompt: 'x', stream: 'yes' }, 'stream', 'invalid_type'],
    [
      { model: 'm', prompt: 'x', stream_options: { include_usage: true } },
      'stream_options',
      'invalid_value',
    ],
    [
      { model: 'm', prompt: 'x', stream: true, stream_options: 1 },
      'stream_options',
      'invalid_type',
    ],
    [
      { model: 'm', prompt: 'x', stream: true, stream_options: { include_usage: 'y' } },
      'stream_options.include_usage',
      'invalid_type',
    ],
    [
      { model: 'm', prompt: 'x', stream: true, stream_options: { other: true } },
      'stream_options.other',
      'unknown_parameter',
    ],
    [
      { model: 'm', prompt: 'x', stream: true, stream_options: { include_obfuscation: true } },
      'stream_options.include_obfuscation',
      'unsupported_value',
    ],
    [{ model: 'm', prompt: 'x', logprobs: 6 }, 'logprobs', 'integer_above_max_value'],
    [{ model: 'm', prompt: 'x', logprobs: -1 }, 'logprobs', 'integer_below_min_value'],
    [{ model: 'm', prompt: 'x', logprobs: true }, 'logprobs', 'invalid_type'],
    [{ model: 'm', prompt: 'x', echo: 1 }, 'echo', 'invalid_type'],
    [{ model: 'm', prompt: 'x', user: 5 }, 'user', 'invalid_type'],
    [{ model: 'm', prompt: 'x', user: 'u'.repeat(257) }, 'user', 'string_above_max_length'],
    [{ model: 'm', prompt: 'x', seed: 1.5 }, 'seed', 'invalid_type'],
    [{ model: 'm', prompt: 'x', temperature: '0' }, 'temperature', 'invalid_type'],
    [{ model: 'm', prompt: 'x', logit_bias: [] }, 'logit_bias', 'invalid_type'],
    [{ model: 'm', prompt: 'x', top_k: 1 }, 'top_k', 'unknown_parameter'],
    [{ model: 'm', prompt: 'x', messages: [] }, 'messages', 'unknown_parameter'],
  ];
  for (const [body, param, code] of cases) {
    const error = refusal(body);
    const label = JSON.stringify(body).slice(0, 120);
    assert.equal(error.param, param, label);
    assert.equal(error.code, code, label);
    assert.ok(error.message.length > 0, label);
  }
});

test('messages say what to fix, with the index of the element at fault', () => {
  assert.equal(
    refusal({ model: 'm', prompt: [1, 50257] }).message,
    '`prompt[1]` must be a token id, an integer from 0 to 50256',
  );
  assert.equal(
    refusal({ model: 'm', prompt: 'x', stop: ['a', 1] }).message,
    '`stop[1]` must be a string, not a number',
  );
  assert.equal(
    refusal({ model: 'm', prompt: 'x', top_k: 1 }).message,
    '`top_k` is not a parameter of /v1/completions; remove it',
  );
  assert.equal(
    refusal({ model: 'm', prompt: 'x', max_tokens: 257 }).message,
    '`max_tokens` must be at most 256',
  );
});

test('a body that is not an object is refused with param null', () => {
  for (const body of [null, [], 'text', 3]) {
    const error = refusal(body);
    assert.equal(error.param, null);
    assert.equal(error.code, 'invalid_type');
  }
});

test('the default max_tokens never exceeds the configured limit', () => {
  const request = validateCompletionRequest(
    { model: 'm', prompt: 'x' },
    { maxTokensLimit: 8, vocabSize: 10 },
  );
  assert.ok(request.ok);
  assert.equal(request.request.maxTokens, 8);
});

test('the JSON schema and the validator know the same parameters', () => {
  const schema = completionRequestSchema(LIMITS);
  assert.deepEqual(Object.keys(schema.properties).sort(), [...COMPLETION_PARAMETERS].sort());
  assert.equal(schema.additionalProperties, false);
  assert.deepEqual(schema.required, ['model', 'prompt']);
  assert.equal(schema.properties.max_tokens.anyOf[0].maximum, 256);
});

test("fastify (with the app's ajv options) accepts and refuses the same bodies as the validator", async () => {
  const app = Fastify({
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
  });
  app.post(
    '/v1/completions',
    { schema: { body: completionRequestSchema(LIMITS) } },
    async () => ({}),
  );
  const bodies: unknown[] = [
    { model: 'm', prompt: 'x' },
    { model: 'm', prompt: ['a', 'b'], stop: '\n', max_tokens: 3, logprobs: 5, echo: true },
    { model: 'm', prompt: [[1, 2], [3]], temperature: 0, top_p: 1, n: 1, logit_bias: {} },
    { model: 'm', prompt: 'x', stream: true, stream_options: { include_usage: true } },
    { model: 'm', prompt: 'x', seed: null, suffix: null, user: 'u' },
    { model: 'm', prompt: 'x', temperature: 0.7 },
    { model: 'm', prompt: 'x', n: 2 },
    { model: 'm', prompt: 'x', logit_bias: { '1': 2 } },
    { model: 'm', prompt: 'x', suffix: 's' },
    { model: 'm', prompt: 'x', max_tokens: '16' },
    { model: 'm', prompt: [1, 50257] },
    { model: 'm', prompt: ['a', 'b', 'c', 'd', 'e'] },
    { model: 'm', prompt: '' },
    { model: 'm', prompt: 'x', top_k: 1 },
    { model: 'm', prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] },
    { model: 'm', prompt: 'x', stream: true, stream_options: { include_obfuscation: true } },
    { prompt: 'x' },
  ];
  try {
    for (const body of bodies) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/completions',
        payload: body as object,
      });
      const schemaOk = res.statusCode === 200;
      assert.equal(schemaOk, validateCompletionRequest(body, LIMITS).ok, JSON.stringify(body));
    }
  } finally {
    await app.close();
  }
});

test('fitContext: an explicit max_tokens must fit, an omitted one shrinks to the room left', () => {
  const base = { contextLength: 1024, maxTokensDefaulted: false } as const;
  assert.deepEqual(fitContext({ ...base, promptTokens: 1000, maxTokens: 24 }), {
    ok: true,
    maxTokens: 24,
  });
  const over = fitContext({ ...base, promptTokens: 1000, maxTokens: 25 });
  assert.ok(!over.ok);
  assert.deepEqual(over.error, {
    status: 400,
    body: {
      error: {
        message:
          "the model's context is 1024 tokens, but 1025 were requested (1000 in the prompt, 25 " +
          'for the completion); shorten the prompt or lower max_tokens',
        type: 'invalid_request_error',
        param: 'prompt',
        code: 'context_length_exceeded',
      },
    },
  });
  assert.deepEqual(
    fitContext({
      contextLength: 1024,
      maxTokensDefaulted: true,
      promptTokens: 1020,
      maxTokens: 16,
    }),
    { ok: true, maxTokens: 4 },
  );
  const full = fitContext({
    contextLength: 1024,
    maxTokensDefaulted: true,
    promptTokens: 1024,
    maxTokens: 16,
    promptIndex: 1,
    promptCount: 2,
  });
  assert.ok(!full.ok);
  assert.match(
    full.error.body.error.message,
    /^the prompt \(prompt\[1\]\) is 1024 tokens, which leaves no room/,
  );
});

test('stop and user lengths count characters (code points), as the schema maxLength and /complete do', () => {
  // 256 emoji are 256 characters but 512 UTF-16 code units.
  const emoji = '\u{1F600}';
  const longest = emoji.repeat(MAX_STOP_LENGTH);
  assert.deepEqual(accepted({ model: 'm', prompt: 'x', stop: longest }).stop, [longest]);
  assert.equal(
    accepted({ model: 'm', prompt: 'x', user: emoji.repeat(256) }).user,
    emoji.repeat(256),
  );
  const tooLong = refusal({ model: 'm', prompt: 'x', stop: [emoji.repeat(MAX_STOP_LENGTH + 1)] });
  assert.equal(tooLong.code, 'string_above_max_length');
  assert.equal(tooLong.message, '`stop[0]` is longer than 256 characters');
  assert.equal(
    refusal({ model: 'm', prompt: 'x', user: emoji.repeat(257) }).code,
    'string_above_max_length',
  );
});
