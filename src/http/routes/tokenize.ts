/** POST /tokenize: the ids and per-token text GPT-2's BPE gives a string (like TGI's /tokenize). */
import type { FastifyPluginAsync } from 'fastify';
import type { ErrorCode } from '../../contract/errors.js';
import type { PromptTokenizer } from '../../tokenizer/prompt-tokenizer.js';
import { refuseUnreadableJsonBody, TEXT_BODY_ERROR_CODES } from '../json-body.js';
import {
  errorResponses,
  type TokenizeBody,
  tokenizeBodySchema,
  tokenizeResponseSchema,
} from '../schemas.js';

export const TOKENIZE_ERROR_CODES = [
  ...TEXT_BODY_ERROR_CODES,
  // The tokenizer pool's own refusals (prompt-tokenizer.ts), and anything unforeseen.
  'INTERNAL_ERROR',
  'QUEUE_FULL',
  'SHUTTING_DOWN',
] as const satisfies readonly ErrorCode[];

export interface TokenizeRouteOptions {
  readonly tokenizer: PromptTokenizer;
  /** @fastify/rate-limit's per-route options; absent: no limit. */
  readonly rateLimit: object | undefined;
}

export const tokenizeRoute: FastifyPluginAsync<TokenizeRouteOptions> = async (app, opts) => {
  const { tokenizer } = opts;
  app.post<{ Body: TokenizeBody }>(
    '/tokenize',
    {
      config: opts.rateLimit === undefined ? {} : { rateLimit: opts.rateLimit },
      preParsing: refuseUnreadableJsonBody,
      schema: {
        body: tokenizeBodySchema,
        response: { 200: tokenizeResponseSchema, ...errorResponses(TOKENIZE_ERROR_CODES) },
      },
    },
    async (request) => {
      // Encoded in a worker when long: a 64 KiB body is ~0.5 s of BPE.
      const ids = await tokenizer.encode(request.body.text);
      return {
        ids,
        tokens: ids.map((id) => ({ id, text: tokenizer.tokenText(id) })),
        count: ids.length,
      };
    },
  );
};
