/**
 * Every error code the gateway answers with, its HTTP status, and the one mapping from
 * BackendError codes to HTTP (CONVENTIONS.md 5–7). The code strings are public API: openapi.yaml
 * lists them and test/http/openapi.test.ts fails if the two drift.
 */
import { BackendError, type BackendErrorCode } from '../backends/backend.js';

/** code → HTTP status. Client mistakes are 4xx, capacity is 503, upstream trouble 502/504. */
export const ERROR_STATUS = {
  /** The body is not valid JSON. */
  INVALID_JSON: 400,
  /** The body does not match the route's schema (missing, wrong type, out of range, unknown field). */
  INVALID_REQUEST: 400,
  /** The body is not UTF-8 (a byte sequence RFC 3629 forbids); never decoded to U+FFFD. */
  INVALID_UTF8: 400,
  /** A JSON string holds a lone UTF-16 surrogate escape ("\ud800"); never replaced by U+FFFD. */
  LONE_SURROGATE: 400,
  /** The HTTP parser refused the request (CL+TE, duplicate Content-Length, bare LF, ...). */
  BAD_REQUEST: 400,
  /** prompt tokens + max_new_tokens exceed the model's context (1024 for GPT-2); never truncated. */
  CONTEXT_LENGTH_EXCEEDED: 400,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  /** Headers and body did not all arrive within REQUEST_TIMEOUT_MS. */
  REQUEST_TIMEOUT: 408,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  /** The request line and headers exceed Node's limit (--max-http-header-size, 16 KiB). */
  HEADERS_TOO_LARGE: 431,
  /** Per API key or client address (@fastify/rate-limit); comes with Retry-After. */
  RATE_LIMITED: 429,
  /** The client closed the connection before the answer (nginx's 499); only in logs and metrics. */
  CLIENT_CLOSED_REQUEST: 499,
  INTERNAL_ERROR: 500,
  BACKEND_ERROR: 502,
  BACKEND_BAD_RESPONSE: 502,
  /** Every generation slot is busy and the wait queue is full; comes with Retry-After. */
  QUEUE_FULL: 503,
  /** The process is draining for shutdown (SIGTERM); retry on another replica. */
  SHUTTING_DOWN: 503,
  /** /readyz: the backend cannot serve yet. */
  NOT_READY: 503,
  BACKEND_UNAVAILABLE: 503,
  BACKEND_OVERLOADED: 503,
  BACKEND_NOT_READY: 503,
  BACKEND_TIMEOUT: 504,
} as const satisfies Record<string, number> & Record<BackendErrorCode, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** The one error body shape, on every route and in the SSE `error` event. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  readonly statusCode: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.statusCode = ERROR_STATUS[code];
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
  /** Sent as the Retry-After header (seconds). */
  readonly retryAfterSeconds: number | undefined;

  body(): ErrorBody {
    return { error: { code: this.code, message: this.message } };
  }
}

/** What a client is told when the backend fails; details go to the log, not to the client. */
const BACKEND_MESSAGES: Record<BackendErrorCode, string> = {
  BACKEND_UNAVAILABLE: 'the model server cannot be reached; retry later',
  BACKEND_TIMEOUT: 'the model server did not answer in time; retry later',
  BACKEND_ERROR: 'the model server failed to run the model',
  BACKEND_BAD_RESPONSE: 'the model server returned an answer the gateway cannot read',
  BACKEND_OVERLOADED: 'the model server is overloaded; retry later',
  BACKEND_NOT_READY: 'the model is not loaded yet; retry later',
};
/** When the backend gives no hint: a short pause is the right advice for capacity problems. */
const DEFAULT_BACKEND_RETRY_AFTER_SECONDS = 1;

/**
 * THE mapping from a backend failure to HTTP (CONVENTIONS.md 6). Handlers never look at
 * transport errors: backends throw BackendError, this turns it into a GatewayError.
 */
export function fromBackendError(err: BackendError): GatewayError {
  const retryable =
    err.code === 'BACKEND_OVERLOADED' ||
    err.code === 'BACKEND_UNAVAILABLE' ||
    err.code === 'BACKEND_NOT_READY';
  return new GatewayError(err.code, BACKEND_MESSAGES[err.code], {
    cause: err,
    retryAfterSeconds: retryable
      ? (err.retryAfterSeconds ?? DEFAULT_BACKEND_RETRY_AFTER_SECONDS)
      : undefined,
  });
}

/** Anything thrown during generation, as the error the client sees. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof BackendError) return fromBackendError(err);
  return new GatewayError('INTERNAL_ERROR', 'internal error', { cause: err });
}
