import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildCompletion,
  CompletionStream,
  completionId,
  echoOf,
  type OutcomeInput,
  SSE_DONE,
  sseData,
  type TokenInput,
  toOpenAIFinishReason,
} from '../../src/openai/completion-response.js';

const META = { id: completionId('req-1'), created: 1_764_547_200, model: 'gpt2', logprobs: null };

function token(index: number, id: number, text: string, logprob: number): TokenInput {
  return { index, id, text, logprob, backendStepMs: 2 + index, sincePreviousMs: 10 + index };
}

/** " world!" then EOS: three tokens, the last releasing no text. */
const OUTCOME: OutcomeInput = {
  tokens: [token(0, 995, ' world', -0.5), token(1, 0, '!', -1.25), token(2, 50256, '', -0.1)],
  text: ' world!',
  finishReason: 'eos',
  timings: { queueMs: 1, timeToFirstTokenMs: 10, backendMs: 9, totalMs: 32 },
};

const TIMINGS = {
  tokenize_ms: 0.5,
  queue_ms: 1,
  time_to_first_token_ms: 10,
  time_per_output_token_ms: 11,
  backend_ms: 9,
  total_ms: 32,
  tokens_per_second: 93.75,
};

const GATEWAY_TOKENS = [
  { index: 0, id: 995, backend_step_ms: 2, since_previous_ms: 10 },
  { index: 1, id: 0, backend_step_ms: 3, since_previous_ms: 11 },
  { index: 2, id: 50256, backend_step_ms: 4, since_previous_ms: 12 },
];

test('finish reasons: EOS and stop strings are "stop", max_tokens is "length"', () => {
  assert.equal(toOpenAIFinishReason('eos'), 'stop');
  assert.equal(toOpenAIFinishReason('stop'), 'stop');
  assert.equal(toOpenAIFinishReason('length'), 'length');
});

test("the non-streamed answer has OpenAI's shape plus the gateway_ timings", () => {
  assert.deepEqual(
    buildCompletion(META, [{ outcome: OUTCOME, promptTokens: 2, tokenizeMs: 0.5 }]),
    {
      id: 'cmpl-req-1',
      object: 'text_completion',
      created: 1_764_547_200,
      model: 'gpt2',
      choices: [
        {
          index: 0,
          text: ' world!',
          logprobs: null,
          finish_reason: 'stop',
          gateway_timings: TIMINGS,
          gateway_tokens: GATEWAY_TOKENS,
        },
      ],
      usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 },
    },
  );
});

test('several prompts: one choice each, in order, usage summed over all', () => {
  const second: OutcomeInput = {
    tokens: [token(0, 13, '.', -2)],
    text: '.',
    finishReason: 'length',
    timings: { queueMs: 0, timeToFirstTokenMs: 5, backendMs: 2, totalMs: 5 },
  };
  const completion = buildCompletion(META, [
    { outcome: OUTCOME, promptTokens: 2 },
    { outcome: second, promptTokens: 4 },
  ]);
  assert.deepEqual(
    completion.choices.map((c) => [c.index, c.text, c.finish_reason]),
    [
      [0, ' world!', 'stop'],
      [1, '.', 'length'],
    ],
  );
  assert.deepEqual(completion.usage, { prompt_tokens: 6, completion_tokens: 4, total_tokens: 10 });
  // One token: no gaps between tokens to average.
  assert.equal(completion.choices[1]?.gateway_timings.time_per_output_token_ms, null);
});

test('logprobs: the legacy shape, top_logprobs holding only the chosen token without full logits', () => {
  const completion = buildCompletion({ ...META, logprobs: 3 }, [
    { outcome: OUTCOME, promptTokens: 2 },
  ]);
  assert.deepEqual(completion.choices[0]?.logprobs, {
    tokens: [' world', '!', ''],
    token_logprobs: [-0.5, -1.25, -0.1],
    top_logprobs: [{ ' world': -0.5 }, { '!': -1.25 }, { '': -0.1 }],
    text_offset: [0, 6, 7],
  });
});

test("logprobs 0: the chosen tokens' logprobs and no top_logprobs", () => {
  const completion = buildCompletion({ ...META, logprobs: 0 }, [
    { outcome: OUTCOME, promptTokens: 2 },
  ]);
  assert.equal(completion.choices[0]?.logprobs?.top_logprobs, null);
  assert.deepEqual(completion.choices[0]?.logprobs?.token_logprobs, [-0.5, -1.25, -0.1]);
});

test('alternatives from the backend, where it gives them, fill top_logprobs up to k', () => {
  const withTop: OutcomeInput = {
    ...OUTCOME,
    tokens: [
      {
        ...token(0, 995, ' world', -0.5),
        topLogprobs: [
          { text: ' world', logprob: -0.5 },
          { text: ' there', logprob: -1 },
          { text: ' you', logprob: -2 },
        ],
      },
    ],
    text: ' world',
  };
  const completion = buildCompletion({ ...META, logprobs: 2 }, [
    { outcome: withTop, promptTokens: 1 },
  ]);
  assert.deepEqual(completion.choices[0]?.logprobs?.top_logprobs, [
    { ' world': -0.5, ' there': -1 },
  ]);
});

