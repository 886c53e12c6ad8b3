/**
 * A generation's results as the routes write them: the camelCase objects of generation.ts turned
 * into the wire's snake_case token, timings and usage, with their JSON schemas. /complete sends
 * them as `tokens`, `timings` and `usage`; /v1/completions as the `gateway_` fields of its choices
 * and OpenAI's `usage`. One mapping, so a client of both routes reads one set of definitions.
 */
import { type GeneratedToken, type GenerationOutcome, roundMs } from './generation.js';

export interface WireToken {
  index: number;
  id: number;
  text: string;
  logprob: number;
  backend_step_ms: number;
  since_previous_ms: number;
}

export interface WireTimings {
  tokenize_ms: number;
  queue_ms: number;
  time_to_first_token_ms: number;
  time_per_output_token_ms: number | null;
  backend_ms: number;
  total_ms: number;
  tokens_per_second: number;
}

export interface WireUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function wireToken(token: GeneratedToken): WireToken {
  return {
    index: token.index,
    id: token.id,
    text: token.text,
    logprob: token.logprob,
    backend_step_ms: token.backendStepMs,
    since_previous_ms: token.sincePreviousMs,
  };
}

/** The generation's totals; tokenizeMs is the prompt's tokenization, which came before it. */
export function wireTimings(
  outcome: Pick<GenerationOutcome, 'tokens' | 'timings'>,
  tokenizeMs: number,
): WireTimings {
  const n = outcome.tokens.length;
  const t = outcome.timings;
  return {
    tokenize_ms: roundMs(tokenizeMs),
    queue_ms: t.queueMs,
    time_to_first_token_ms: t.timeToFirstTokenMs,
    // Mean gap between tokens after the first (TGI's x-time-per-token includes prefill).
    time_per_output_token_ms: n > 1 ? roundMs((t.totalMs - t.timeToFirstTokenMs) / (n - 1)) : null,
    backend_ms: t.backendMs,
    total_ms: t.totalMs,
    tokens_per_second: t.totalMs > 0 ? roundMs((n * 1000) / t.totalMs) : 0,
  };
}

export function wireUsage(promptTokens: number, completionTokens: number): WireUsage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

export const wireTokenSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['index', 'id', 'text', 'logprob', 'backend_step_ms', 'since_previous_ms'],
  properties: {
    index: { type: 'integer' },
    id: { type: 'integer' },
    text: { type: 'string' },
    logprob: { type: 'number' },
    backend_step_ms: { type: 'number' },
    since_previous_ms: { type: 'number' },
  },
} as const;

export const wireTimingsSchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'tokenize_ms',
    'queue_ms',
    'time_to_first_token_ms',
    'time_per_output_token_ms',
    'backend_ms',
    'total_ms',
    'tokens_per_second',
  ],
  properties: {
    tokenize_ms: { type: 'number' },
    queue_ms: { type: 'number' },
    time_to_first_token_ms: { type: 'number' },
    time_per_output_token_ms: { type: ['number', 'null'] },
    backend_ms: { type: 'number' },
    total_ms: { type: 'number' },
    tokens_per_second: { type: 'number' },
  },
} as const;

export const wireUsageSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['prompt_tokens', 'completion_tokens', 'total_tokens'],
  properties: {
    prompt_tokens: { type: 'integer' },
    completion_tokens: { type: 'integer' },
    total_tokens: { type: 'integer' },
  },
} as const;
