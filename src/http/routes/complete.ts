/**
 * POST /complete: validate, admit (context length, stop list), queue the generation, and answer
 * with JSON or Server-Sent Events.
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Backend } from '../../backends/backend.js';
import type { ErrorCode } from '../../contract/errors.js';
import { admitCompletion } from '../../generation/admission.js';
import type { GeneratedToken } from '../../generation/generation.js';
import { GenerationCancelledError, type Scheduler } from '../../generation/scheduler.js';
import { wireToken } from '../../generation/wire.js';
import type { GatewayMetrics } from '../../metrics/metrics.js';
import type { PromptTokenizer } from '../../tokenizer/prompt-tokenizer.js';
import { type CompletionBody, completionBody } from '../completion-body.js';
import { recordError, toClientError } from '../error-handler.js';
import { refuseUnreadableJsonBody, TEXT_BODY_ERROR_CODES } from '../json-body.js';
import { requireReadyBackend } from '../readiness.js';
import {
  type CompleteBody,
  completeBodySchema,
  completionSchema,
  errorResponses,
} from '../schemas.js';
import { openEventStream } from '../sse.js';

/** Every route that generates can fail these ways: the queue, shutdown, and the backend. */
export const GENERATION_FAILURE_CODES = [
  'INTERNAL_ERROR',
  'BACKEND_ERROR',
  'BACKEND_BAD_RESPONSE',
  'QUEUE_FULL',
  'SHUTTING_DOWN',
  'BACKEND_UNAVAILABLE',
  'BACKEND_OVERLOADED',
  'BACKEND_NOT_READY',
  'BACKEND_TIMEOUT',
] as const satisfies readonly ErrorCode[];

export const COMPLETE_ERROR_CODES = [
  ...TEXT_BODY_ERROR_CODES,
  'CONTEXT_LENGTH_EXCEEDED',
  ...GENERATION_FAILURE_CODES,
] as const satisfies readonly ErrorCode[];

/** What /complete and /v1/completions both need: they are two wire formats over one scheduler. */
export interface CompleteRouteOptions {
  readonly backend: Backend;
  readonly tokenizer: PromptTokenizer;
  readonly scheduler: Scheduler;
  readonly metrics: GatewayMetrics;
  readonly maxNewTokensLimit: number;
  readonly defaultMaxNewTokens: number;
  /** @fastify/rate-limit's per-route options; absent: no limit. */
  readonly rateLimit: object | undefined;
  /** performance.now(), injectable for tests. */
  readonly now: () => number;
}

export const completeRoutes: FastifyPluginAsync<CompleteRouteOptions> = async (app, opts) => {
  const { backend, scheduler, metrics, now } = opts;
  app.post<{ Body: CompleteBody }>(
    '/complete',
    {
      config: opts.rateLimit === undefined ? {} : { rateLimit: opts.rateLimit },
      preParsing: refuseUnreadableJsonBody,
      preHandler: requireReadyBackend(backend),
      schema: {
        body: completeBodySchema(opts.maxNewTokensLimit),
        response: { 200: completionSchema, ...errorResponses(COMPLETE_ERROR_CODES) },
      },
    },
    async (request, reply) => {
      const { body } = request;
      const { promptIds, maxNewTokens, stop } = await admitCompletion(
        { prompt: body.prompt, maxNewTokens: body.max_new_tokens, stop: body.stop },
        {
          contextLength: backend.description.contextLength,
          defaultMaxNewTokens: opts.defaultMaxNewTokens,
        },
        opts.tokenizer,
      );
      const facts = {
        requestId: request.id,
        modelName: backend.description.modelName,
        promptTokens: promptIds.length,
        tokenizeMs: now() - request.arrivalMs,
      };
      // A client that hangs up stops its generation at the next step.
      const abort = new AbortController();
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) abort.abort();
      });
      const spec = { promptIds, maxNewTokens, stop, arrivalMs: request.arrivalMs };

      if (body.stream !== true) {
        const outcome = await scheduler.submit(spec, abort.signal);
        const answer = completionBody(facts, outcome);
        setTimingHeaders(reply, answer, outcome.tokens.length);
        return answer;
      }

      let events: ReturnType<typeof openEventStream> | undefined;
      const pending: GeneratedToken[] = [];
      const onToken = (token: GeneratedToken) =>
        events ? events.send('token', wireToken(token)) : pending.push(token);
      // submit() throws QUEUE_FULL or SHUTTING_DOWN before any header is sent.
      const done = scheduler.submit({ ...spec, onToken }, abort.signal);
      // Admitted: from here on the status is 200 and failures travel as an `error` event.
      events = openEventStream(reply);
      for (const token of pending) events.send('token', wireToken(token));
      done.then(
        (outcome) => {
          const { tokens: _streamed, ...totals } = completionBody(facts, outcome);
          events.send('done', totals);
          events.end();
        },
        (err: unknown) => {
          if (!(err instanceof GenerationCancelledError)) {
            // The same log line and metric as an error answered before the headers.
            const error = toClientError(err);
            recordError(request.log, metrics, error, err);
            events.send('error', error.body());
          }
          events.end();
        },
      );
      return reply;
    },
  );
};

/** TGI's timing headers, all integer milliseconds, on non-streamed answers. */
function setTimingHeaders(reply: FastifyReply, body: CompletionBody, generated: number): void {
  const t = body.timings;
  const inference = t.total_ms - t.tokenize_ms - t.queue_ms;
  reply
    .header('x-total-time', Math.round(t.total_ms))
    .header('x-validation-time', Math.round(t.tokenize_ms))
    .header('x-queue-time', Math.round(t.queue_ms))
    .header('x-inference-time', Math.round(inference))
    .header('x-time-per-token', Math.round(generated > 0 ? inference / generated : 0))
    .header('x-prompt-tokens', body.usage.prompt_tokens)
    .header('x-generated-tokens', generated);
}