test('echo prepends the prompt; with logprobs its tokens come first, the first with null', () => {
  const echo = {
    text: 'Hello',
    tokens: [{ text: 'Hel' }, { text: 'lo', logprob: -3 }],
  };
  const completion = buildCompletion({ ...META, logprobs: 1 }, [
    { outcome: OUTCOME, promptTokens: 2, echo },
  ]);
  const choice = completion.choices[0]!;
  assert.equal(choice.text, 'Hello world!');
  assert.deepEqual(choice.logprobs, {
    tokens: ['Hel', 'lo', ' world', '!', ''],
    token_logprobs: [null, -3, -0.5, -1.25, -0.1],
    top_logprobs: [null, { lo: -3 }, { ' world': -0.5 }, { '!': -1.25 }, { '': -0.1 }],
    text_offset: [0, 3, 5, 11, 12],
  });
  // Offsets count code points, as OpenAI's (Python) do: 'é🙂' is 2, not 3.
  const wide = buildCompletion({ ...META, logprobs: 0 }, [
    { outcome: OUTCOME, promptTokens: 1, echo: { text: 'é🙂', tokens: [{ text: 'é🙂' }] } },
  ]);
  assert.deepEqual(wide.choices[0]?.logprobs?.text_offset, [0, 2, 8, 9]);
});

test('a stream: one chunk per token, a finishing chunk per choice, usage, then [DONE]', () => {
  const stream = new CompletionStream({ ...META, includeUsage: true });
  const chunks = [
    ...OUTCOME.tokens.map((t) => stream.token(0, t)),
    stream.finish(0, { outcome: OUTCOME, promptTokens: 2, tokenizeMs: 0.5 }),
  ];
  const head = {
    id: 'cmpl-req-1',
    object: 'text_completion',
    created: 1_764_547_200,
    model: 'gpt2',
  };
  assert.deepEqual(chunks, [
    ...OUTCOME.tokens.map((t, i) => ({
      ...head,
      choices: [
        {
          index: 0,
          text: t.text,
          logprobs: null,
          finish_reason: null,
          gateway_token: GATEWAY_TOKENS[i],
        },
      ],
      usage: null,
    })),
    {
      ...head,
      choices: [
        { index: 0, text: '', logprobs: null, finish_reason: 'stop', gateway_timings: TIMINGS },
      ],
      usage: null,
    },
  ]);
  assert.deepEqual(stream.usage(), {
    ...head,
    choices: [],
    usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 },
  });
  assert.equal(chunks.map((c) => c.choices[0]?.text).join(''), OUTCOME.text);
});

test('without include_usage the chunks carry no usage field and there is no usage chunk', () => {
  const stream = new CompletionStream({ ...META, includeUsage: false });
  const chunk = stream.token(0, OUTCOME.tokens[0]!);
  assert.equal('usage' in chunk, false);
  stream.finish(0, { outcome: OUTCOME, promptTokens: 2 });
  assert.equal(stream.usage(), undefined);
});

test("streamed logprobs keep each choice's text offset running, echo included", () => {
  const stream = new CompletionStream({ ...META, logprobs: 0, includeUsage: false });
  const echo = stream.echo(1, { text: 'Hi', tokens: [{ text: 'Hi' }] });
  assert.deepEqual(echo.choices, [
    {
      index: 1,
      text: 'Hi',
      logprobs: { tokens: ['Hi'], token_logprobs: [null], top_logprobs: null, text_offset: [0] },
      finish_reason: null,
    },
  ]);
  const offsets = OUTCOME.tokens.map((t) => stream.token(1, t).choices[0]?.logprobs?.text_offset);
  assert.deepEqual(offsets, [[2], [8], [9]]);
  // Another choice counts from its own start.
  assert.deepEqual(stream.token(0, OUTCOME.tokens[0]!).choices[0]?.logprobs?.text_offset, [0]);
});

test('SSE framing is data-only, as openai-node reads it', () => {
  assert.equal(sseData({ a: 1 }), 'data: {"a":1}\n\n');
  assert.equal(SSE_DONE, 'data: [DONE]\n\n');
});

test('echoOf gives each prompt token the text it releases, a split character with its last byte', () => {
  // A fake decoder over byte tokens: 'é' is two UTF-8 bytes sent as two tokens.
  const bytes: Record<number, number[]> = { 1: [0x48, 0x69], 2: [0xc3], 3: [0xa9] };
  const utf8 = new TextDecoder();
  const decoder = {
    push: (id: number) => utf8.decode(new Uint8Array(bytes[id] ?? []), { stream: true }),
    flush: () => utf8.decode(),
  };
  assert.deepEqual(echoOf([1, 2, 3], decoder), {
    text: 'Hié',
    tokens: [{ text: 'Hi' }, { text: '' }, { text: 'é' }],
  });
});
