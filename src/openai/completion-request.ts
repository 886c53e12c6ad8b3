/**
 * The body of POST /v1/completions: its JSON schema (for the OpenAPI document) and the validator
 * the route calls, which answers every refusal with OpenAI's error body naming the parameter.
 *
 * Parameters follow OpenAI's completions API (openai-node src/resources/completions.ts,
 * CompletionCreateParamsBase). Every nullable parameter treats null as omitted, as OpenAI does.
 * The gateway decodes greedily: the sampling parameters are accepted only with the value that
 * means greedy (temperature 0, top_p 1, n 1, best_of 1, penalties 0, no logit_bias, no suffix).
 * Any other value is refused rather than ignored, because an ignored temperature would hand the
 * client a greedy answer while it believes it sampled.
 */
import { type OpenAIError, openAIError } from './errors.js';

/** OpenAI's default when max_tokens is omitted. */
export const DEFAULT_MAX_TOKENS = 16;
/** OpenAI caps stop sequences at 4. */
export const MAX_STOP_SEQUENCES = 4;
export const MAX_STOP_LENGTH = 256;
/** OpenAI's cap for `logprobs` on the completions API. */
export const MAX_LOGPROBS = 5;
/** Prompts in one request; each becomes one choice in the same batch. */
export const DEFAULT_MAX_PROMPTS = 16;
export const MAX_USER_LENGTH = 256;

/** One prompt: text to tokenize, or token ids as sent. */
export type PromptInput =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'tokens'; readonly ids: readonly number[] };

/** The request after validation, with defaults applied. */
export interface CompletionRequest {
  readonly model: string;
  /** At least one; choice i answers prompts[i]. */
  readonly prompts: readonly PromptInput[];
  readonly maxTokens: number;
  /** True when the client sent no max_tokens: the route may shrink it to fit the context. */
  readonly maxTokensDefaulted: boolean;
  readonly stop: readonly string[];
  readonly stream: boolean;
  /** stream_options.include_usage: a last chunk with usage and no choices. */
  readonly includeUsage: boolean;
  /** null: no logprobs; 0..5: the chosen token's logprob plus up to that many alternatives. */
  readonly logprobs: number | null;
  readonly echo: boolean;
  /** Opaque end-user id; fit for logs, not for decisions. */
  readonly user: string | undefined;
  /** Accepted and unused: greedy decoding is deterministic without one. */
  readonly seed: number | undefined;
}

export type CompletionRequestResult =
  | { readonly ok: true; readonly request: CompletionRequest }
  | { readonly ok: false; readonly error: OpenAIError };

export interface CompletionRequestLimits {
  /** Largest max_tokens accepted (the gateway's max_new_tokens limit). */
  readonly maxTokensLimit: number;
  /** Token ids in a prompt must be below this (50257 for GPT-2). */
  readonly vocabSize: number;
  readonly maxPrompts?: number;
  /** max_tokens when the body omits it (the gateway's DEFAULT_MAX_NEW_TOKENS; else OpenAI's 16). */
  readonly defaultMaxTokens?: number;
}

/** The values that mean greedy, per parameter; the message says why nothing else is accepted. */
const GREEDY_ONLY = {
  temperature: 0,
  top_p: 1,
  n: 1,
  best_of: 1,
  presence_penalty: 0,
  frequency_penalty: 0,
} as const;

const nullable = <S extends object>(schema: S) => ({ anyOf: [schema, { type: 'null' }] as const });
const stopString = { type: 'string', minLength: 1, maxLength: MAX_STOP_LENGTH } as const;
const tokenIds = (vocabSize: number) =>
  ({
    type: 'array',
    minItems: 1,
    items: { type: 'integer', minimum: 0, maximum: vocabSize - 1 },
  }) as const;

/**
 * JSON schema of the body, for openapi.yaml and for a route that wants fastify to check shapes
 * first. validateCompletionRequest checks the same rules and names the parameter at fault, which
 * fastify's schema errors do not do in OpenAI's shape; a test holds the two to one field list.
 */
