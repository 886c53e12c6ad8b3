/**
 * The completion as the client reads it: the domain objects of src/generation/ (camelCase) turned
 * into the wire's snake_case fields, which completionSchema, tokenEventSchema and openapi.yaml
 * describe. The one place where the two spellings meet.
 */
import type { GeneratedToken, GenerationOutcome } from '../generation/generation.js';

const round = (ms: number) => Math.round(ms * 1000) / 1000;

export function wireToken(token: GeneratedToken) {
  return {
    index: token.index,
    id: token.id,
    text: token.text,
    logprob: token.logprob,
    backend_step_ms: token.backendStepMs,
    since_previous_ms: token.sincePreviousMs,
  };
}

export interface CompletionFacts {
  readonly requestId: string;
  readonly modelName: string;
  readonly promptTokens: number;
  readonly tokenizeMs: number;
}

export function completionBody(facts: CompletionFacts, outcome: GenerationOutcome) {
  const n = outcome.tokens.length;
  const t = outcome.timings;
  return {
    id: `cmpl-${facts.requestId}`,
    object: 'text_completion' as const,
    created: Math.floor(Date.now() / 1000),
    model: facts.modelName,
    text: outcome.text,
    finish_reason: outcome.finishReason,
    usage: {
      prompt_tokens: facts.promptTokens,
      completion_tokens: n,
      total_tokens: facts.promptTokens + n,
    },
    tokens: outcome.tokens.map(wireToken),
    timings: {
      tokenize_ms: round(facts.tokenizeMs),
      queue_ms: t.queueMs,
      time_to_first_token_ms: t.timeToFirstTokenMs,
      // Mean gap between tokens after the first (TGI's x-time-per-token includes prefill).
      time_per_output_token_ms: n > 1 ? round((t.totalMs - t.timeToFirstTokenMs) / (n - 1)) : null,
      backend_ms: t.backendMs,
      total_ms: t.totalMs,
      tokens_per_second: t.totalMs > 0 ? round((n * 1000) / t.totalMs) : 0,
    },
  };
}

export type CompletionBody = ReturnType<typeof completionBody>;
