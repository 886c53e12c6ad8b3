/**
 * POST /v1/completions, OpenAI's completions API over the same scheduler as /complete, and
 * POST /v1/chat/completions, a 404 that says where to go instead.
 *
 * The body is checked by src/openai/completion-request.ts (not by a fastify body schema) so that
 * every refusal names its parameter in OpenAI's `param`. Prompts are tokenized and fitted to the
 * context one by one, then submitted to the scheduler all together or not at all: a 429 or 503
 * comes before any work starts, so the SDKs' automatic retries never leave half a request running.
 */
import type { FastifyPluginAsync } from 'fastify';
import { type ErrorCode, GatewayError } from '../../contract/errors.js';
import type { GeneratedToken, GenerationOutcome } from '../../generation/generation.js';
import { GenerationCancelledError } from '../../generation/scheduler.js';
import {
  type CompletionRequest,
  DEFAULT_MAX_PROMPTS,
  fitContext,
  validateCompletionRequest,
} from '../../openai/completion-request.js';
import {
  buildCompletion,
  type ChoiceInput,
  CompletionStream,
  completionId,
  type EchoInput,
  echoOf,
  SSE_DONE,
  sseData,
} from '../../openai/completion-response.js';
import {
  chatCompletionsNotSupported,
  checkModel,
  fromGatewayError,
  OpenAIGatewayError,
} from '../../openai/errors.js';
import { openAICompletionSchema } from '../../openai/schemas.js';
import { recordError, toClientError } from '../error-handler.js';
import { refuseUnreadableJsonBody, TEXT_BODY_ERROR_CODES } from '../json-body.js';
import { requireReadyBackend } from '../readiness.js';
import { openAIErrorResponses } from '../schemas.js';
import { openSseStream } from '../sse.js';
import { type CompleteRouteOptions, GENERATION_FAILURE_CODES } from './complete.js';

export const OPENAI_COMPLETIONS_ERROR_CODES = [
  ...TEXT_BODY_ERROR_CODES,
  'CONTEXT_LENGTH_EXCEEDED',
  'MODEL_NOT_FOUND',
  ...GENERATION_FAILURE_CODES,
] as const satisfies readonly ErrorCode[];

export const OPENAI_CHAT_ERROR_CODES = [
  'UNAUTHORIZED',
  'NOT_FOUND',
] as const satisfies readonly ErrorCode[];

interface Prepared {
  readonly ids: readonly number[];
  readonly maxTokens: number;
  readonly tokenizeMs: number;
  readonly echo: EchoInput | undefined;
}

