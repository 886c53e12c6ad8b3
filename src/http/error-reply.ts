/**
 * The one place that decides an error answer's body shape, by route family: OpenAI's
 * `{"error": {"message", "type", "param", "code"}}` on /v1/* (what the OpenAI SDKs read), the
 * gateway's `{"error": {"code", "message"}}` everywhere else. The error handler, the not-found
 * handler, the rate limiter (through the error handler) and the auth gate all answer through it,
 * so a validation error, a 404, a 429 and a 401 on /v1/* all have OpenAI's shape.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayError } from '../contract/errors.js';
import { fromGatewayError } from '../openai/errors.js';

/** The OpenAI-compatible routes live under this prefix. */
export const OPENAI_PREFIX = '/v1';

/** True for /v1 and anything under /v1/ (query string aside). */
export function isOpenAIPath(url: string): boolean {
  const path = url.split('?')[0] ?? '';
  return path === OPENAI_PREFIX || path.startsWith(`${OPENAI_PREFIX}/`);
}

/** The body an error answer carries on the route family of `url`. */
export function errorPayload(url: string, error: GatewayError): unknown {
  return isOpenAIPath(url) ? fromGatewayError(error).body : error.body();
}

/** Sends `error` with its status, its Retry-After and the body of the request's route family. */
export function sendError(
  request: FastifyRequest,
  reply: FastifyReply,
  error: GatewayError,
): FastifyReply {
  if (error.retryAfterSeconds !== undefined) {
    reply.header('retry-after', String(error.retryAfterSeconds));
  }
  return reply
    .code(error.statusCode)
    .type('application/json')
    .send(errorPayload(request.url, error));
}
