import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ERRORS, type ErrorCode } from '../../src/contract/errors.js';
import {
  chatCompletionsNotSupported,
  checkModel,
  fromGatewayError,
  modelNotFound,
} from '../../src/openai/errors.js';

test("an unknown model is OpenAI's 404 model_not_found, word for word in shape", () => {
  assert.deepEqual(modelNotFound('gpt-4'), {
    status: 404,
    body: {
      error: {
        message: 'The model `gpt-4` does not exist',
        type: 'invalid_request_error',
        param: 'model',
        code: 'model_not_found',
      },
    },
  });
  assert.equal(checkModel('gpt2', ['gpt2']), undefined);
  assert.deepEqual(checkModel('GPT2', ['gpt2']), modelNotFound('GPT2'));
});

test('/v1/chat/completions is a 404 that names /v1/completions', () => {
  const error = chatCompletionsNotSupported();
  assert.equal(error.status, 404);
  assert.match(error.body.error.message, /GPT-2 has no chat format.*POST \/v1\/completions/);
});

test('gateway errors keep their status and Retry-After and get OpenAI type, code and param', () => {
  const at = (code: ErrorCode, retryAfterSeconds?: number) =>
    fromGatewayError({
      code,
      statusCode: ERRORS[code].status,
      message: `m-${code}`,
      retryAfterSeconds,
    });
  assert.deepEqual(at('CONTEXT_LENGTH_EXCEEDED'), {
    status: 400,
    body: {
      error: {
        message: 'm-CONTEXT_LENGTH_EXCEEDED',
        type: 'invalid_request_error',
        param: 'prompt',
        code: 'context_length_exceeded',
      },
    },
  });
  assert.deepEqual(at('RATE_LIMITED', 30), {
    status: 429,
    body: {
      error: {
        message: 'm-RATE_LIMITED',
        type: 'requests',
        param: null,
        code: 'rate_limit_exceeded',
      },
    },
    retryAfterSeconds: 30,
  });
  assert.deepEqual(at('QUEUE_FULL', 2), {
    status: 503,
    body: {
      error: { message: 'm-QUEUE_FULL', type: 'server_error', param: null, code: 'queue_full' },
    },
    retryAfterSeconds: 2,
  });
  assert.equal(at('BACKEND_TIMEOUT').status, 504);
  assert.equal(at('BACKEND_TIMEOUT').body.error.code, 'backend_timeout');
  assert.equal(at('BACKEND_ERROR').status, 502);
  assert.equal(at('INVALID_REQUEST').body.error.code, 'invalid_request');
  assert.equal(at('NOT_FOUND').body.error.code, 'unknown_url');
});

test('every code the gateway has today maps to a type that fits its status', () => {
  for (const [code, { status }] of Object.entries(ERRORS)) {
    const error = fromGatewayError({ code, statusCode: status, message: 'x' });
    assert.equal(error.status, status, code);
    const expected =
      status === 429 ? 'requests' : status >= 500 ? 'server_error' : 'invalid_request_error';
    assert.equal(error.body.error.type, expected, code);
    assert.match(error.body.error.code ?? '', /^[a-z][a-z0-9_]*$/, code);
  }
});

test("UNAUTHORIZED (401) is OpenAI's invalid_api_key; an unknown future code falls back on its status", () => {
  assert.deepEqual(
    fromGatewayError({ code: 'UNAUTHORIZED', statusCode: 401, message: 'no key' }).body,
    {
      error: {
        message: 'no key',
        type: 'invalid_request_error',
        param: null,
        code: 'invalid_api_key',
      },
    },
  );
  assert.deepEqual(
    fromGatewayError({ code: 'SOMETHING_NEW', statusCode: 503, message: 'later' }).body.error,
    { message: 'later', type: 'server_error', param: null, code: 'something_new' },
  );
});

test('an explicit param overrides the default, null included', () => {
  const err = { code: 'INVALID_REQUEST', statusCode: 400, message: 'bad' };
  assert.equal(fromGatewayError(err, 'stop').body.error.param, 'stop');
  const ctx = { code: 'CONTEXT_LENGTH_EXCEEDED', statusCode: 400, message: 'long' };
  assert.equal(fromGatewayError(ctx, null).body.error.param, null);
});
