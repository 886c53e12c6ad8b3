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

test('minTokenCount never exceeds the real token count (it refuses prompts before BPE)', () => {
  assert.equal(tokenizer.maxTokenBytes, 128);
  // Deterministic pseudo-random texts over the characters that stress the bound: runs of one
  // letter (long tokens), digits, punctuation, every ASCII whitespace, NBSP, emoji, CJK, lone
  // surrogates and the literal <|endoftext|>.
  const pieces = [
    'x'.repeat(300),
    '-'.repeat(200),
    'ÃĥÃĤ'.repeat(40),
    ' ',
    '  ',
    '\t',
    '\n',
    '\r\n',
    '\v',
    '\f',
    '\u00a0',
    '😀',
    '中文',
    '\ud800',
    '<|endoftext|>',
    "'s",
    '123',
    'hello',
    ' world',
    '!?',
  ];
  let seed = 7;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed;
  };
  for (let i = 0; i < 300; i++) {
    let text = '';
    const n = next() % 12;
    for (let k = 0; k < n; k++) text += pieces[next() % pieces.length];
    const real = tokenizer.encode(text).length;
    assert.ok(tokenizer.minTokenCount(text) <= real, JSON.stringify(text));
  }
  assert.equal(tokenizer.minTokenCount(''), 0);
  assert.equal(tokenizer.minTokenCount('hello world  again\n'), 5);
  assert.equal(tokenizer.minTokenCount('x'.repeat(250_000)), 250_000 / 8); // "xxxxxxxx" is the longest x run
  assert.equal(tokenizer.minTokenCount('😀'.repeat(64)), 64); // an emoji never shares a token
});
