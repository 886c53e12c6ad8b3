/**
 * The answer of POST /v1/completions in OpenAI's shapes, built from the gateway's generation
 * results: the non-streamed `text_completion` object and the stream's chunks (openai-node
 * src/resources/completions.ts: Completion, CompletionChoice, CompletionUsage; both share one
 * shape). Pure functions over the generation's results; the token, timings and usage objects
 * are /complete's, mapped once in src/generation/wire.ts.
 *
 * The gateway's timings ride along as extra fields whose names start with `gateway_`: OpenAI's
 * SDKs keep unknown fields of a choice and never fail on them, and the prefix keeps them clear
 * of any field OpenAI may add later.
 * - non-streamed: `choices[i].gateway_timings` (the generation's totals) and
 *   `choices[i].gateway_tokens` (each token's id and timings, in order);
 * - streamed: each token's chunk carries `choices[0].gateway_token`, the chunk that ends a
 *   choice carries `choices[0].gateway_timings`.
 */
import type { FinishReason, GeneratedToken, GenerationOutcome } from '../generation/generation.js';
import {
  type WireTimings,
  type WireToken,
  type WireUsage,
  wireTimings,
  wireToken,
  wireUsage,
} from '../generation/wire.js';

export type OpenAIFinishReason = 'stop' | 'length';

/** A generated token, with the alternatives a backend may one day give. */
export interface TokenInput extends GeneratedToken {
  /**
   * Most likely alternatives at this position, where the backend's variant gives logits. Absent
   * today: backends return the chosen token's logprob only.
   */
  readonly topLogprobs?: readonly { readonly text: string; readonly logprob: number }[];
}

export interface OutcomeInput extends Omit<GenerationOutcome, 'tokens'> {
  readonly tokens: readonly TokenInput[];
}

/** The prompt, for `echo`: its text and its tokens (whose texts join to it). */
export interface EchoInput {
  readonly text: string;
  readonly tokens: readonly {
    readonly text: string;
    /** Only where the backend gave logits for every position; the first is always null. */
    readonly logprob?: number | null;
  }[];
}

/** Incremental detokenizer, as the tokenizer's StreamDecoder offers it. */
export interface TokenTextDecoder {
  push(id: number): string;
  flush(): string;
}

/**
 * The echo of a prompt given as ids: each token's released text (a character split across tokens
 * comes with the token that completes it), so the texts join to the echoed text exactly.
 */
export function echoOf(ids: readonly number[], decoder: TokenTextDecoder): EchoInput {
  const tokens = ids.map((id) => ({ text: decoder.push(id) }));
  const tail = decoder.flush();
  const last = tokens.at(-1);
  if (last !== undefined && tail !== '') last.text += tail;
  return { text: tokens.map((t) => t.text).join(''), tokens };
}

export interface ChoiceInput {
  readonly outcome: OutcomeInput;
  readonly promptTokens: number;
  /** Present when the request asked for echo. */
  readonly echo?: EchoInput;
  /** Tokenizing this choice's prompt; 0 for token-id prompts. */
  readonly tokenizeMs?: number;
}

export interface CompletionMeta {
  /** `cmpl-…`, see completionId. */
  readonly id: string;
  /** Unix seconds. */
  readonly created: number;
  readonly model: string;
  /** The request's `logprobs` (null: none). */
  readonly logprobs: number | null;
}

/** OpenAI's legacy logprobs object; text_offset counts characters (code points) into `text`. */
export interface Logprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[] | null;
  text_offset: number[];
}

/** A token's wire fields less its text and logprob, which OpenAI's own fields carry. */
export type GatewayToken = Omit<WireToken, 'text' | 'logprob'>;

export interface CompletionChoice {
  index: number;
  text: string;
  logprobs: Logprobs | null;
  finish_reason: OpenAIFinishReason;
  gateway_timings: WireTimings;
  gateway_tokens: GatewayToken[];
}

export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: CompletionChoice[];
  usage: WireUsage;
}

