/**
 * POST /complete: validate, tokenize, check the context, queue the generation, and answer with
 * JSON or Server-Sent Events (issue 3, point 5).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GenerationOutcome } from '../../generation/generation.js';
import { GenerationCancelledError } from '../../generation/scheduler.js';
import type { GatewayContext } from '../context.js';
import { toClientError } from '../error-handler.js';
import { GatewayError } from '../errors.js';
import { refuseUnreadableJsonBody } from '../json-body.js';
import {
  type CompleteBody,
  completeBodySchema,
  completionSchema,
  errorResponses,
} from '../schemas.js';
import { openEventStream } from '../sse.js';

const round = (ms: number) => Math.round(ms * 1000) / 1000;

export const COMPLETE_ERROR_CODES = [
  'INVALID_JSON',
  'INVALID_REQUEST',
  'INVALID_UTF8',
  'LONE_SURROGATE',
  'CONTEXT_LENGTH_EXCEEDED',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'RATE_LIMITED',
  'INTERNAL_ERROR',
  'BACKEND_ERROR',
  'BACKEND_BAD_RESPONSE',
  'QUEUE_FULL',
  'SHUTTING_DOWN',
  'BACKEND_UNAVAILABLE',
  'BACKEND_OVERLOADED',
  'BACKEND_NOT_READY',
  'BACKEND_TIMEOUT',
] as const;

export function completeRoute(ctx: GatewayContext, rateLimit: object | undefined) {
  const { config, backend, tokenizer, scheduler, now } = ctx;

  function completion(
    request: FastifyRequest,
    promptTokens: number,
    tokenizeMs: number,
    outcome: GenerationOutcome,
  ) {
    const n = outcome.tokens.length;
    const t = outcome.timings;
    return {
      id: `cmpl-${request.id}`,
      object: 'text_completion' as const,
      created: Math.floor(Date.now() / 1000),
      model: backend.description.modelName,
      text: outcome.text,
      finish_reason: outcome.finishReason,
      usage: { prompt_tokens: promptTokens, completion_tokens: n, total_tokens: promptTokens + n },
      tokens: outcome.tokens,
      timings: {
        tokenize_ms: round(tokenizeMs),
        queue_ms: t.queue_ms,
        time_to_first_token_ms: t.time_to_first_token_ms,
        // Mean gap between tokens after the first (TGI's x-time-per-token includes prefill).
        time_per_output_token_ms:
          n > 1 ? round((t.total_ms - t.time_to_first_token_ms) / (n - 1)) : null,
        backend_ms: t.backend_ms,
        total_ms: t.total_ms,
        tokens_per_second: t.total_ms > 0 ? round((n * 1000) / t.total_ms) : 0,
      },
    };
  }

  return async function register(app: FastifyInstance): Promise<void> {
    app.post<{ Body: CompleteBody }>(
      '/complete',
      {
        config: rateLimit === undefined ? {} : { rateLimit },
        preParsing: refuseUnreadableJsonBody,
        schema: {
          body: completeBodySchema(config.maxNewTokensLimit),
          response: { 200: completionSchema, ...errorResponses(COMPLETE_ERROR_CODES) },
        },
      },
      async (request, reply) => {
        const readiness = backend.readiness();
        if (!readiness.ready) {
          throw new GatewayError(
            'BACKEND_NOT_READY',
            `the model is not ready (${readiness.reason ?? 'starting'}); retry later`,
            { retryAfterSeconds: 1 },
          );
        }
        const body = request.body;
        const context = backend.description.contextLength;
        // Refuse a prompt that certainly overflows before the BPE run, the costly part for huge
        // prompts (1.8 s for one 250 KB word); near the limit the exact count below decides.
        const atLeast = tokenizer.minTokenCount(body.prompt);
        if (atLeast > context) {
          throw new GatewayError(
            'CONTEXT_LENGTH_EXCEEDED',
            `the prompt is at least ${atLeast} tokens, more than the model's context of ${context}; shorten the prompt`,
          );
        }
        const promptIds = tokenizer.encode(body.prompt);
        // An omitted max_new_tokens is a default, not a demand: it shrinks to fit the context.
        const maxNewTokens =
          body.max_new_tokens ??
          Math.max(1, Math.min(config.defaultMaxNewTokens, context - promptIds.length));
        if (body.max_new_tokens === undefined && promptIds.length >= context) {
          // The client sent no max_new_tokens: telling it to lower one would be no help.
          throw new GatewayError(
            'CONTEXT_LENGTH_EXCEEDED',
            `the prompt is ${promptIds.length} tokens, which leaves no room for a new token in ` +
              `the model's context of ${context}; shorten the prompt`,
          );
        }
        if (promptIds.length + maxNewTokens > context) {
          throw new GatewayError(
            'CONTEXT_LENGTH_EXCEEDED',
            `the prompt is ${promptIds.length} tokens and max_new_tokens is ${maxNewTokens}: ` +
              `${promptIds.length + maxNewTokens} tokens exceed the model's context of ${context}; ` +
              'shorten the prompt or lower max_new_tokens',
          );
        }
        const stop =
          body.stop === undefined ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
        const tokenizeMs = now() - request.arrivalMs;

        // A client that hangs up stops its generation at the next step (issue 3, point 8).
        const abort = new AbortController();
        reply.raw.on('close', () => {
          if (!reply.raw.writableFinished) abort.abort();
        });

        if (body.stream === true) {
          let events: ReturnType<typeof openEventStream> | undefined;
          const pending: Parameters<ReturnType<typeof openEventStream>['send']>[1][] = [];
          const done = scheduler.submit(
            {
              promptIds,
              maxNewTokens,
              stop,
              arrivalMs: request.arrivalMs,
              onToken: (token) => (events ? events.send('token', token) : pending.push(token)),
            },
            abort.signal,
          );
          // Admitted: from here on the status is 200 and failures travel as an `error` event.
          events = openEventStream(reply);
          for (const token of pending) events.send('token', token);
          done.then(
            (outcome) => {
              const { tokens: _streamed, ...totals } = completion(
                request,
                promptIds.length,
                tokenizeMs,
                outcome,
              );
              events.send('done', totals);
              events.end();
            },
            (err: unknown) => {
              if (!(err instanceof GenerationCancelledError)) {
                const error = toClientError(err);
                request.log.error({ err }, 'generation failed mid-stream');
                events.send('error', error.body());
              }
              events.end();
            },
          );
          return reply;
        }

        const outcome = await scheduler.submit(
          { promptIds, maxNewTokens, stop, arrivalMs: request.arrivalMs },
          abort.signal,
        );
        const body200 = completion(request, promptIds.length, tokenizeMs, outcome);
        setTimingHeaders(reply, body200.timings, promptIds.length, outcome.tokens.length);
        return body200;
      },
    );
  };
}

/** TGI's timing headers (peer-survey 1b), all integer milliseconds, on non-streamed answers. */
function setTimingHeaders(
  reply: FastifyReply,
  t: {
    tokenize_ms: number;
    queue_ms: number;
    total_ms: number;
    time_per_output_token_ms: number | null;
  },
  promptTokens: number,
  generatedTokens: number,
): void {
  const inference = t.total_ms - t.tokenize_ms - t.queue_ms;
  reply
    .header('x-total-time', Math.round(t.total_ms))
    .header('x-validation-time', Math.round(t.tokenize_ms))
    .header('x-queue-time', Math.round(t.queue_ms))
    .header('x-inference-time', Math.round(inference))
    .header('x-time-per-token', Math.round(generatedTokens > 0 ? inference / generatedTokens : 0))
    .header('x-prompt-tokens', promptTokens)
    .header('x-generated-tokens', generatedTokens);
}
