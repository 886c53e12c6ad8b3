/**
 * Admission of one completion request, before it queues: the prompt must leave room in the
 * model's context for the tokens asked for (never truncated), an omitted max_new_tokens shrinks
 * to fit, and `stop` becomes a list. Pure apart from the tokenizer it is given: the same request,
 * limits and tokenizer give the same answer or the same CONTEXT_LENGTH_EXCEEDED error. Encoding
 * may be asynchronous (a large prompt is encoded in a worker, off the event loop).
 */
import { GatewayError } from '../contract/errors.js';

export interface AdmissionRequest {
  readonly prompt: string;
  /** As the client sent it; undefined means "the default, as far as the context allows". */
  readonly maxNewTokens: number | undefined;
  readonly stop: string | readonly string[] | undefined;
}

export interface AdmissionLimits {
  /** Longest sequence (prompt + generated) the model accepts. */
  readonly contextLength: number;
  readonly defaultMaxNewTokens: number;
}

/** The two tokenizer calls admission needs. */
export interface AdmissionTokenizer {
  /** A lower bound of encode(text).length, far cheaper than encoding. */
  minTokenCount(text: string): number;
  encode(text: string): number[] | Promise<number[]>;
}

export interface Admitted {
  readonly promptIds: readonly number[];
  readonly maxNewTokens: number;
  readonly stop: readonly string[];
}

export async function admitCompletion(
  request: AdmissionRequest,
  limits: AdmissionLimits,
  tokenizer: AdmissionTokenizer,
): Promise<Admitted> {
  const context = limits.contextLength;
  // Refuse a prompt that certainly overflows before the BPE run, the costly part for huge
  // prompts (1.8 s for one 250 KB word); near the limit the exact count below decides.
  const atLeast = tokenizer.minTokenCount(request.prompt);
  if (atLeast > context) {
    throw new GatewayError(
      'CONTEXT_LENGTH_EXCEEDED',
      `the prompt is at least ${atLeast} tokens, more than the model's context of ${context}; shorten the prompt`,
    );
  }
  const promptIds = await tokenizer.encode(request.prompt);
  const n = promptIds.length;
  if (request.maxNewTokens === undefined && n >= context) {
    // The client sent no max_new_tokens: telling it to lower one would be no help.
    throw new GatewayError(
      'CONTEXT_LENGTH_EXCEEDED',
      `the prompt is ${n} tokens, which leaves no room for a new token in ` +
        `the model's context of ${context}; shorten the prompt`,
    );
  }
  // An omitted max_new_tokens is a default, not a demand: it shrinks to fit the context.
  const maxNewTokens =
    request.maxNewTokens ?? Math.max(1, Math.min(limits.defaultMaxNewTokens, context - n));
  if (n + maxNewTokens > context) {
    throw new GatewayError(
      'CONTEXT_LENGTH_EXCEEDED',
      `the prompt is ${n} tokens and max_new_tokens is ${maxNewTokens}: ` +
        `${n + maxNewTokens} tokens exceed the model's context of ${context}; ` +
        'shorten the prompt or lower max_new_tokens',
    );
  }
  const stop =
    request.stop === undefined
      ? []
      : typeof request.stop === 'string'
        ? [request.stop]
        : request.stop;
  return { promptIds, maxNewTokens, stop };
}
