/** Upstream faults as the client sees them: status, headers and the full error body. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../../src/app.js';
import { TritonBackend } from '../../../src/backends/triton/triton-backend.js';
import { loadGpt2Tokenizer } from '../../../src/tokenizer/gpt2-tokenizer.js';
import { testConfig } from '../../support/app.js';
import { type Fault, ReplayTriton } from './replay-triton.js';

let triton: ReplayTriton;
let backend: TritonBackend;
let app: FastifyInstance;

before(async () => {
  triton = await ReplayTriton.start();
  backend = new TritonBackend({
    url: triton.url,
    modelName: 'gpt2',
    wire: 'binary',
    timeoutMs: 300,
    connections: 2,
    healthIntervalMs: 0,
    startupTimeoutMs: 0,
    breakerFailures: 100,
  });
  app = await buildApp(testConfig(), { backend, tokenizer: loadGpt2Tokenizer() });
  await backend.init();
});
after(async () => {
  await app.close();
  await backend.close();
  await triton.close();
});

const cases: [string, Fault, number, string, string, string | undefined][] = [
  [
    'an upstream that stalls',
    'stall-before-headers',
    504,
    'BACKEND_TIMEOUT',
    'the model server did not answer in time; retry later',
    undefined,
  ],
  [
    'an upstream that resets',
    'reset',
    503,
    'BACKEND_UNAVAILABLE',
    'the model server cannot be reached; retry later',
    '1',
  ],
  [
    'an upstream {"error"} (400, 21.08)',
    {
      status: 400,
      body: "{\"error\":\"inference input 'input_ids:0' data-type is 'INT64', but model 'gpt2' expects 'INT32'\"}",
    },
    502,
    'BACKEND_ERROR',
    'the model server failed to run the model',
    undefined,
  ],
  [
    'an upstream {"error"} (500)',
    { status: 500, body: '{"error":"onnx runtime error 2"}' },
    502,
    'BACKEND_ERROR',
    'the model server failed to run the model',
    undefined,
  ],
  [
    'malformed JSON',
    'malformed-json',
    502,
    'BACKEND_BAD_RESPONSE',
    'the model server returned an answer the gateway cannot read',
    undefined,
  ],
  [
    'a wrong Inference-Header-Content-Length',
    'wrong-header-length',
    502,
    'BACKEND_BAD_RESPONSE',
    'the model server returned an answer the gateway cannot read',
    undefined,
  ],
  [
    'a full upstream queue (503)',
    {
      status: 503,
      body: '{"error":"Exceeds maximum queue size"}',
      headers: { 'retry-after': '3' },
    },
    503,
    'BACKEND_OVERLOADED',
    'the model server is overloaded; retry later',
    '3',
  ],
];

describe('upstream failures → client status', () => {
  for (const [what, fault, status, code, message, retryAfter] of cases) {
    it(`${what} → ${status} ${code}`, async () => {
      triton.faults.push(fault);
      const res = await app.inject({
        method: 'POST',
        url: '/complete',
        payload: { prompt: 'Hello world', max_new_tokens: 2 },
      });
      assert.equal(res.statusCode, status);
      assert.deepEqual(res.json(), { error: { code, message } });
      assert.equal(res.headers['retry-after'], retryAfter);
      assert.doesNotMatch(res.body, /data-type|onnx runtime/, 'the upstream message is not leaked');
    });
  }
});
