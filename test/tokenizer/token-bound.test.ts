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
  // 4-byte characters never share a token: each emoji is a token at least.
  assert.equal(tokenizer.minTokenCount('😀'.repeat(64)), 64);
});

test('runs of one class of character are bounded too: a 64 KiB word of letters is refused before BPE', () => {
  let word = '';
  for (let i = 0; word.length < 64 * 1024; i++) word += 'abcdefghijklmnopqrstuvwxyz'[(i * 7) % 26];
  // No GPT-2 token holds more than 32 letters in a row ("rawdownloadcloneembedreportprint").
  assert.equal(tokenizer.minTokenCount(word), 2048);
  assert.ok(tokenizer.minTokenCount(word) > CONTEXT_LENGTH);
  // 3-byte characters: at most 48 bytes of them in a token ("—" × 16).
  assert.equal(tokenizer.minTokenCount('中'.repeat(1600)), 100);
  assertLowerBound('中'.repeat(1600));
  assertLowerBound('—'.repeat(1600));
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

/** A run of one class: letters, digits, punctuation, 3-byte or 4-byte characters, or a mix. */
function randomWord(next: (below: number) => number): string {
  const alphabets = [
    'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ',
    '0123456789',
    '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~',
    '中文字日本語のテキスト—–…€ー',
    'aé中😀1-',
  ];
  const alphabet = [...alphabets[next(alphabets.length)]!];
  let word = '';
  for (let n = 1 + next(120); n > 0; n--) word += alphabet[next(alphabet.length)];
  return word;
}

test('every class of character: runs of every length up to past three tokens', () => {
  for (const char of ['—', '中', 'ー', '😀', '👍🏽', 'é']) {
    for (let n = 1; n <= 60; n++) {
      const run = char.repeat(n);
      for (const text of [run, `x${run}x`, ` ${run} `, `${run}${'a'.repeat(n)}`])
        assertLowerBound(text);
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
    '—'.repeat(17),
    'ー'.repeat(20),
    '中文字'.repeat(9),
    '😀👍🏽🤖',
    'é'.repeat(70),
    'Ãĥ'.repeat(70),
    'rawdownloadcloneembedreportprint',
    'SolidGoldMagikarp',
    'ADVERTISEMENTS',
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
      // A piece, a run of one random ASCII character, or a random word of one class.
      const kind = next(3);
      if (kind === 0) text += pieces[next(pieces.length)];
      else if (kind === 1) text += String.fromCharCode(next(128)).repeat(1 + next(70));
      else text += randomWord(next);
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