export function completionRequestSchema(limits: CompletionRequestLimits) {
  const maxPrompts = limits.maxPrompts ?? DEFAULT_MAX_PROMPTS;
  return {
    type: 'object',
    additionalProperties: false,
    required: ['model', 'prompt'],
    properties: {
      model: { type: 'string', minLength: 1 },
      prompt: {
        anyOf: [
          { type: 'string', minLength: 1 },
          {
            type: 'array',
            minItems: 1,
            maxItems: maxPrompts,
            items: { type: 'string', minLength: 1 },
          },
          tokenIds(limits.vocabSize),
          {
            type: 'array',
            minItems: 1,
            maxItems: maxPrompts,
            items: tokenIds(limits.vocabSize),
          },
        ],
      },
      max_tokens: nullable({ type: 'integer', minimum: 1, maximum: limits.maxTokensLimit }),
      stop: nullable({
        anyOf: [stopString, { type: 'array', maxItems: MAX_STOP_SEQUENCES, items: stopString }],
      }),
      stream: nullable({ type: 'boolean' }),
      stream_options: nullable({
        type: 'object',
        additionalProperties: false,
        properties: {
          include_usage: nullable({ type: 'boolean' }),
          include_obfuscation: nullable({ type: 'boolean', enum: [false] }),
        },
      }),
      logprobs: nullable({ type: 'integer', minimum: 0, maximum: MAX_LOGPROBS }),
      echo: nullable({ type: 'boolean' }),
      user: nullable({ type: 'string', maxLength: MAX_USER_LENGTH }),
      seed: nullable({ type: 'integer' }),
      temperature: nullable({ type: 'number', enum: [GREEDY_ONLY.temperature] }),
      top_p: nullable({ type: 'number', enum: [GREEDY_ONLY.top_p] }),
      n: nullable({ type: 'integer', enum: [GREEDY_ONLY.n] }),
      best_of: nullable({ type: 'integer', enum: [GREEDY_ONLY.best_of] }),
      presence_penalty: nullable({ type: 'number', enum: [GREEDY_ONLY.presence_penalty] }),
      frequency_penalty: nullable({ type: 'number', enum: [GREEDY_ONLY.frequency_penalty] }),
      logit_bias: nullable({ type: 'object', maxProperties: 0 }),
      suffix: { type: 'null' },
    },
  } as const;
}

/** Every parameter the body may carry; anything else is refused by name. */
export const COMPLETION_PARAMETERS = [
  'model',
  'prompt',
  'max_tokens',
  'stop',
  'stream',
  'stream_options',
  'logprobs',
  'echo',
  'user',
  'seed',
  'temperature',
  'top_p',
  'n',
  'best_of',
  'presence_penalty',
  'frequency_penalty',
  'logit_bias',
  'suffix',
] as const;
const KNOWN = new Set<string>(COMPLETION_PARAMETERS);

/** Thrown inside the validator only; turned into the result at the end. */
class Refusal extends Error {
  constructor(
    readonly param: string | null,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const refuse = (param: string | null, code: string, message: string): never => {
  throw new Refusal(param, code, message);
};

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function wrongType(param: string, expected: string, value: unknown): never {
  return refuse(param, 'invalid_type', `\`${param}\` must be ${expected}, not ${describe(value)}`);
}

function optionalBoolean(body: Record<string, unknown>, param: string): boolean | undefined {
  const value = body[param];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') return wrongType(param, 'a boolean', value);
  return value;
}

function integerIn(param: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    return wrongType(param, 'an integer', value);
  }
  if (value < min) {
    return refuse(param, 'integer_below_min_value', `\`${param}\` must be at least ${min}`);
  }
  if (value > max) {
    return refuse(param, 'integer_above_max_value', `\`${param}\` must be at most ${max}`);
  }
  return value;
}

function parseTokenIds(param: string, value: unknown[], vocabSize: number): number[] {
  if (value.length === 0) return refuse(param, 'invalid_value', `\`${param}\` has no token ids`);
  for (const [i, id] of value.entries()) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocabSize) {
      return refuse(
        param,
        'invalid_value',
        `\`${param}[${i}]\` must be a token id, an integer from 0 to ${vocabSize - 1}`,
      );
    }
  }
  return value as number[];
}

function parsePrompts(value: unknown, limits: CompletionRequestLimits): PromptInput[] {
  const maxPrompts = limits.maxPrompts ?? DEFAULT_MAX_PROMPTS;
  const expected =
    'a string, an array of strings, an array of token ids or an array of such arrays';
  if (value === undefined || value === null) {
    return refuse('prompt', 'missing_required_parameter', '`prompt` is required');
  }
  if (typeof value === 'string') {
    if (value === '') return refuse('prompt', 'invalid_value', '`prompt` must not be empty');
    return [{ kind: 'text', text: value }];
  }
  if (!Array.isArray(value)) return wrongType('prompt', expected, value);
  if (value.length === 0) return refuse('prompt', 'invalid_value', '`prompt` must not be empty');
  const first: unknown = value[0];
  if (typeof first === 'number') {
    return [{ kind: 'tokens', ids: parseTokenIds('prompt', value, limits.vocabSize) }];
  }
  if (value.length > maxPrompts) {
    return refuse(
      'prompt',
      'array_above_max_length',
      `\`prompt\` holds ${value.length} prompts; at most ${maxPrompts} are accepted in one request`,
    );
  }
  if (typeof first === 'string') {
    return value.map((p, i): PromptInput => {
      if (typeof p !== 'string') return wrongType(`prompt[${i}]`, 'a string like the first', p);
      if (p === '') return refuse('prompt', 'invalid_value', `\`prompt[${i}]\` must not be empty`);
      return { kind: 'text', text: p };
    });
  }
  if (Array.isArray(first)) {
    return value.map((p, i): PromptInput => {
      if (!Array.isArray(p)) return wrongType(`prompt[${i}]`, 'an array of token ids', p);
      return { kind: 'tokens', ids: parseTokenIds(`prompt[${i}]`, p, limits.vocabSize) };
    });
  }
  return wrongType('prompt', expected, value);
}

