/**
 * The one error handler and the one error body: whatever went wrong — a schema violation, a bad
 * content type, a full queue, a backend failure — the client gets `{"error": {"code", "message"}}`
 * with the status of the code's record in the error catalogue (src/contract/errors.ts), and the
 * log line and metric that record asks for. 5xx messages stay generic; the full error goes to the
 * log under `err`.
 */
import type { FastifyBaseLogger, FastifyError, FastifyInstance } from 'fastify';
import { BackendError } from '../backends/backend.js';
import { ERRORS, echoed, GatewayError } from '../contract/errors.js';
import { GenerationCancelledError } from '../generation/scheduler.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import { sendError } from './error-reply.js';
import { MAX_STOP_LENGTH, MAX_STOP_SEQUENCES } from './schemas.js';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/**
 * A backend failure as the client sees it: the catalogue's message (details go to the log, under
 * `err`), and the backend's Retry-After hint for the codes worth retrying.
 */
function fromBackendError(err: BackendError): GatewayError {
  const retryable = ERRORS[err.code].retryAfterSeconds !== undefined;
  return new GatewayError(err.code, undefined, {
    cause: err,
    ...(retryable && err.retryAfterSeconds !== undefined
      ? { retryAfterSeconds: err.retryAfterSeconds }
      : {}),
  });
}

/**
 * The one decision of what an error answer leaves behind, before the headers went out (the error
 * handler) or after (an SSE `error` event): the rejections metric, and one log line of the kind
 * the code's catalogue record names.
 */
export function recordError(
  log: FastifyBaseLogger,
  metrics: GatewayMetrics,
  error: GatewayError,
  err: unknown,
): void {
  const { reason, log: kind } = error.record;
  if (reason !== undefined) metrics.rejections.inc({ reason });
  switch (kind) {
    case 'refusal':
      // The service working as designed: one warn line, not a stack per refused request.
      log.warn(error.body(), 'refused');
      break;
    case 'failure':
      log.error({ err }, error.message);
      break;
    case 'gone':
      log.info('client went away');
      break;
    case 'client':
      // The response line (status, route) is the record of a client's mistake.
      break;
  }
}

interface AjvError {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/** `/stop/0` → `stop[0]`: the field as a client writes it. */
function fieldName(instancePath: string): string {
  return instancePath
    .split('/')
    .filter((part) => part !== '')
    .map((part, i) => (/^\d+$/.test(part) ? `[${part}]` : i === 0 ? part : `.${part}`))
    .join('');
}

/** One sentence saying which field is wrong and what would be right. */
function validationMessage(errors: readonly AjvError[], allowed: readonly string[]): string {
  const first = errors[0];
  if (first === undefined) return 'the request body is invalid';
  const field = fieldName(first.instancePath);
  switch (first.keyword) {
    case 'required':
      return `'${String(first.params.missingProperty)}' is required`;
    case 'additionalProperties':
      return `unknown field '${echoed(String(first.params.additionalProperty))}'${
        field === '' && allowed.length > 0 ? `; allowed fields: ${allowed.join(', ')}` : ''
      }`;
    case 'type':
      if (field === '') return 'the body must be a JSON object';
      return `'${field}' ${first.message ?? 'has the wrong type'}`;
    case 'anyOf':
      // Name every limit: a client whose stop string is too long must learn the length cap.
      return `'${field}' must be a string of 1 to ${MAX_STOP_LENGTH} characters, or an array of at most ${MAX_STOP_SEQUENCES} such strings`;
    case 'minLength':
      if (first.params.limit === 1) return `'${field}' must not be empty`;
      return `'${field}' ${first.message ?? 'is too short'}`;
    default:
      return `'${field === '' ? 'body' : field}' ${first.message ?? 'is invalid'}`;
  }
}

/** What fastify's own errors mean to a client. */
function fromFastifyError(
  err: FastifyError,
  allowed: readonly string[],
  bodyLimit: number,
): GatewayError {
  if (err.validation !== undefined) {
    // anyOf reports its branches' errors first; the anyOf error itself names the field best.
    const errors = err.validation as unknown as AjvError[];
    const anyOf = errors.find((e) => e.keyword === 'anyOf');
    return new GatewayError(
      'INVALID_REQUEST',
      validationMessage(anyOf ? [anyOf] : errors, allowed),
    );
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GatewayError(
        'UNSUPPORTED_MEDIA_TYPE',
        'send the body as JSON with the header content-type: application/json',
      );
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError('PAYLOAD_TOO_LARGE', `the body must not exceed ${bodyLimit} bytes`);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      // fastify drops the parser's detail; its own message only repeats "not valid JSON". Say
      // what to send instead, and name the one refusal of valid JSON (prototype-poisoning keys).
      return new GatewayError(
        'INVALID_JSON',
        'the body is not valid JSON; send one JSON object (keys named __proto__ or constructor are refused)',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new GatewayError('INVALID_JSON', 'the body is empty; send a JSON object');
  }
  if (err.statusCode === 404) return new GatewayError('NOT_FOUND', err.message);
  if (err.statusCode === 405) return new GatewayError('METHOD_NOT_ALLOWED', err.message);
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    return new GatewayError('INVALID_REQUEST', err.message);
  }
  return new GatewayError('INTERNAL_ERROR', 'internal error', { cause: err });
}

export function toClientError(
  err: unknown,
  allowed: readonly string[] = [],
  bodyLimit = 0,
): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof BackendError) return fromBackendError(err);
  if (err instanceof GenerationCancelledError) {
    return new GatewayError('CLIENT_CLOSED_REQUEST', 'the client closed the connection');
  }
  if (err instanceof Error && ('code' in err || 'statusCode' in err || 'validation' in err)) {
    return fromFastifyError(err as FastifyError, allowed, bodyLimit);
  }
  return new GatewayError('INTERNAL_ERROR', 'internal error', { cause: err });
}

export function installErrorHandler(
  app: FastifyInstance,
  metrics: GatewayMetrics,
  bodyLimit: number,
): void {
  app.setErrorHandler((err, request, reply) => {
    const allowed = Object.keys(
      (request.routeOptions.schema?.body as { properties?: object } | undefined)?.properties ?? {},
    );
    const error = toClientError(err, allowed, bodyLimit);
    recordError(request.log, metrics, error, err);
    return sendError(request, reply, error);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    const allowed = METHODS.filter((method) => app.hasRoute({ method, url: path }));
    if (allowed.length > 0) {
      const error = new GatewayError(
        'METHOD_NOT_ALLOWED',
        // "accepts GET or HEAD, not POST": a sentence, where the Allow header has the list.
        `${path} accepts ${allowed.join(' or ')}, not ${request.method}`,
      );
      return sendError(request, reply.header('allow', allowed.join(', ')), error);
    }
    const error = new GatewayError('NOT_FOUND', `no route ${request.method} ${path}`);
    return sendError(request, reply, error);
  });
}
