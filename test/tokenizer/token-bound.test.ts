import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadGpt2Tokenizer } from '../../src/tokenizer/gpt2-tokenizer.js';
import { isRegexWhitespace } from '../../src/tokenizer/token-bound.js';

const tokenizer = loadGpt2Tokenizer();
/** GPT-2's context, the limit /complete holds prompts to. */
const CONTEXT_LENGTH = 1024;

/** Deterministic pseudo-random numbers (a failure names a text that reproduces it). */
function random(seed: number): (below: number) => number {
  let state = seed;
  return (below) => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % below;
  };
}

function assertLowerBound(text: string): void {
  const bound = tokenizer.minTokenCount(text);
  const real = tokenizer.encode(text).length;
  assert.ok(bound <= real, `bound ${bound} > ${real} tokens for ${JSON.stringify(text)}`);
}

/** The longest run of one character that the vocabulary holds, found by encoding (not by the bound). */
function longestEncodedRun(char: string): number {
  const ids = tokenizer.encode(char.repeat(400));
  return Math.max(...ids.map((id) => tokenizer.tokenBytes(id).length));
}

test('a run of one repeated character is bounded by the longest run token: "a" × 60,000 is refused before BPE', () => {
  const bound = tokenizer.minTokenCount('a'.repeat(60_000));
  // GPT-2 holds "aaaa" and no longer run of "a".
  assert.equal(bound, 15_000);
  assert.ok(bound > CONTEXT_LENGTH);
  assert.equal(bound, tokenizer.encode('a'.repeat(60_000)).length);
  // A space never repeats inside a GPT-2 token: n spaces are n tokens.
  assert.equal(tokenizer.minTokenCount(' '.repeat(5_000)), 5_000);
  assert.equal(tokenizer.minTokenCount('=-'.repeat(10)), 1); // alternating: no run to bound
});

test('the bound is exact where the structure forces every cut', () => {
  assert.equal(tokenizer.minTokenCount(''), 0);
  assert.equal(tokenizer.minTokenCount('hello world  again\n'), 5);
  assert.equal(tokenizer.encode('hello world  again\n').length, 5);
  assert.equal(tokenizer.minTokenCount('😀'.repeat(64)), 2); // 256 bytes, 128 a token
});

test('isRegexWhitespace is exactly \\s of a JavaScript regex', () => {
  for (let unit = 0; unit <= 0xffff; unit++) {
    assert.equal(isRegexWhitespace(unit), /\s/.test(String.fromCharCode(unit)), `U+${unit}`);
  }
});

test('every ASCII character: runs of every length up to past three tokens, alone and between neighbours', () => {
  for (let code = 0; code < 128; code++) {
    const char = String.fromCharCode(code);
    const longest = longestEncodedRun(char);
    for (let n = 1; n <= 3 * longest + 1; n++) {
      const run = char.repeat(n);
      for (const text of [run, `x${run}x`, ` ${run} `, `\n${run}\n`, `${run}\u00a0`, `é${run}😀`]) {
        assertLowerBound(text);
      }
    }
  }
});

test('minTokenCount never exceeds the real token count, over random and adversarial texts', () => {
  const pieces = [
    'x'.repeat(300),
    '-'.repeat(200),
    '='.repeat(131),
    '_'.repeat(65),
    '.'.repeat(129),
    '#'.repeat(33),
    '\n'.repeat(5),
    ' '.repeat(7),
    'ÃĥÃĤ'.repeat(40),
    ' ',
    '  ',
    '\t',
    '\n',
    '\r\n',
    '\v',
    '\f',
    '\u00a0',
    '\u3000',
    '\u2028',
    '\ufeff',
    '😀',
    '中文',
    '\ud800',
    '\udc00',
    '<|endoftext|>',
    "'s",
    "'ll",
    '123',
    '0000',
    'hello',
    ' world',
    '!?',
    'aaaa',
    'oooooooooooooooo',
  ];
  const next = random(7);
  for (let i = 0; i < 3000; i++) {
    let text = '';
    const n = next(14);
    for (let k = 0; k < n; k++) {
      // Half the time a piece, else a random run of one random ASCII character.
      if (next(2) === 0) text += pieces[next(pieces.length)];
      else text += String.fromCharCode(next(128)).repeat(1 + next(70));
    }
    assertLowerBound(text);
  }
});

test('long natural text: the bound stays below the real count and is not trivial', () => {
  const words = ['the', 'model', ' completes', 'prompts;', 'über', '日本語', '—', '42', "don't"];
  const next = random(11);
  let text = '';
  while (text.length < 64 * 1024)
    text += `${words[next(words.length)]}${next(5) === 0 ? '\n' : ' '}`;
  const bound = tokenizer.minTokenCount(text);
  const real = tokenizer.encode(text).length;
  assert.ok(bound <= real);
  // Every word boundary is a forced cut here, so the bound is far above bytes / 128.
  assert.ok(bound > Buffer.byteLength(text) / tokenizer.maxTokenBytes);
});
