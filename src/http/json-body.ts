/**
 * What fastify's JSON parser does not check, refused before parsing with 415 and a message that
 * says what to send: a compressed body (fastify would parse gzip bytes and answer "not valid
 * JSON") and a charset other than UTF-8 (fastify would decode latin1 bytes as UTF-8 and silently
 * change the prompt). JSON is UTF-8 (RFC 8259 §8.1); 415 is the status for an unsupported
 * content coding (RFC 9110 §15.5.16, https://www.rfc-editor.org/rfc/rfc9110#section-15.5.16).
 */
import type { FastifyRequest } from 'fastify';
import { type ErrorCode, GatewayError } from '../contract/errors.js';

const UTF8 = new Set(['utf-8', 'utf8']);

/**
 * What every route that takes a JSON body with text in it (and tokenizes it) can answer before
 * its own work: the body's parsing and checks, the key, the rate limit and the tokenizer.
 */
export const TEXT_BODY_ERROR_CODES = [
  'INVALID_JSON',
  'INVALID_REQUEST',
  'UNAUTHORIZED',
  'INVALID_UTF8',
  'LONE_SURROGATE',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'RATE_LIMITED',
  'TOKENIZER_UNAVAILABLE',
] as const satisfies readonly ErrorCode[];

/** A route-level preParsing hook: throws, or leaves the payload alone. */
export async function refuseUnreadableJsonBody(request: FastifyRequest): Promise<void> {
  const encoding = request.headers['content-encoding']?.trim().toLowerCase();
  if (encoding !== undefined && encoding !== '' && encoding !== 'identity') {
    throw new GatewayError(
      'UNSUPPORTED_MEDIA_TYPE',
      `content-encoding '${encoding}' is not supported; send the body uncompressed`,
    );
  }
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(request.headers['content-type'] ?? '');
  const name = charset?.[1]?.toLowerCase();
  if (name !== undefined && !UTF8.has(name)) {
    throw new GatewayError(
      'UNSUPPORTED_MEDIA_TYPE',
      `charset '${name}' is not supported; send the JSON body as UTF-8 (content-type: application/json; charset=utf-8)`,
    );
  }
}
