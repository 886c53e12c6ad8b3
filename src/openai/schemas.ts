/**
 * JSON schemas of the /v1/* answers: they serialize the routes' responses and openapi.yaml
 * describes them (test/http/openapi.test.ts holds the two equal). The shapes are OpenAI's
 * (openai-node src/resources/completions.ts and models.ts, src/core/error.ts) plus the gateway's
 * `gateway_` timing fields that src/openai/completion-response.ts documents.
 */

export const openAIErrorBodySchema = {
  $id: 'OpenAIErrorBody',
  type: 'object',
  additionalProperties: false,
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      additionalProperties: false,
      required: ['message', 'type', 'param', 'code'],
      properties: {
        message: { type: 'string' },
        type: { type: 'string' },
        param: { type: ['string', 'null'] },
        code: { type: ['string', 'null'] },
      },
    },
  },
} as const;

export const openAIModelSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'object', 'created', 'owned_by'],
  properties: {
    id: { type: 'string' },
    object: { type: 'string', enum: ['model'] },
    created: { type: 'integer' },
    owned_by: { type: 'string' },
  },
} as const;

export const openAIModelListSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['object', 'data'],
  properties: {
    object: { type: 'string', enum: ['list'] },
    data: { type: 'array', items: openAIModelSchema },
  },
} as const;

const logprobsSchema = {
  anyOf: [
    { type: 'null' },
    {
      type: 'object',
      additionalProperties: false,
      required: ['tokens', 'token_logprobs', 'top_logprobs', 'text_offset'],
      properties: {
        tokens: { type: 'array', items: { type: 'string' } },
        token_logprobs: { type: 'array', items: { type: ['number', 'null'] } },
        top_logprobs: {
          anyOf: [
            { type: 'null' },
            {
              type: 'array',
              items: {
                anyOf: [
                  { type: 'null' },
                  { type: 'object', additionalProperties: { type: 'number' } },
                ],
              },
            },
          ],
        },
        text_offset: { type: 'array', items: { type: 'integer' } },
      },
    },
  ],
} as const;

const gatewayTimingsSchema = {
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

const gatewayTokenSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['index', 'id', 'backend_step_ms', 'since_previous_ms'],
  properties: {
    index: { type: 'integer' },
    id: { type: 'integer' },
    backend_step_ms: { type: 'number' },
    since_previous_ms: { type: 'number' },
  },
} as const;

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

/** The non-streamed answer of POST /v1/completions. */
export const openAICompletionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'object', 'created', 'model', 'choices', 'usage'],
  properties: {
    id: { type: 'string' },
    object: { type: 'string', enum: ['text_completion'] },
    created: { type: 'integer' },
    model: { type: 'string' },
    choices: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: [
          'index',
          'text',
          'logprobs',
          'finish_reason',
          'gateway_timings',
          'gateway_tokens',
        ],
        properties: {
          index: { type: 'integer' },
          text: { type: 'string' },
          logprobs: logprobsSchema,
          finish_reason: { type: 'string', enum: ['stop', 'length'] },
          gateway_timings: gatewayTimingsSchema,
          gateway_tokens: { type: 'array', items: gatewayTokenSchema },
        },
      },
    },
    usage: usageSchema,
  },
} as const;

/** One `data:` chunk of a streamed answer (documented; chunks are written, not serialized). */
export const openAICompletionChunkSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'object', 'created', 'model', 'choices'],
  properties: {
    id: { type: 'string' },
    object: { type: 'string', enum: ['text_completion'] },
    created: { type: 'integer' },
    model: { type: 'string' },
    choices: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['index', 'text', 'logprobs', 'finish_reason'],
        properties: {
          index: { type: 'integer' },
          text: { type: 'string' },
          logprobs: logprobsSchema,
          finish_reason: {
            anyOf: [{ type: 'null' }, { type: 'string', enum: ['stop', 'length'] }],
          },
          gateway_token: gatewayTokenSchema,
          gateway_timings: gatewayTimingsSchema,
        },
      },
    },
    usage: { anyOf: [{ type: 'null' }, usageSchema] },
  },
} as const;