export interface ChunkChoice {
  index: number;
  text: string;
  logprobs: Logprobs | null;
  finish_reason: OpenAIFinishReason | null;
  gateway_token?: GatewayToken;
  gateway_timings?: WireTimings;
}

export interface CompletionChunk {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: ChunkChoice[];
  /** Only with stream_options.include_usage: null on every chunk but the last. */
  usage?: WireUsage | null;
}

/** OpenAI's ids start with `cmpl-`; the request id keeps it traceable in the logs. */
export function completionId(requestId: string): string {
  return `cmpl-${requestId}`;
}

/** EOS and a stop string both mean the model stopped by itself: OpenAI's "stop". */
export function toOpenAIFinishReason(reason: FinishReason): OpenAIFinishReason {
  return reason === 'length' ? 'length' : 'stop';
}

/** Same totals as /complete's `timings`, so one client sees one set of definitions. */
const gatewayTimings = (choice: ChoiceInput): WireTimings =>
  wireTimings(choice.outcome, choice.tokenizeMs ?? 0);

function gatewayToken(token: TokenInput): GatewayToken {
  const { text: _text, logprob: _logprob, ...rest } = wireToken(token);
  return rest;
}

/** Python's len(), which OpenAI's offsets count in; JS's length counts UTF-16 units. */
const codePoints = (text: string): number => {
  let n = 0;
  for (const _ of text) n++;
  return n;
};

/**
 * top_logprobs for one position. Without the backend's alternatives only the chosen token can be
 * listed: backends return the chosen token's logprob, not the full distribution, so `logprobs: 5`
 * gives one entry rather than an invented five.
 */
function topEntry(token: TokenInput, k: number): Record<string, number> {
  const entry: Record<string, number> = {};
  for (const alt of token.topLogprobs?.slice(0, k) ?? []) entry[alt.text] = alt.logprob;
  entry[token.text] = token.logprob;
  return entry;
}

/** Accumulates logprobs position by position, keeping text_offset running across calls. */
class LogprobsWriter {
  offset: number;
  constructor(
    readonly k: number,
    startOffset = 0,
  ) {
    this.offset = startOffset;
  }

  empty(): Logprobs {
    return {
      tokens: [],
      token_logprobs: [],
      top_logprobs: this.k > 0 ? [] : null,
      text_offset: [],
    };
  }

  echo(into: Logprobs, echo: EchoInput): void {
    for (const [i, t] of echo.tokens.entries()) {
      // The first prompt token has no context to be predicted from: OpenAI gives null.
      const lp = i === 0 ? null : (t.logprob ?? null);
      into.tokens.push(t.text);
      into.token_logprobs.push(lp);
      into.top_logprobs?.push(lp === null ? null : { [t.text]: lp });
      into.text_offset.push(this.offset);
      this.offset += codePoints(t.text);
    }
  }

  token(into: Logprobs, token: TokenInput): void {
    into.tokens.push(token.text);
    into.token_logprobs.push(token.logprob);
    into.top_logprobs?.push(topEntry(token, this.k));
    into.text_offset.push(this.offset);
    this.offset += codePoints(token.text);
  }
}

function usageOf(choices: readonly ChoiceInput[]): WireUsage {
  let prompt = 0;
  let completion = 0;
  for (const c of choices) {
    prompt += c.promptTokens;
    completion += c.outcome.tokens.length;
  }
  return wireUsage(prompt, completion);
}

/**
 * The non-streamed answer. Choice i answers prompt i. With echo the prompt's text comes first in
 * `text` (and its tokens first in logprobs). Usage sums every prompt and completion, as OpenAI's.
 */
export function buildCompletion(meta: CompletionMeta, choices: readonly ChoiceInput[]): Completion {
  return {
    id: meta.id,
    object: 'text_completion',
    created: meta.created,
    model: meta.model,
    choices: choices.map((c, index) => {
      let logprobs: Logprobs | null = null;
      if (meta.logprobs !== null) {
        const writer = new LogprobsWriter(meta.logprobs);
        logprobs = writer.empty();
        if (c.echo !== undefined) writer.echo(logprobs, c.echo);
        for (const token of c.outcome.tokens) writer.token(logprobs, token);
      }
      return {
        index,
        text: (c.echo?.text ?? '') + c.outcome.text,
        logprobs,
        finish_reason: toOpenAIFinishReason(c.outcome.finishReason),
        gateway_timings: gatewayTimings(c),
        gateway_tokens: c.outcome.tokens.map(gatewayToken),
      };
    }),
    usage: usageOf(choices),
  };
}