export const openAICompletionsRoutes: FastifyPluginAsync<CompleteRouteOptions> = async (
  app,
  opts,
) => {
  const { backend, scheduler, metrics, tokenizer, now } = opts;

  /** Tokenizes and fits every prompt, or throws the first refusal; nothing is queued yet. */
  const prepare = async (request: CompletionRequest): Promise<Prepared[]> => {
    const context = backend.description.contextLength;
    const count = request.prompts.length;
    const prepared: Prepared[] = [];
    // One prompt at a time: the first refusal ends the request before more work is done.
    for (const [index, prompt] of request.prompts.entries()) {
      const started = now();
      let ids: readonly number[];
      if (prompt.kind === 'tokens') ids = prompt.ids;
      else {
        // Refuse a prompt that certainly overflows before the BPE run (the costly part).
        const atLeast = tokenizer.minTokenCount(prompt.text);
        if (atLeast > context) {
          const which = count > 1 ? ` (prompt[${index}])` : '';
          throw new GatewayError(
            'CONTEXT_LENGTH_EXCEEDED',
            `the prompt${which} is at least ${atLeast} tokens, more than the model's context of ${context}; shorten the prompt`,
          );
        }
        ids = await tokenizer.encode(prompt.text);
      }
      const tokenizeMs = prompt.kind === 'tokens' ? 0 : now() - started;
      const fit = fitContext({
        promptTokens: ids.length,
        maxTokens: request.maxTokens,
        maxTokensDefaulted: request.maxTokensDefaulted,
        contextLength: context,
        promptIndex: index,
        promptCount: count,
      });
      if (!fit.ok) throw new OpenAIGatewayError('CONTEXT_LENGTH_EXCEEDED', fit.error);
      const echo = request.echo
        ? echoOf(ids, tokenizer.tokenizer.createStreamDecoder())
        : undefined;
      prepared.push({ ids, maxTokens: fit.maxTokens, tokenizeMs, echo });
    }
    return prepared;
  };

  app.post(
    '/v1/completions',
    {
      config: opts.rateLimit === undefined ? {} : { rateLimit: opts.rateLimit },
      preParsing: refuseUnreadableJsonBody,
      preHandler: requireReadyBackend(backend),
      schema: {
        response: {
          200: openAICompletionSchema,
          ...openAIErrorResponses(OPENAI_COMPLETIONS_ERROR_CODES),
        },
      },
    },
    async (request, reply) => {
      const d = backend.description;
      const checked = validateCompletionRequest(request.body, {
        maxTokensLimit: opts.maxNewTokensLimit,
        vocabSize: d.vocabSize,
        // More prompts than the scheduler can ever hold at once would be refused forever.
        maxPrompts: Math.min(DEFAULT_MAX_PROMPTS, scheduler.capacity),
        defaultMaxTokens: opts.defaultMaxNewTokens,
      });
      if (!checked.ok) throw new OpenAIGatewayError('INVALID_REQUEST', checked.error);
      const body = checked.request;
      const unknownModel = checkModel(body.model, [d.modelName]);
      if (unknownModel !== undefined) {
        throw new OpenAIGatewayError('MODEL_NOT_FOUND', unknownModel);
      }
      const prepared = await prepare(body);

      // A client that hangs up stops every generation of its request at the next step; so does
      // a failure of one of them (its answer is an error, the others' work would be lost anyway).
      const abort = new AbortController();
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) abort.abort();
      });
      const meta = {
        id: completionId(request.id),
        created: Math.floor(Date.now() / 1000),
        model: d.modelName,
        logprobs: body.logprobs,
      };
      const specs = prepared.map((p) => ({
        promptIds: p.ids,
        maxNewTokens: p.maxTokens,
        stop: body.stop,
        arrivalMs: request.arrivalMs,
      }));
      const choiceOf = (i: number, outcome: GenerationOutcome): ChoiceInput => {
        const p = prepared[i]!;
        return {
          outcome,
          promptTokens: p.ids.length,
          tokenizeMs: p.tokenizeMs,
          ...(p.echo === undefined ? {} : { echo: p.echo }),
        };
      };

      if (!body.stream) {
        // submitAll throws QUEUE_FULL or SHUTTING_DOWN before anything is queued.
        const pending = scheduler.submitAll(specs, abort.signal);
        let outcomes: GenerationOutcome[];
        try {
          outcomes = await Promise.all(pending);
        } catch (err) {
          abort.abort();
          throw err;
        }
        return buildCompletion(
          meta,
          outcomes.map((o, i) => choiceOf(i, o)),
        );
      }

      const chunks = new CompletionStream({ ...meta, includeUsage: body.includeUsage });
      let stream: ReturnType<typeof openSseStream> | undefined;
      const early: string[] = [];
      const write = (text: string) => (stream ? stream.write(text) : early.push(text));
      const withTokens = specs.map((spec, i) => ({
        ...spec,
        onToken: (token: GeneratedToken) => write(sseData(chunks.token(i, token))),
      }));
      const pending = scheduler.submitAll(withTokens, abort.signal);
      // Admitted: from here on the status is 200 and a failure travels as an error chunk.
      stream = openSseStream(reply);
      for (const [i, p] of prepared.entries()) {
        if (p.echo !== undefined) stream.write(sseData(chunks.echo(i, p.echo)));
      }
      for (const text of early) stream.write(text);
      const open = stream;
      let failed = false;
      const finished = pending.map((promise, i) =>
        promise.then((outcome) => {
          if (!failed) open.write(sseData(chunks.finish(i, choiceOf(i, outcome))));
        }),
      );
      Promise.all(finished).then(
        () => {
          const usage = chunks.usage();
          if (usage !== undefined) open.write(sseData(usage));
          open.write(SSE_DONE);
          open.end();
        },
        (err: unknown) => {
          failed = true;
          abort.abort();
          if (!(err instanceof GenerationCancelledError)) {
            // The same log line and metric as an error answered before the headers; openai-node
            // throws an APIError for a chunk that holds `error`.
            const error = toClientError(err);
            recordError(request.log, metrics, error, err);
            open.write(sseData(fromGatewayError(error).body));
          }
          open.end();
        },
      );
      return reply;
    },
  );

  app.post(
    '/v1/chat/completions',
    { schema: { response: openAIErrorResponses(OPENAI_CHAT_ERROR_CODES) } },
    async () => {
      throw new OpenAIGatewayError('NOT_FOUND', chatCompletionsNotSupported());
    },
  );
};
