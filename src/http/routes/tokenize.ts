/** POST /tokenize: the ids and per-token text GPT-2's BPE gives a string (like TGI's /tokenize). */
import type { FastifyInstance } from 'fastify';
import type { GatewayContext } from '../context.js';
import { refuseUnreadableJsonBody } from '../json-body.js';
import {
  errorResponses,
  type TokenizeBody,
  tokenizeBodySchema,
  tokenizeResponseSchema,
} from '../schemas.js';

export const TOKENIZE_ERROR_CODES = [
  'INVALID_JSON',
  'INVALID_REQUEST',
  'INVALID_UTF8',
  'LONE_SURROGATE',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'RATE_LIMITED',
  'INTERNAL_ERROR',
] as const;

export function tokenizeRoute(ctx: GatewayContext, rateLimit: object | undefined) {
  return async function register(app: FastifyInstance): Promise<void> {
    app.post<{ Body: TokenizeBody }>(
      '/tokenize',
      {
        config: rateLimit === undefined ? {} : { rateLimit },
        preParsing: refuseUnreadableJsonBody,
        schema: {
          body: tokenizeBodySchema,
          response: { 200: tokenizeResponseSchema, ...errorResponses(TOKENIZE_ERROR_CODES) },
        },
      },
      async (request) => {
        const ids = ctx.tokenizer.encode(request.body.text);
        return {
          ids,
          tokens: ids.map((id) => ({ id, text: ctx.tokenizer.tokenText(id) })),
          count: ids.length,
        };
      },
    );
  };
}
