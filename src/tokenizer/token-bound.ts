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
 * - Inside a run of characters of one class (ASCII letters, digits, other ASCII, 3-byte or 4-byte
 *   characters): a token's share of the run is a stretch of the class's bytes, and no token holds
 *   more than longestClassRun[class] such bytes in a row (32 for letters, 48 bytes of 3-byte
 *   characters, 4 of 4-byte ones: every emoji is a token of its own at least). 2-byte characters
 *   gain nothing this way (a 128-byte token of them exists) and end a run.
 * - Inside a word (a stretch without ASCII whitespace): every token holds at most maxTokenBytes
 *   bytes, so at least ceil(bytes / maxTokenBytes) - 1 cuts. The three counts above fall in the
 *   same positions, so the word counts the largest of them, not their sum.
 * - Between a word and the whitespace after it, and between whitespace other than a space and the
 *   word after it: GPT-2's pre-tokenizer (`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
 *   ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, in openai/gpt-2 src/encoder.py) only ever puts whitespace
 *   at the start of a piece, and only one space before a non-space, and BPE never merges across
 *   pieces. The word side must not be `\s` itself (a no-break space can share a piece with the
 *   whitespace beside it).
 * A lone surrogate counts as the three bytes of U+FFFD, which is what TextEncoder turns it into.
 */

/** What the bound needs from a vocabulary: its longest token and its longest runs. */
export interface TokenBoundLimits {
  readonly maxTokenBytes: number;
  /** longestRun[c], c < 128: the most consecutive bytes c in any one token (at least 1). */
  readonly longestRun: Uint8Array;
  /** longestClassRun[k]: the most consecutive bytes of class k (CharClass) in any one token. */
  readonly longestClassRun: Uint8Array;
}

/** Classes of characters whose runs are bounded; NONE (2-byte characters) is never counted. */
const NONE = 0;
const LETTER = 1;
const DIGIT = 2;
const OTHER_ASCII = 3;
const THREE_BYTE = 4;
const FOUR_BYTE = 5;
const CLASSES = 6;

/** The class of each ASCII code unit. */
const ASCII_CLASS = Uint8Array.from({ length: 128 }, (_, unit) => {
  if ((unit >= 0x41 && unit <= 0x5a) || (unit >= 0x61 && unit <= 0x7a)) return LETTER;
  return unit >= 0x30 && unit <= 0x39 ? DIGIT : OTHER_ASCII;
});

/** Whether a byte can be part of a character of class k in UTF-8. */
function byteInClass(byte: number, k: number): boolean {
  if (byte < 0x80) return ASCII_CLASS[byte] === k;
  if (byte < 0xc0) return k === THREE_BYTE || k === FOUR_BYTE; // continuation bytes
  if (byte >= 0xe0 && byte <= 0xef) return k === THREE_BYTE;
  return byte >= 0xf0 && byte <= 0xf7 && k === FOUR_BYTE;
}

/** Reads the limits off the vocabulary (the bytes of every token id), once at load time. */
export function tokenBoundLimits(tokens: readonly Uint8Array[]): TokenBoundLimits {
  const longestRun = new Uint8Array(128).fill(1);
  const longestClassRun = new Uint8Array(CLASSES).fill(1);
  let maxTokenBytes = 1;
  for (const bytes of tokens) {
    // A Uint8Array entry caps at 255: no token is that long (GPT-2's longest is 128 bytes).
    if (bytes.length > 255) throw new RangeError('a token longer than 255 bytes');
    maxTokenBytes = Math.max(maxTokenBytes, bytes.length);
    let run = 0;
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i]!;
      run = i > 0 && byte === bytes[i - 1] ? run + 1 : 1;
      if (byte < 128 && run > longestRun[byte]!) longestRun[byte] = run;
    }
    for (let k = LETTER; k < CLASSES; k++) {
      let classRun = 0;
      for (const byte of bytes) {
        classRun = byteInClass(byte, k) ? classRun + 1 : 0;
        if (classRun > longestClassRun[k]!) longestClassRun[k] = classRun;
      }
    }
  }
  return { maxTokenBytes, longestRun, longestClassRun };
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

/** The bound itself; see the module comment for why every counted cut is forced. */
export function tokenCountLowerBound(text: string, limits: TokenBoundLimits): number {
  if (text.length === 0) return 0;
  const { maxTokenBytes, longestRun, longestClassRun } = limits;
  let cuts = 0;
  // The stretch being scanned: a word (no ASCII whitespace) or a gap (ASCII whitespace only).
  let inWord = !isAsciiWhitespace(text.charCodeAt(0));
  let wordBytes = 0;
  // Cuts forced inside the stretch so far: by runs of one ASCII unit, by runs of one class.
  let runCuts = 0;
  let classCuts = 0;
  // The current run of one ASCII code unit (-1: the last unit was not ASCII).
  let runUnit = -1;
  let runLength = 0;
  // The current run of one class, in bytes.
  let runClass = NONE;
  let classBytes = 0;
  let previous = -1;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    const whitespace = isAsciiWhitespace(unit);
    // Byte width and class of the character at i (a surrogate pair is one 4-byte character).
    let width = 1;
    let unitClass = NONE;
    if (unit < 0x80) {
      if (!whitespace) unitClass = ASCII_CLASS[unit]!;
    } else if (unit < 0x800) width = 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      width = 4;
      unitClass = FOUR_BYTE;
    } else {
      width = 3; // includes a lone surrogate, encoded as U+FFFD
      unitClass = THREE_BYTE;
    }
    if (unit !== runUnit) {
      if (runLength > 1) runCuts += Math.ceil(runLength / longestRun[runUnit]!) - 1;
      runUnit = unit < 0x80 ? unit : -1;
      runLength = 0;
    }
    if (runUnit !== -1) runLength++;
    if (unitClass !== runClass) {
      if (runClass !== NONE) classCuts += Math.ceil(classBytes / longestClassRun[runClass]!) - 1;
      runClass = unitClass;
      classBytes = 0;
    }
    classBytes += width;
    if (whitespace === inWord) {
      // The stretch ends at i; the runs that just closed belonged to it.
      if (inWord) {
        cuts += Math.max(Math.ceil(wordBytes / maxTokenBytes) - 1, runCuts, classCuts);
        if (!isRegexWhitespace(previous)) cuts++; // word | whitespace
        wordBytes = 0;
      } else {
        cuts += runCuts;
        if (previous !== 0x20 && !isRegexWhitespace(unit)) cuts++; // \n etc. | word
      }
      runCuts = 0;
      classCuts = 0;
      inWord = !whitespace;
    }
    if (!whitespace) wordBytes += width;
    if (width === 4) i++; // the low surrogate is part of this character
    previous = unit; // a high surrogate stands for its pair: neither is whitespace
  }
  if (runLength > 1) runCuts += Math.ceil(runLength / longestRun[runUnit]!) - 1;
  if (runClass !== NONE) classCuts += Math.ceil(classBytes / longestClassRun[runClass]!) - 1;
  cuts += inWord ? Math.max(Math.ceil(wordBytes / maxTokenBytes) - 1, runCuts, classCuts) : runCuts;
  return 1 + cuts;
}
