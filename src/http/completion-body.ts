/**
 * The answer of /complete, which completionSchema, doneEventSchema and openapi.yaml describe: the
 * generation's outcome with the request's facts, its token, timings and usage in the wire's
 * spelling of src/generation/wire.ts (shared with /v1/completions).
 */
import type { GenerationOutcome } from '../generation/generation.js';
import { wireTimings, wireToken, wireUsage } from '../generation/wire.js';
import { completionId } from '../openai/completion-response.js';

export interface CompletionFacts {
  readonly requestId: string;
  readonly modelName: string;
  readonly promptTokens: number;
  readonly tokenizeMs: number;
}

export function completionBody(facts: CompletionFacts, outcome: GenerationOutcome) {
  return {
    // The same id as /v1/completions gives: the request id, traceable in the logs.
    id: completionId(facts.requestId),
    object: 'text_completion' as const,
    created: Math.floor(Date.now() / 1000),
    model: facts.modelName,
    text: outcome.text,
    finish_reason: outcome.finishReason,
    usage: wireUsage(facts.promptTokens, outcome.tokens.length),
    tokens: outcome.tokens.map(wireToken),
    timings: wireTimings(outcome, facts.tokenizeMs),
  };
}

export type CompletionBody = ReturnType<typeof completionBody>;
