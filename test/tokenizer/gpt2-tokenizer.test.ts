import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EOS_TOKEN_ID, loadGpt2Tokenizer } from '../../src/tokenizer/gpt2-tokenizer.js';

const tokenizer = loadGpt2Tokenizer();

test('known GPT-2 ids', () => {
  assert.deepEqual(tokenizer.encode('Hello world'), [15496, 995]);
  assert.deepEqual(tokenizer.encode('I love Artificial Intelligence'), [40, 1842, 35941, 9345]);
  assert.deepEqual(
    tokenizer.encode('I enjoy working in Seldon'),
    [40, 2883, 1762, 287, 1001, 25900],
  );
  assert.equal(tokenizer.vocabSize, 50257);
});

test('<|endoftext|> in text is the EOS token, as in Hugging Face transformers', () => {
  assert.deepEqual(tokenizer.encode('a<|endoftext|>'), [64, EOS_TOKEN_ID]);
});

test('decoding from ids is exact, whitespace and multi-byte characters included', () => {
  for (const text of [
    'I love Artificial Intelligence. I',
    '  two leading spaces,\ttabs\nand\n\nnewlines  ',
    'héllo wörld — “quotes” 世界 🤖👍🏽',
    "it's, don't; 'quoted' (parens) [brackets]",
  ]) {
    assert.equal(tokenizer.decode(tokenizer.encode(text)), text);
  }
});

test('a regression guard for the notebook bug: ids decode without inserted spaces', () => {
  // The notebook re-encoded concatenated strings and got "Intelligence . I".
  assert.equal(tokenizer.decode([9345, 13, 314]), ' Intelligence. I');
});

test('the stream decoder never splits a multi-byte character', () => {
  const ids = tokenizer.encode(' 🤖 ok');
  // The robot emoji's four bytes are spread over several byte-level tokens.
  assert.ok(ids.length > 3);
  const decoder = tokenizer.createStreamDecoder();
  const pieces = ids.map((id) => decoder.push(id));
  assert.equal(pieces.join('') + decoder.flush(), ' 🤖 ok');
  for (const piece of pieces) assert.doesNotMatch(piece, /\uFFFD/);
  assert.ok(pieces.includes(''), 'an incomplete character is held back, not emitted');
});

test('an incomplete character at the end comes out as U+FFFD on flush', () => {
  const [first] = tokenizer.encode('🤖');
  const decoder = tokenizer.createStreamDecoder();
  assert.equal(decoder.push(first!), '');
  assert.equal(decoder.flush(), '\uFFFD');
});

test('ids outside the vocabulary are refused', () => {
  assert.throws(() => tokenizer.tokenBytes(50257), RangeError);
});
