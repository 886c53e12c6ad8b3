/**
 * A cheap lower bound on how many GPT-2 tokens a text encodes to: one scan over its UTF-16 code
 * units, no BPE. It lets a route refuse a prompt that cannot fit the context before paying for
 * BPE (which costs ~7 µs a character on one long word: 0.4 s for "a" × 60,000).
 *
 * Why it is a lower bound. The encoding splits the text's UTF-8 bytes into consecutive tokens, so
 * the token count is 1 + the number of byte positions where one token ends and the next begins
 * (cuts). The bound counts cuts that every split must make, in disjoint sets of positions:
 * - Inside a run of n copies of one ASCII byte c: no vocabulary token holds more than longest[c]
 *   consecutive c's, so at least ceil(n / longest[c]) - 1 cuts fall inside the run ("a" runs to
 *   at most 4 in GPT-2's vocabulary, a space never repeats, "=" runs to 65).
 * - Inside a word (a stretch without ASCII whitespace): every token holds at most maxTokenBytes
 *   bytes, so at least ceil(bytes / maxTokenBytes) - 1 cuts; the word counts the larger of this
 *   and the cuts its runs force, as both fall in the same positions.
 * - Between a word and the whitespace after it, and between whitespace other than a space and the
 *   word after it: GPT-2's pre-tokenizer (`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
 *   ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, in openai/gpt-2 src/encoder.py) only ever puts whitespace
 *   at the start of a piece, and only one space before a non-space, and BPE never merges across
 *   pieces. The word side must not be `\s` itself (a no-break space can share a piece with the
 *   whitespace beside it).
 * A lone surrogate counts as the three bytes of U+FFFD, which is what TextEncoder turns it into.
 */

/** What the bound needs from a vocabulary: its longest token and its longest run of each ASCII byte. */
export interface TokenBoundLimits {
  readonly maxTokenBytes: number;
  /** longestRun[c], c < 128: the most consecutive bytes c in any one token (at least 1). */
  readonly longestRun: Uint8Array;
}

/** Reads the limits off the vocabulary (the bytes of every token id), once at load time. */
export function tokenBoundLimits(tokens: readonly Uint8Array[]): TokenBoundLimits {
  const longestRun = new Uint8Array(128).fill(1);
  let maxTokenBytes = 1;
  for (const bytes of tokens) {
    maxTokenBytes = Math.max(maxTokenBytes, bytes.length);
    let run = 0;
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i]!;
      run = i > 0 && byte === bytes[i - 1] ? run + 1 : 1;
      // A Uint8Array entry caps at 255; no run gets near that (tokens are at most 128 bytes).
      if (byte < 128 && run > longestRun[byte]!) longestRun[byte] = run;
    }
  }
  return { maxTokenBytes, longestRun };
}

/** Space, \t, \n, \v, \f, \r: whitespace in every regex dialect, so GPT-2's pre-tokenizer splits there. */
function isAsciiWhitespace(unit: number): boolean {
  return unit === 0x20 || (unit >= 0x09 && unit <= 0x0d);
}

/** JavaScript's `\s` (ECMA-262 WhiteSpace and LineTerminator), the class the pre-tokenizer uses. */
export function isRegexWhitespace(unit: number): boolean {
  if (unit < 0x80) return isAsciiWhitespace(unit);
  return (
    unit === 0xa0 ||
    unit === 0x1680 ||
    (unit >= 0x2000 && unit <= 0x200a) ||
    unit === 0x2028 ||
    unit === 0x2029 ||
    unit === 0x202f ||
    unit === 0x205f ||
    unit === 0x3000 ||
    unit === 0xfeff
  );
}

/** UTF-8 bytes of the code unit at i, and how many code units it spans (2 for a surrogate pair). */
function utf8Width(text: string, i: number, unit: number): number {
  if (unit < 0x80) return 1;
  if (unit < 0x800) return 2;
  if (unit >= 0xd800 && unit <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) return 4;
  return 3; // includes a lone surrogate, encoded as U+FFFD
}

/** The bound itself; see the module comment for why every counted cut is forced. */
export function tokenCountLowerBound(text: string, limits: TokenBoundLimits): number {
  if (text.length === 0) return 0;
  const { maxTokenBytes, longestRun } = limits;
  let cuts = 0;
  // The stretch being scanned: a word (no ASCII whitespace) or a gap (ASCII whitespace only).
  let inWord = !isAsciiWhitespace(text.charCodeAt(0));
  let wordBytes = 0;
  let runCuts = 0; // cuts forced inside the stretch's runs so far
  // The current run of one ASCII code unit (-1: the last unit was not ASCII).
  let runUnit = -1;
  let runLength = 0;
  let previous = -1;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    const whitespace = isAsciiWhitespace(unit);
    if (unit !== runUnit) {
      if (runLength > 1) runCuts += Math.ceil(runLength / longestRun[runUnit]!) - 1;
      runUnit = unit < 0x80 ? unit : -1;
      runLength = 0;
    }
    if (runUnit !== -1) runLength++;
    if (whitespace === inWord) {
      // The stretch ends at i; the run that just closed belonged to it.
      if (inWord) {
        cuts += Math.max(Math.ceil(wordBytes / maxTokenBytes) - 1, runCuts);
        if (!isRegexWhitespace(previous)) cuts++; // word | whitespace
        wordBytes = 0;
      } else {
        cuts += runCuts;
        if (previous !== 0x20 && !isRegexWhitespace(unit)) cuts++; // \n etc. | word
      }
      runCuts = 0;
      inWord = !whitespace;
    }
    if (!whitespace) {
      const width = utf8Width(text, i, unit);
      wordBytes += width;
      if (width === 4) i++; // the low surrogate is part of this character, not a new stretch
    }
    previous = text.charCodeAt(i);
  }
  if (runLength > 1) runCuts += Math.ceil(runLength / longestRun[runUnit]!) - 1;
  cuts += inWord ? Math.max(Math.ceil(wordBytes / maxTokenBytes) - 1, runCuts) : runCuts;
  return 1 + cuts;
}
