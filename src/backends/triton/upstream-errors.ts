/**
 * The one mapping of upstream failures onto BackendError codes. Triton's HTTP status codes are
 * not trusted: 21.08 answers 400 to every error (docs/triton-notes.md), so an
 * error is classified by its `{"error": "..."}` message; only bodies that are not Triton's
 * (a proxy in front of it) fall back to the status.
 */

import { errorMessageOf } from '../../kserve/messages.js';
import { WireFormatError } from '../../kserve/tensor-codec.js';
import { BackendError } from '../backend.js';

/** Retry-After when the upstream says its queue is full and gives no hint itself. */
export const DEFAULT_OVERLOAD_RETRY_AFTER_SECONDS = 1;

/** Triton messages for "queue full" and "queue timeout" (github.com/triton-inference-server/core,
 * src/scheduler_utils.cc and src/dynamic_batch_scheduler.cc). */
const OVERLOAD_MESSAGES = [/exceeds maximum queue size/i, /request timeout expired/i];
/** Triton messages for "not serving (yet/any more)" (docs/triton-notes.md). */
const NOT_READY_MESSAGES = [
  /server not ready/i,
  /server exiting/i,
  /is not at ready state/i,
  /has no available versions/i,
  /model version not ready/i,
];

/** Codes of errors raised before any byte of the request left: safe to retry. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const UNAVAILABLE_CODES = new Set([
  ...NOT_SENT_CODES,
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);
const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);
const BAD_RESPONSE_CODES = new Set([
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_EXCEEDED_MAX_SIZE',
  'HPE_INVALID_CONSTANT',
  'HPE_INVALID_HEADER_TOKEN',
  'HPE_INVALID_CONTENT_LENGTH',
  'HPE_UNEXPECTED_CONTENT_LENGTH',
]);

/** The error code of a transport error, looking through undici's and net's wrappers. */
export function transportCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const inner = e instanceof AggregateError ? e.errors[0] : e.cause;
    e = inner;
  }
  return undefined;
}

export function isNotSent(err: unknown): boolean {
  const code = transportCode(err);
  return code !== undefined && NOT_SENT_CODES.has(code);
}

/** Map a thrown transport or parse error to a BackendError; `what` names the call for messages. */
export function fromTransportError(err: unknown, what: string): BackendError {
  if (err instanceof BackendError) return err;
  if (err instanceof WireFormatError) {
    return new BackendError(
      'BACKEND_BAD_RESPONSE',
      `${what}: the model server's answer is malformed: ${err.message}`,
      { cause: err },
    );
  }
  const code = transportCode(err);
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return new BackendError(
      'BACKEND_TIMEOUT',
      `${what}: the model server did not answer in time (${code})`,
      { cause: err },
    );
  }
  if (code !== undefined && UNAVAILABLE_CODES.has(code)) {
    return new BackendError(
      'BACKEND_UNAVAILABLE',
      `${what}: the model server cannot be reached (${code})`,
      { cause: err },
    );
  }
  if ((code !== undefined && BAD_RESPONSE_CODES.has(code)) || code?.startsWith('HPE_')) {
    return new BackendError(
      'BACKEND_BAD_RESPONSE',
      `${what}: the model server sent a broken HTTP response (${code})`,
      { cause: err },
    );
  }
  return new BackendError(
    'BACKEND_UNAVAILABLE',
    `${what}: the call to the model server failed (${code ?? (err instanceof Error ? err.message : String(err))})`,
    { cause: err },
  );
}

/** The upstream's own words, kept on the error for the log and never sent to clients. */
export class UpstreamErrorBody extends Error {
  override readonly name = 'UpstreamErrorBody';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function retryAfterSeconds(header: string | undefined): number {
  const n = header === undefined ? Number.NaN : Number(header);
  return Number.isFinite(n) && n >= 0 ? Math.ceil(n) : DEFAULT_OVERLOAD_RETRY_AFTER_SECONDS;
}

/** Map a non-2xx answer (its body already read) to a BackendError. */
export function fromErrorResponse(
  status: number,
  bodyText: string,
  retryAfterHeader: string | undefined,
  what: string,
): BackendError {
  const upstream = errorMessageOf(bodyText);
  if (upstream === undefined) {
    const cause = new UpstreamErrorBody(status, bodyText.slice(0, 500));
    // Not Triton's body: a proxy (Envoy, Istio, the Seldon executor) answered for it.
    if (status === 502 || status === 503 || status === 504) {
      return new BackendError(
        'BACKEND_UNAVAILABLE',
        `${what}: a proxy in front of the model server answered HTTP ${status}`,
        { cause, retryAfterSeconds: retryAfterSeconds(retryAfterHeader) },
      );
    }
    return new BackendError(
      'BACKEND_ERROR',
      `${what}: the model server answered HTTP ${status} without an error message`,
      { cause },
    );
  }
  const cause = new UpstreamErrorBody(status, upstream);
  if (OVERLOAD_MESSAGES.some((re) => re.test(upstream))) {
    return new BackendError('BACKEND_OVERLOADED', `${what}: the model server's queue is full`, {
      cause,
      retryAfterSeconds: retryAfterSeconds(retryAfterHeader),
    });
  }
  if (NOT_READY_MESSAGES.some((re) => re.test(upstream))) {
    return new BackendError(
      'BACKEND_UNAVAILABLE',
      `${what}: the model server is not ready to serve the model`,
      { cause, retryAfterSeconds: retryAfterSeconds(retryAfterHeader) },
    );
  }
  return new BackendError(
    'BACKEND_ERROR',
    `${what}: the model server rejected the call (HTTP ${status})`,
    { cause },
  );
}

/** Whether this failure says the upstream is down (counts toward opening the breaker). */
export function countsAgainstUpstream(err: BackendError): boolean {
  return err.code === 'BACKEND_UNAVAILABLE' || err.code === 'BACKEND_TIMEOUT';
}
