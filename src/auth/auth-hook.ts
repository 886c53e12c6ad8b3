/**
 * The authentication gate: an onRequest hook that lets a request through only with a valid API
 * key, and records which client it belongs to (for the rate limiter and the logs).
 *
 * It runs on onRequest, before the body is read, so an unauthenticated client cannot make the
 * gateway parse a body or do any other work. Each route family answers in its own error body
 * shape (the gateway's own or OpenAI's), so the reply itself is left to an injected function.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERRORS } from '../contract/errors.js';
import { type ApiKeyStore, extractCredential } from './api-keys.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated client's name from the keys file; undefined when auth is off. */
    clientName: string | undefined;
  }
}

/** The gateway's error code for every 401, and its status from the error catalogue. */
export const UNAUTHORIZED_CODE = 'UNAUTHORIZED' as const;
export const UNAUTHORIZED_STATUS = ERRORS[UNAUTHORIZED_CODE].status;

/** Paths that never need a key: the kubelet's probes carry none. */
export const DEFAULT_OPEN_PATHS: readonly string[] = ['/healthz', '/readyz'];

/** Why a request was refused; the OpenAI mapping turns `unknown-key` into `invalid_api_key`. */
export type UnauthorizedReason = 'missing' | 'wrong-scheme' | 'malformed' | 'unknown-key';

export type ErrorReply = (
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  code: typeof UNAUTHORIZED_CODE,
  message: string,
  reason: UnauthorizedReason,
) => unknown;

export interface AuthHookOptions {
  /** Without a store every request passes (the gateway warns once at start). */
  readonly store: Pick<ApiKeyStore, 'verify'> | undefined;
  /** Exact paths (no query string) that need no key. */
  readonly openPaths?: Iterable<string>;
  /** Further open requests, e.g. a prefix for the playground's static files. */
  readonly isOpen?: (request: FastifyRequest) => boolean;
  /** Sends the 401 body in the route family's shape; the hook has set the headers already. */
  readonly errorReply: ErrorReply;
}

const HOW_TO_SEND = 'send `Authorization: Bearer <key>` or `x-api-key: <key>`';

/**
 * RFC 6750 §3 (https://www.rfc-editor.org/rfc/rfc6750#section-3): no error attribute when no
 * credential came, `invalid_token` for a key that is not valid, `invalid_request` for one that
 * cannot be read.
 */
const CHALLENGE: Record<UnauthorizedReason, string> = {
  missing: 'Bearer',
  'wrong-scheme': 'Bearer',
  malformed: 'Bearer error="invalid_request"',
  'unknown-key': 'Bearer error="invalid_token"',
};

/** Path part of a request URL; the open list is compared with it exactly. */
function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/**
 * The auth plugin. It is registered with fastify's `skip-override` (what fastify-plugin sets, see
 * fastify docs/Reference/Plugins.md) so the hook and the decorator apply to the whole app and not
 * only inside the plugin's own encapsulation context.
 */
export function authPlugin(options: AuthHookOptions) {
  const openPaths = new Set(options.openPaths ?? DEFAULT_OPEN_PATHS);
  const plugin = async (app: FastifyInstance): Promise<void> => {
    app.decorateRequest('clientName', undefined);
    const { store } = options;
    if (store === undefined) return;
    app.addHook('onRequest', async (request, reply) => {
      if (openPaths.has(pathOf(request.url)) || options.isOpen?.(request) === true) return;
      const credential = extractCredential(request.headers);
      let reason: UnauthorizedReason;
      let message: string;
      switch (credential.kind) {
        case 'key': {
          const clientName = store.verify(credential.key);
          if (clientName !== undefined) {
            request.clientName = clientName;
            // Child logger: every later line of this request names its client, never its key.
            request.log = request.log.child({ client: clientName });
            reply.log = request.log;
            return;
          }
          reason = 'unknown-key';
          message = 'the API key is not valid; check the key you were given';
          break;
        }
        case 'missing':
          reason = 'missing';
          message = `this gateway needs an API key: ${HOW_TO_SEND}`;
          break;
        case 'wrong-scheme':
          reason = 'wrong-scheme';
          message = `the Authorization header must use the Bearer scheme: ${HOW_TO_SEND}`;
          break;
        case 'malformed':
          reason = 'malformed';
          message = `the API key cannot be read (${credential.reason}): ${HOW_TO_SEND}`;
          break;
      }
      request.log.info({ reason }, 'request refused: not authenticated');
      reply.header('www-authenticate', CHALLENGE[reason]);
      await options.errorReply(
        request,
        reply,
        UNAUTHORIZED_STATUS,
        UNAUTHORIZED_CODE,
        message,
        reason,
      );
      return reply;
    });
  };
  const marked = plugin as typeof plugin & Record<symbol, unknown>;
  marked[Symbol.for('skip-override')] = true;
  marked[Symbol.for('fastify.display-name')] = 'gpt2-gateway-auth';
  return plugin;
}
