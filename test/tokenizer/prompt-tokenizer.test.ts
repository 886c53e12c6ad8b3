import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { GatewayError } from '../../src/contract/errors.js';
import { loadGpt2Tokenizer } from '../../src/tokenizer/gpt2-tokenizer.js';
import { PromptTokenizer } from '../../src/tokenizer/prompt-tokenizer.js';
import { TokenizerPool } from '../../src/tokenizer/tokenizer-pool.js';

const tokenizer = loadGpt2Tokenizer();
const pool = new TokenizerPool({ workers: 1, inlineMaxChars: 0, testHooks: { exitOnText: 'die' } });
after(() => pool.close());

test('a tokenizer worker that dies on the prompt is a 503 to retry, and the next prompt is served', async () => {
  const prompts = new PromptTokenizer(tokenizer, pool);
  await assert.rejects(prompts.encode('die'), (err: unknown) => {
    assert.ok(err instanceof GatewayError);
    assert.equal(err.code, 'TOKENIZER_UNAVAILABLE');
    assert.equal(err.statusCode, 503);
    assert.ok((err.retryAfterSeconds ?? 0) > 0, 'with a Retry-After');
    return true;
  });
  assert.deepEqual(await prompts.encode('Hello world'), [15496, 995]);
});
