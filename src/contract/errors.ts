/**
 * The error catalogue: one record per error code the gateway answers with, and everything the
 * gateway decides from the code alone — the HTTP status, what the client is told by default, the
 * Retry-After it gets, the rejections metric's reason, and how the answer is logged. Shaped after
 * @fastify/reply-from's lib/errors.js, where each error is one line. The code strings are public
 * API: openapi.yaml lists them and test/http/openapi.test.ts fails if the two drift or a record is
 * incomplete. This module sits on the bottom floor: it imports nothing from the rest of src/.
 */

/**
 * How an answer with this code is logged (fastify logs every response's status on its own):
 * - `client`: the client must change its request (4xx); the response line says enough.
 * - `refusal`: the service working as designed under load or during start-up and shutdown (a
 *   full queue, a drain, a model not loaded yet): one warn line with the error body, no stack.
 * - `failure`: something broke; logged at error with the thrown error (and its stack) as `err`.
 * - `gone`: the client closed the connection; one info line.
 */
export type ErrorLogKind = 'client' | 'refusal' | 'failure' | 'gone';

/** Reasons of gpt2_gateway_rejections_total: requests refused before generation. */
export const REJECTION_REASONS = [
  'invalid_request',
  'context_length',
  'payload_too_large',
  'unsupported_media_type',
  'unauthorized',
  'rate_limited',
  'queue_full',
  'shutting_down',
] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

export interface ErrorRecord {
  readonly status: number;
  /** What the client is told when the thrower has nothing more specific to say. */
  readonly message: string;
  /** Seconds for the Retry-After header when the thrower gives none; absent: no header. */
  readonly retryAfterSeconds: number | undefined;
  /** Label of the rejections metric; absent: the answer is not counted as a rejection. */
  readonly reason: RejectionReason | undefined;
  readonly log: ErrorLogKind;
}

/** A short pause is the right advice for a capacity problem when nothing better is known. */
const RETRY_SOON_SECONDS = 1;
const R = RETRY_SOON_SECONDS;
const _ = undefined;

/** Client mistakes are 4xx, capacity is 503, upstream trouble 502/504 (one line per code). */
// biome-ignore format: a table, one line per code: status, message, Retry-After, reason, log kind
export const ERRORS = {
  INVALID_JSON: rec(400, 'the body is not valid JSON', _, 'invalid_request', 'client'),
  INVALID_REQUEST: rec(400, 'the request body is invalid', _, 'invalid_request', 'client'),
  /** The body's bytes are not UTF-8: refused rather than read with U+FFFD in place of them. */
  INVALID_UTF8: rec(400, 'the body is not valid UTF-8', _, 'invalid_request', 'client'),
  /** A \uD800-\uDFFF escape without its pair: refused rather than turned into U+FFFD. */
  LONE_SURROGATE: rec(400, 'a string contains a lone UTF-16 surrogate', _, 'invalid_request', 'client'),
  /** Malformed HTTP/1.1 framing, answered by the connection's parser before any route runs. */
  BAD_REQUEST: rec(400, 'the request is not valid HTTP/1.1', _, _, 'client'),
  /** prompt tokens + max_new_tokens exceed the model's context (1024 for GPT-2); never truncated. */
  CONTEXT_LENGTH_EXCEEDED: rec(400, "the request exceeds the model's context", _, 'context_length', 'client'),
  /** API_KEYS_FILE is set and the request carries no valid key; comes with WWW-Authenticate. */
  UNAUTHORIZED: rec(401, 'a valid API key is required', _, 'unauthorized', 'client'),
  NOT_FOUND: rec(404, 'no such route', _, _, 'client'),
  /** /v1/*: the request names a model this gateway does not serve. */
  MODEL_NOT_FOUND: rec(404, 'the model does not exist', _, _, 'client'),
  METHOD_NOT_ALLOWED: rec(405, 'method not allowed on this route', _, _, 'client'),
  /** Headers and body did not arrive within REQUEST_TIMEOUT_MS. */
  REQUEST_TIMEOUT: rec(408, 'the request did not arrive in time', _, _, 'client'),
  PAYLOAD_TOO_LARGE: rec(413, 'the body is too large', _, 'payload_too_large', 'client'),
  UNSUPPORTED_MEDIA_TYPE: rec(415, 'send the body as JSON', _, 'unsupported_media_type', 'client'),
  /**
   * An Expect header other than 100-continue (RFC 9110 §10.1.1,
   * https://www.rfc-editor.org/rfc/rfc9110#section-10.1.1); the connection is closed.
   */
  EXPECTATION_FAILED: rec(417, 'the Expect header is not supported', _, _, 'client'),
  HEADERS_TOO_LARGE: rec(431, 'the request headers are too large', _, _, 'client'),
  /** Per API key or client address (@fastify/rate-limit); comes with Retry-After. */
  RATE_LIMITED: rec(429, 'rate limit exceeded; retry later', R, 'rate_limited', 'client'),
  /** The client closed the connection before the answer (nginx's 499); only in logs and metrics. */
  CLIENT_CLOSED_REQUEST: rec(499, 'the client closed the connection', _, _, 'gone'),
  INTERNAL_ERROR: rec(500, 'internal error', _, _, 'failure'),
  BACKEND_ERROR: rec(502, 'the model server failed to run the model', _, _, 'failure'),
  BACKEND_BAD_RESPONSE: rec(502, 'the model server returned an answer the gateway cannot read', _, _, 'failure'),
  /** Every generation slot is busy and the wait queue is full; comes with Retry-After. */
  QUEUE_FULL: rec(503, 'every generation slot is busy; retry later', R, 'queue_full', 'refusal'),
  /** The process is draining for shutdown (SIGTERM); retry on another replica. */
  SHUTTING_DOWN: rec(503, 'the server is shutting down; retry on another instance', R, 'shutting_down', 'refusal'),
  /** /readyz: the backend cannot serve yet. */
  NOT_READY: rec(503, 'not ready', _, _, 'refusal'),
  BACKEND_UNAVAILABLE: rec(503, 'the model server cannot be reached; retry later', R, _, 'failure'),
  BACKEND_OVERLOADED: rec(503, 'the model server is overloaded; retry later', R, _, 'failure'),
  /** The model is not loaded yet, or the backend was closed under a generation (shutdown). */
  BACKEND_NOT_READY: rec(503, 'the model is not loaded yet; retry later', R, _, 'refusal'),
  /** A tokenizer worker died while encoding the prompt (it is replaced), or none can start. */
  TOKENIZER_UNAVAILABLE: rec(503, 'the tokenizer failed on this text; retry later', R, _, 'failure'),
  BACKEND_TIMEOUT: rec(504, 'the model server did not answer in time; retry later', _, _, 'failure'),
} as const satisfies Record<string, ErrorRecord>;

