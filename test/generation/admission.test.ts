import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../src/contract/errors.js';
import { type AdmissionTokenizer, admitCompletion } from '../../src/generation/admission.js';

/** One token per character, and a lower bound that is the exact count: easy to reason about. */
const perChar: AdmissionTokenizer = {
  minTokenCount: (text) => text.length,
  encode: (text) => [...text].map((c) => c.charCodeAt(0)),
};
const limits = { contextLength: 10, defaultMaxNewTokens: 4 };

function refusal(message: RegExp) {
  return (err: unknown) =>
    err instanceof GatewayError &&
    err.code === 'CONTEXT_LENGTH_EXCEEDED' &&
    err.statusCode === 400 &&
    message.test(err.message);
}

test('a prompt that fits is admitted with its ids, the asked max_new_tokens and the stop list', async () => {
  assert.deepEqual(
    await admitCompletion({ prompt: 'abc', maxNewTokens: 7, stop: ['x', 'y'] }, limits, perChar),
    { promptIds: [97, 98, 99], maxNewTokens: 7, stop: ['x', 'y'] },
  );
});

test('stop: absent is no stop string, one string is a list of one', async () => {
  const admit = async (stop: string | undefined) =>
    (await admitCompletion({ prompt: 'a', maxNewTokens: 1, stop }, limits, perChar)).stop;
  assert.deepEqual(await admit(undefined), []);
  assert.deepEqual(await admit('\n'), ['\n']);
});

test('an omitted max_new_tokens is the default, shrunk to what the context leaves', async () => {
  const admit = async (prompt: string) =>
    (await admitCompletion({ prompt, maxNewTokens: undefined, stop: undefined }, limits, perChar))
      .maxNewTokens;
  assert.equal(await admit('ab'), 4);
  assert.equal(await admit('abcdefgh'), 2);
  assert.equal(await admit('abcdefghi'), 1);
});

test('a prompt that fills the context, with no max_new_tokens, is refused without naming it', async () => {
  await assert.rejects(
    admitCompletion(
      { prompt: 'abcdefghij', maxNewTokens: undefined, stop: undefined },
      limits,
      perChar,
    ),
    refusal(/^the prompt is 10 tokens, which leaves no room .* context of 10; shorten the prompt$/),
  );
});

test('prompt plus max_new_tokens beyond the context is refused, never truncated', async () => {
  await assert.rejects(
    admitCompletion({ prompt: 'abcdefgh', maxNewTokens: 3, stop: undefined }, limits, perChar),
    refusal(
      /the prompt is 8 tokens and max_new_tokens is 3: 11 tokens exceed .* lower max_new_tokens$/,
    ),
  );
  // Exactly the context is fine.
  assert.equal(
    (
      await admitCompletion(
        { prompt: 'abcdefg', maxNewTokens: 3, stop: undefined },
        limits,
        perChar,
      )
    ).maxNewTokens,
    3,
  );
});

test('a prompt whose lower bound already overflows is refused before it is encoded', async () => {
  let encoded = false;
  const guarded: AdmissionTokenizer = {
    minTokenCount: () => 11,
    encode: () => {
      encoded = true;
      return [];
    },
  };
  await assert.rejects(
    admitCompletion({ prompt: 'x', maxNewTokens: 1, stop: undefined }, limits, guarded),
    refusal(/^the prompt is at least 11 tokens, more than the model's context of 10/),
  );
  assert.equal(encoded, false);
});