/**
 * Length in characters (code points), what JSON Schema's maxLength counts and /complete's ajv
 * checks: String#length counts UTF-16 units, so an emoji would count twice. The strings are
 * well-formed here (the JSON parser refuses lone surrogates).
 */
function characters(s: string): number {
  let count = 0;
  for (const _ of s) count += 1;
  return count;
}

function parseStop(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  const one = (param: string, s: unknown): string => {
    if (typeof s !== 'string') return wrongType(param, 'a string', s);
    if (s === '') return refuse('stop', 'invalid_value', `\`${param}\` must not be empty`);
    if (characters(s) > MAX_STOP_LENGTH) {
      return refuse(
        'stop',
        'string_above_max_length',
        `\`${param}\` is longer than ${MAX_STOP_LENGTH} characters`,
      );
    }
    return s;
  };
  if (typeof value === 'string') return [one('stop', value)];
  if (!Array.isArray(value)) return wrongType('stop', 'a string or an array of strings', value);
  if (value.length > MAX_STOP_SEQUENCES) {
    return refuse(
      'stop',
      'array_above_max_length',
      `\`stop\` holds ${value.length} sequences; at most ${MAX_STOP_SEQUENCES} are accepted`,
    );
  }
  return value.map((s, i) => one(`stop[${i}]`, s));
}

function parseStreamOptions(value: unknown, stream: boolean): boolean {
  if (value === undefined || value === null) return false;
  if (!isObject(value)) return wrongType('stream_options', 'an object', value);
  // OpenAI refuses stream_options without stream; accepting it would promise a usage chunk
  // that a non-streamed answer never sends.
  if (!stream) {
    return refuse(
      'stream_options',
      'invalid_value',
      '`stream_options` is only allowed when `stream` is true',
    );
  }
  for (const key of Object.keys(value)) {
    if (key !== 'include_usage' && key !== 'include_obfuscation') {
      return refuse(
        `stream_options.${key}`,
        'unknown_parameter',
        `\`stream_options.${key}\` is not an option this gateway knows; use include_usage`,
      );
    }
  }
  const obfuscation = optionalBoolean(value, 'include_obfuscation');
  if (obfuscation === true) {
    return refuse(
      'stream_options.include_obfuscation',
      'unsupported_value',
      '`stream_options.include_obfuscation` is not supported: this gateway does not pad chunks; ' +
        'omit it or send false',
    );
  }
  const usage = value.include_usage;
  if (usage === undefined || usage === null) return false;
  if (typeof usage !== 'boolean') {
    return wrongType('stream_options.include_usage', 'a boolean', usage);
  }
  return usage;
}

function checkGreedyOnly(body: Record<string, unknown>): void {
  for (const [param, greedy] of Object.entries(GREEDY_ONLY)) {
    const value = body[param];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'number') wrongType(param, 'a number', value);
    if (value !== greedy) {
      refuse(
        param,
        'unsupported_value',
        `\`${param}\` must be ${greedy} or omitted: this gateway decodes greedily (always the ` +
          `most likely token) and refuses a value it would otherwise have to ignore`,
      );
    }
  }
  const bias = body.logit_bias;
  if (bias !== undefined && bias !== null) {
    if (!isObject(bias)) wrongType('logit_bias', 'an object', bias);
    if (Object.keys(bias).length > 0) {
      refuse(
        'logit_bias',
        'unsupported_value',
        '`logit_bias` must be empty or omitted: this gateway decodes greedily without biases',
      );
    }
  }
  if (body.suffix !== undefined && body.suffix !== null) {
    refuse(
      'suffix',
      'unsupported_value',
      '`suffix` must be null or omitted: GPT-2 cannot insert text before a suffix',
    );
  }
}

