/**
 * OpenAI's error body, and the one mapping from the gateway's error codes onto it.
 *
 * The shape is `{"error": {"message", "type", "param", "code"}}`, what openai-node's
 * `APIError` reads (src/core/error.ts: it takes `code`, `param` and `type` from `error`). The
 * SDKs pick their error class from the HTTP status alone (400 BadRequestError, 401
 * AuthenticationError, 404 NotFoundError, 429 RateLimitError, >= 500 InternalServerError), so
 * the gateway's own statuses are kept as they are; `type` and `code` are for people and logs.
 */

import { type ErrorCode, echoed, GatewayError } from '../contract/errors.js';

export interface OpenAIErrorBody {
  error: {
    message: string;
    type: string;
    param: string | null;
    code: string | null;
  };
}

/** An error ready to send: status, body, and the Retry-After the gateway attached (seconds). */
export interface OpenAIError {
  readonly status: number;
  readonly body: OpenAIErrorBody;
  readonly retryAfterSeconds?: number;
}

export function openAIError(
  status: number,
  type: string,
  message: string,
  param: string | null,
  code: string | null,
  retryAfterSeconds?: number,
): OpenAIError {
  const error: OpenAIError = { status, body: { error: { message, type, param, code } } };
  return retryAfterSeconds === undefined ? error : { ...error, retryAfterSeconds };
}

/** OpenAI's own 404 for a model it does not serve, word for word in shape. */
export function modelNotFound(model: string): OpenAIError {
  return openAIError(
    404,
    'invalid_request_error',
    `The model \`${echoed(model)}\` does not exist`,
    'model',
    'model_not_found',
  );
}

/** undefined when `model` is served, else the 404 to send. Model ids are compared exactly. */
export function checkModel(
  model: string,
  servedModels: readonly string[],
): OpenAIError | undefined {
  return servedModels.includes(model) ? undefined : modelNotFound(model);
}

/** POST /v1/chat/completions: GPT-2 has no chat template, so say where to go instead. */
export function chatCompletionsNotSupported(): OpenAIError {
  return openAIError(
    404,
    'invalid_request_error',
    'GPT-2 has no chat format, so this gateway has no /v1/chat/completions; ' +
      'send the text to continue to POST /v1/completions as `prompt`',
    null,
    'unknown_url',
  );
}

interface Mapping {
  readonly type: string;
  /** OpenAI's code where it has one for the same condition; else the gateway code lower-cased. */
  readonly code?: string;
  readonly param?: string;
}

/**
 * Gateway code → OpenAI type, code and param; one row per catalogue code (the type says so). OpenAI answers a bad or missing key with type
 * `invalid_request_error` and code `invalid_api_key`, and a rate limit with type `requests` and
 * code `rate_limit_exceeded`; compatible servers and clients follow those strings.
 */
const MAPPINGS: Readonly<Record<ErrorCode, Mapping>> = {
  INVALID_JSON: { type: 'invalid_request_error' },
  INVALID_REQUEST: { type: 'invalid_request_error' },
  INVALID_UTF8: { type: 'invalid_request_error' },
  LONE_SURROGATE: { type: 'invalid_request_error' },
  BAD_REQUEST: { type: 'invalid_request_error' },
  REQUEST_TIMEOUT: { type: 'invalid_request_error' },
  HEADERS_TOO_LARGE: { type: 'invalid_request_error' },
  EXPECTATION_FAILED: { type: 'invalid_request_error' },
  // Only in logs and metrics: nobody is left to read it.
  CLIENT_CLOSED_REQUEST: { type: 'invalid_request_error' },
  CONTEXT_LENGTH_EXCEEDED: {
    type: 'invalid_request_error',
    code: 'context_length_exceeded',
    param: 'prompt',
  },
  NOT_FOUND: { type: 'invalid_request_error', code: 'unknown_url' },
  MODEL_NOT_FOUND: { type: 'invalid_request_error', code: 'model_not_found', param: 'model' },
  METHOD_NOT_ALLOWED: { type: 'invalid_request_error' },
  PAYLOAD_TOO_LARGE: { type: 'invalid_request_error' },
  UNSUPPORTED_MEDIA_TYPE: { type: 'invalid_request_error' },
  UNAUTHORIZED: { type: 'invalid_request_error', code: 'invalid_api_key' },
  RATE_LIMITED: { type: 'requests', code: 'rate_limit_exceeded' },
  INTERNAL_ERROR: { type: 'server_error' },
  BACKEND_ERROR: { type: 'server_error' },
  BACKEND_BAD_RESPONSE: { type: 'server_error' },
  QUEUE_FULL: { type: 'server_error' },
  SHUTTING_DOWN: { type: 'server_error' },
  NOT_READY: { type: 'server_error' },
  BACKEND_UNAVAILABLE: { type: 'server_error' },
  BACKEND_OVERLOADED: { type: 'server_error' },
  BACKEND_NOT_READY: { type: 'server_error' },
  TOKENIZER_UNAVAILABLE: { type: 'server_error' },
  BACKEND_TIMEOUT: { type: 'server_error' },
};

/** A code this table does not know yet still gets a sensible type from its status. */
function typeForStatus(status: number): string {
  if (status === 429) return 'requests';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** The gateway error as much as OpenAI's error needs: GatewayError satisfies it structurally. */
export interface GatewayErrorLike {
  readonly code: string;
  readonly statusCode: number;
  readonly message: string;
  readonly retryAfterSeconds?: number | undefined;
  /** OpenAI's param and code where the thrower knows them better than the table. */
  readonly openai?: { readonly param: string | null; readonly code: string | null } | undefined;
}

/**
 * A gateway error that carries OpenAI's finer `param` and `code` (a /v1 body refusal names the
 * parameter): the catalogue code still decides the status, the metric and the log line.
 */
export class OpenAIGatewayError extends GatewayError {
  readonly openai: { readonly param: string | null; readonly code: string | null };
  constructor(code: ErrorCode, error: OpenAIError) {
    super(code, error.body.error.message);
    this.openai = { param: error.body.error.param, code: error.body.error.code };
  }
}

/**
 * THE mapping for /v1/*: status and Retry-After are kept, so the SDK's class and its retry
 * advice match what /complete would answer. `param` overrides the table's default (or null).
 */
export function fromGatewayError(err: GatewayErrorLike, param?: string | null): OpenAIError {
  // A code outside the catalogue (a test's, a future one) falls back on its status.
  const mapping = (MAPPINGS as Readonly<Record<string, Mapping | undefined>>)[err.code];
  const given = err.openai;
  return openAIError(
    err.statusCode,
    mapping?.type ?? typeForStatus(err.statusCode),
    err.message,
    param !== undefined ? param : given !== undefined ? given.param : (mapping?.param ?? null),
    given !== undefined ? given.code : (mapping?.code ?? err.code.toLowerCase()),
    err.retryAfterSeconds,
  );
}