export interface StreamOptions extends CompletionMeta {
  readonly includeUsage: boolean;
}

/**
 * Builds the chunks of one streamed answer, in the order the route sends them. Per choice:
 * echo() first when the request asked for it, token() for every token, finish() once; then
 * usage() (a chunk only with include_usage) and DONE. Chunks of different choices may interleave;
 * each carries its choice's index. It keeps each choice's running text offset and the usage.
 */
export class CompletionStream {
  readonly #meta: StreamOptions;
  readonly #writers = new Map<number, LogprobsWriter>();
  readonly #finished: ChoiceInput[] = [];

  constructor(meta: StreamOptions) {
    this.#meta = meta;
  }

  #writer(index: number): LogprobsWriter | undefined {
    if (this.#meta.logprobs === null) return undefined;
    let writer = this.#writers.get(index);
    if (writer === undefined) {
      writer = new LogprobsWriter(this.#meta.logprobs);
      this.#writers.set(index, writer);
    }
    return writer;
  }

  #chunk(choice: ChunkChoice): CompletionChunk {
    const chunk: CompletionChunk = {
      id: this.#meta.id,
      object: 'text_completion',
      created: this.#meta.created,
      model: this.#meta.model,
      choices: [choice],
    };
    if (this.#meta.includeUsage) chunk.usage = null;
    return chunk;
  }

  /** A chunk's logprobs as `fill` writes them with the choice's writer; null without logprobs. */
  #logprobs(
    index: number,
    fill: (writer: LogprobsWriter, into: Logprobs) => void,
  ): Logprobs | null {
    const writer = this.#writer(index);
    if (writer === undefined) return null;
    const logprobs = writer.empty();
    fill(writer, logprobs);
    return logprobs;
  }

  /** The prompt's text (and, with logprobs, its tokens) as the choice's first chunk. */
  echo(index: number, echo: EchoInput): CompletionChunk {
    const logprobs = this.#logprobs(index, (writer, into) => writer.echo(into, echo));
    return this.#chunk({ index, text: echo.text, logprobs, finish_reason: null });
  }

  /** One token's text; a token that released no text still gets its chunk (its timings). */
  token(index: number, token: TokenInput): CompletionChunk {
    const logprobs = this.#logprobs(index, (writer, into) => writer.token(into, token));
    return this.#chunk({
      index,
      text: token.text,
      logprobs,
      finish_reason: null,
      gateway_token: gatewayToken(token),
    });
  }

  /**
   * The choice's last chunk: no text (every token went out in its own chunk), its finish_reason
   * and the generation's totals.
   */
  finish(index: number, choice: ChoiceInput): CompletionChunk {
    this.#finished.push(choice);
    return this.#chunk({
      index,
      text: '',
      logprobs: null,
      finish_reason: toOpenAIFinishReason(choice.outcome.finishReason),
      gateway_timings: gatewayTimings(choice),
    });
  }

  /** With include_usage, the last chunk: no choices, the usage of every finished choice. */
  usage(): CompletionChunk | undefined {
    if (!this.#meta.includeUsage) return undefined;
    return {
      id: this.#meta.id,
      object: 'text_completion',
      created: this.#meta.created,
      model: this.#meta.model,
      choices: [],
      usage: usageOf(this.#finished),
    };
  }
}

/**
 * One data-only SSE event, as OpenAI streams (no `event:` line: openai-node's Stream parses
 * events without a name as chunks, and throws an APIError for a chunk holding `error`).
 */
export function sseData(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

/** The stream's end marker; the SDK stops reading at it. */
export const SSE_DONE = 'data: [DONE]\n\n';
