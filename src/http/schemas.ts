/**
 * JSON schemas of every route: they drive validation and serialization, openapi.yaml describes
 * them (test/http/openapi.test.ts holds the two equal), and the handlers' request body types are
 * derived from them (json-schema-to-ts's FromSchema), so the three have one source.
 */
import type { FromSchema } from 'json-schema-to-ts';
import { ERROR_CODES, ERRORS, type ErrorCode } from '../contract/errors.js';
import { MODEL_VARIANTS } from '../contract/model.js';

/** OpenAI's API and Hugging Face TGI both cap stop sequences at 4. */
export const MAX_STOP_SEQUENCES = 4;
export const MAX_STOP_LENGTH = 256;

export const errorBodySchema = {
  $id: 'ErrorBody',
  type: 'object',
  additionalProperties: false,
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: ERROR_CODES },
        message: { type: 'string' },
      },
    },
  },
} as const;

export function completeBodySchema(maxNewTokensLimit: number) {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['prompt'],
    properties: {
      prompt: { type: 'string', minLength: 1 },
      max_new_tokens: { type: 'integer', minimum: 1, maximum: maxNewTokensLimit },
      stop: {
        anyOf: [
          { type: 'string', minLength: 1, maxLength: MAX_STOP_LENGTH },
          {
            type: 'array',
            maxItems: MAX_STOP_SEQUENCES,
            items: { type: 'string', minLength: 1, maxLength: MAX_STOP_LENGTH },
          },
        ],
      },
      stream: { type: 'boolean' },
    },
  } as const;
}

export type CompleteBody = FromSchema<ReturnType<typeof completeBodySchema>>;

const tokenSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['index', 'id', 'text', 'logprob', 'backend_step_ms', 'since_previous_ms'],
  properties: {
    index: { type: 'integer' },
    id: { type: 'integer' },
    text: { type: 'string' },
    logprob: { type: 'number' },
    backend_step_ms: { type: 'number' },
    since_previous_ms: { type: 'number' },
  },
} as const;
export const tokenEventSchema = tokenSchema;

const usageSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['prompt_tokens', 'completion_tokens', 'total_tokens'],
  properties: {
    prompt_tokens: { type: 'integer' },
    completion_tokens: { type: 'integer' },
    total_tokens: { type: 'integer' },
  },
} as const;

const timingsSchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'tokenize_ms',
    'queue_ms',
    'time_to_first_token_ms',
    'time_per_output_token_ms',
    'backend_ms',
    'total_ms',
    'tokens_per_second',
  ],
  properties: {
    tokenize_ms: { type: 'number' },
    queue_ms: { type: 'number' },
    time_to_first_token_ms: { type: 'number' },
    time_per_output_token_ms: { type: ['number', 'null'] },
    backend_ms: { type: 'number' },
    total_ms: { type: 'number' },
    tokens_per_second: { type: 'number' },
  },
} as const;

const completionFields = {
  id: { type: 'string' },
  object: { type: 'string', enum: ['text_completion'] },
  created: { type: 'integer' },
  model: { type: 'string' },
  text: { type: 'string' },
  finish_reason: { type: 'string', enum: ['length', 'eos', 'stop'] },
  usage: usageSchema,
  timings: timingsSchema,
} as const;
const completionRequired = [
  'id',
  'object',
  'created',
  'model',
  'text',
  'finish_reason',
  'usage',
  'timings',
] as const;

export const completionSchema = {
  type: 'object',
  additionalProperties: false,
  required: [...completionRequired, 'tokens'],
  properties: { ...completionFields, tokens: { type: 'array', items: tokenSchema } },
} as const;

/** The SSE `done` event: the completion without the tokens, which were streamed one by one. */
export const doneEventSchema = {
  type: 'object',
  additionalProperties: false,
  required: completionRequired,
  properties: completionFields,
} as const;

export const tokenizeBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['text'],
  properties: { text: { type: 'string' } },
} as const;

export type TokenizeBody = FromSchema<typeof tokenizeBodySchema>;

export const tokenizeResponseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['ids', 'tokens', 'count'],
  properties: {
    ids: { type: 'array', items: { type: 'integer' } },
    tokens: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'text'],
        properties: { id: { type: 'integer' }, text: { type: 'string' } },
      },
    },
    count: { type: 'integer' },
  },
} as const;

export const infoResponseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'version', 'auth', 'model', 'backend', 'limits'],
  properties: {
    name: { type: 'string' },
    version: { type: 'string' },
    auth: {
      type: 'object',
      additionalProperties: false,
      required: ['required'],
      properties: { required: { type: 'boolean' } },
    },
    model: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'variant', 'context_length', 'vocab_size', 'random_weights'],
      properties: {
        name: { type: 'string' },
        variant: { type: 'string', enum: [...MODEL_VARIANTS] },
        context_length: { type: 'integer' },
        vocab_size: { type: 'integer' },
        random_weights: { type: 'boolean' },
        notice: { type: 'string' },
      },
    },
    backend: {
      type: 'object',
      additionalProperties: false,
      required: ['kind', 'max_batch_size', 'details'],
      properties: {
        kind: { type: 'string', enum: ['embedded', 'triton'] },
        max_batch_size: { type: 'integer' },
        details: { type: 'object', additionalProperties: true },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      required: [
        'max_new_tokens',
        'default_max_new_tokens',
        'max_stop_sequences',
        'max_batch_size',
        'max_queue',
        'body_limit_bytes',
        'rate_limit_max',
        'rate_limit_window_ms',
      ],
      properties: {
        max_new_tokens: { type: 'integer' },
        default_max_new_tokens: { type: 'integer' },
        max_stop_sequences: { type: 'integer' },
        max_batch_size: { type: 'integer' },
        max_queue: { type: 'integer' },
        body_limit_bytes: { type: 'integer' },
        rate_limit_max: { type: 'integer' },
        rate_limit_window_ms: { type: 'integer' },
      },
    },
  },
} as const;

export const healthSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['status'],
  properties: { status: { type: 'string', enum: ['ok', 'ready'] } },
} as const;

/** Response schemas for the error statuses a route can answer with. */
export function errorResponses(codes: readonly ErrorCode[]): Record<number, { $ref: string }> {
  const out: Record<number, { $ref: string }> = {};
  for (const code of codes) out[ERRORS[code].status] = { $ref: 'ErrorBody#' };
  return out;
}

/** The same for /v1/* routes, whose errors have OpenAI's body (src/http/error-reply.ts). */
export function openAIErrorResponses(
  codes: readonly ErrorCode[],
): Record<number, { $ref: string }> {
  const out: Record<number, { $ref: string }> = {};
  for (const code of codes) out[ERRORS[code].status] = { $ref: 'OpenAIErrorBody#' };
  return out;
}