export type ErrorCode = keyof typeof ERRORS;
export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/** The codes a backend fails with; the HTTP answer to each is its catalogue record. */
export const BACKEND_ERROR_CODES = [
  /** Could not reach the model server (refused, reset before sending, DNS, breaker open). */
  'BACKEND_UNAVAILABLE',
  /** Connect, headers or body timeout. */
  'BACKEND_TIMEOUT',
  /** The model server answered with an error body or a non-2xx status. */
  'BACKEND_ERROR',
  /** The answer could not be understood (malformed JSON, wrong binary lengths, wrong shapes). */
  'BACKEND_BAD_RESPONSE',
  /** The model server says it is overloaded (its queue is full). */
  'BACKEND_OVERLOADED',
  /** The backend is closed or not initialised. */
  'BACKEND_NOT_READY',
] as const satisfies readonly ErrorCode[];
export type BackendErrorCode = (typeof BACKEND_ERROR_CODES)[number];

/** The one error body shape, on every route and in the SSE `error` event. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

/** An answer the gateway gives on purpose: the code decides status, Retry-After, metric, log. */
export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  readonly statusCode: number;
  /** Sent as the Retry-After header (seconds). */
  readonly retryAfterSeconds: number | undefined;
  constructor(
    readonly code: ErrorCode,
    message: string = ERRORS[code].message,
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.statusCode = ERRORS[code].status;
    this.retryAfterSeconds = options?.retryAfterSeconds ?? ERRORS[code].retryAfterSeconds;
  }

  get record(): ErrorRecord {
    return ERRORS[this.code];
  }

  body(): ErrorBody {
    return { error: { code: this.code, message: this.message } };
  }
}

function rec(
  status: number,
  message: string,
  retryAfterSeconds: number | undefined,
  reason: RejectionReason | undefined,
  log: ErrorLogKind,
): ErrorRecord {
  return { status, message, retryAfterSeconds, reason, log };
}

/** Longest client text an error message repeats whole. */
const MAX_ECHO_CHARS = 64;

/**
 * Client text (a field name, a model id) as an error message repeats it: whole when short, else
 * its start and its length, so that a megabyte-long name does not come back a megabyte long.
 */
export function echoed(text: string): string {
  return text.length <= MAX_ECHO_CHARS
    ? text
    : `${text.slice(0, MAX_ECHO_CHARS)}… (${text.length} characters)`;
}