function parse(body: unknown, limits: CompletionRequestLimits): CompletionRequest {
  if (!isObject(body)) {
    return refuse(null, 'invalid_type', `the body must be a JSON object, not ${describe(body)}`);
  }
  for (const key of Object.keys(body)) {
    if (!KNOWN.has(key)) {
      refuse(
        key,
        'unknown_parameter',
        `\`${key}\` is not a parameter of /v1/completions; remove it`,
      );
    }
  }
  const model = body.model;
  if (model === undefined || model === null) {
    return refuse('model', 'missing_required_parameter', '`model` is required');
  }
  if (typeof model !== 'string') return wrongType('model', 'a string', model);
  if (model === '') return refuse('model', 'invalid_value', '`model` must not be empty');

  const prompts = parsePrompts(body.prompt, limits);
  const rawMax = body.max_tokens;
  const maxTokensDefaulted = rawMax === undefined || rawMax === null;
  const maxTokens = maxTokensDefaulted
    ? Math.min(limits.defaultMaxTokens ?? DEFAULT_MAX_TOKENS, limits.maxTokensLimit)
    : integerIn('max_tokens', rawMax, 1, limits.maxTokensLimit);
  const stop = parseStop(body.stop);
  const stream = optionalBoolean(body, 'stream') ?? false;
  const includeUsage = parseStreamOptions(body.stream_options, stream);
  const rawLogprobs = body.logprobs;
  const logprobs =
    rawLogprobs === undefined || rawLogprobs === null
      ? null
      : integerIn('logprobs', rawLogprobs, 0, MAX_LOGPROBS);
  const echo = optionalBoolean(body, 'echo') ?? false;

  const rawUser = body.user;
  let user: string | undefined;
  if (rawUser !== undefined && rawUser !== null) {
    if (typeof rawUser !== 'string') return wrongType('user', 'a string', rawUser);
    if (characters(rawUser) > MAX_USER_LENGTH) {
      return refuse(
        'user',
        'string_above_max_length',
        `\`user\` is longer than ${MAX_USER_LENGTH} characters`,
      );
    }
    user = rawUser;
  }
  const rawSeed = body.seed;
  const seed =
    rawSeed === undefined || rawSeed === null
      ? undefined
      : integerIn('seed', rawSeed, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);

  checkGreedyOnly(body);
  return {
    model,
    prompts,
    maxTokens,
    maxTokensDefaulted,
    stop,
    stream,
    includeUsage,
    logprobs,
    echo,
    user,
    seed,
  };
}

/**
 * Checks a parsed JSON body; never throws. A refusal is a 400 in OpenAI's shape whose `param`
 * names the parameter at fault (`prompt[2]`-style indexes stay in the message, `param` is the
 * top-level name, except inside stream_options).
 */
export function validateCompletionRequest(
  body: unknown,
  limits: CompletionRequestLimits,
): CompletionRequestResult {
  try {
    return { ok: true, request: parse(body, limits) };
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    const param = err.param?.replace(/\[\d+\]$/, '') ?? null;
    return {
      ok: false,
      error: openAIError(400, 'invalid_request_error', err.message, param, err.code),
    };
  }
}

export interface ContextCheck {
  /** Tokens of this prompt after tokenization (or as sent). */
  readonly promptTokens: number;
  readonly maxTokens: number;
  readonly maxTokensDefaulted: boolean;
  /** The model's context (1024 for GPT-2). */
  readonly contextLength: number;
  /** Which prompt, for the message when the request has several. */
  readonly promptIndex?: number;
  readonly promptCount?: number;
}

/**
 * Prompt plus max_tokens must fit the context; nothing is truncated. An omitted max_tokens is a
 * default, not a demand: it shrinks to what is left (as /complete's omitted max_new_tokens does).
 * Returns the max_tokens to generate with, or OpenAI's 400 context_length_exceeded.
 */
export function fitContext(
  check: ContextCheck,
): { ok: true; maxTokens: number } | { ok: false; error: OpenAIError } {
  const { promptTokens, contextLength } = check;
  const which =
    (check.promptCount ?? 1) > 1 && check.promptIndex !== undefined
      ? ` (prompt[${check.promptIndex}])`
      : '';
  const room = contextLength - promptTokens;
  if (check.maxTokensDefaulted) {
    if (room >= 1) return { ok: true, maxTokens: Math.min(check.maxTokens, room) };
    return {
      ok: false,
      error: openAIError(
        400,
        'invalid_request_error',
        `the prompt${which} is ${promptTokens} tokens, which leaves no room for a new token in ` +
          `the model's context of ${contextLength}; shorten the prompt`,
        'prompt',
        'context_length_exceeded',
      ),
    };
  }
  if (check.maxTokens <= room) return { ok: true, maxTokens: check.maxTokens };
  return {
    ok: false,
    error: openAIError(
      400,
      'invalid_request_error',
      `the model's context is ${contextLength} tokens, but ${promptTokens + check.maxTokens} ` +
        `were requested (${promptTokens} in the prompt${which}, ${check.maxTokens} for the ` +
        'completion); shorten the prompt or lower max_tokens',
      'prompt',
      'context_length_exceeded',
    ),
  };
}
