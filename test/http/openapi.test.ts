/**
 * Holds the implementation to openapi.yaml: the same routes, the same schemas (descriptions
 * aside), and the same error codes per route and status; and every record of the error catalogue
 * complete.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { parse } from 'yaml';
import {
  ERROR_CODES,
  ERRORS,
  type ErrorCode,
  REJECTION_REASONS,
} from '../../src/contract/errors.js';
import { COMPLETE_ERROR_CODES } from '../../src/http/routes/complete.js';
import {
  OPENAI_CHAT_ERROR_CODES,
  OPENAI_COMPLETIONS_ERROR_CODES,
} from '../../src/http/routes/openai-completions.js';
import {
  OPENAI_MODEL_ERROR_CODES,
  OPENAI_MODELS_ERROR_CODES,
} from '../../src/http/routes/openai-models.js';
import { INFO_ERROR_CODES } from '../../src/http/routes/probes.js';
import { TOKENIZE_ERROR_CODES } from '../../src/http/routes/tokenize.js';
import * as schemas from '../../src/http/schemas.js';
import { completionRequestSchema } from '../../src/openai/completion-request.js';
import * as openaiSchemas from '../../src/openai/schemas.js';
import { toyApp } from '../support/app.js';

interface Response {
  'x-error-codes'?: string[];
}
interface Doc {
  paths: Record<string, Record<string, { responses: Record<string, Response> }>>;
  components: { schemas: Record<string, unknown> };
  'x-other-error-codes': { codes: Record<string, number> };
}

const doc = parse(readFileSync(new URL('../../../openapi.yaml', import.meta.url), 'utf8')) as Doc;
let app: FastifyInstance;
before(async () => {
  ({ app } = await toyApp({ RATE_LIMIT_MAX: '1000' }));
});
after(() => app.close());

/** Schemas as the code holds them: no descriptions, no $id. */
function bare(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (key, v: unknown) =>
      key === 'description' || key === '$id' ? undefined : v,
    ),
  );
}

test('every route of the app is documented, and every documented route exists', () => {
  const routes = new Set<string>();
  // printRoutes draws a tree (4 columns per level): with GET / registered, every other path is
  // a child of `/`, so a path is its ancestors' segments joined.
  const ancestors: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^((?:[│ ] {3})*)[└├]── (\S+)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (match === null) continue;
    ancestors.length = match[1]!.length / 4;
    ancestors.push(match[2]!);
    const path = ancestors.join('').replace(/^(?!\/)/, '/');
    for (const method of match[3]?.split(', ') ?? []) {
      if (method !== 'HEAD') routes.add(`${method} ${path}`);
    }
  }
  const documented = new Set<string>();
  for (const [path, ops] of Object.entries(doc.paths)) {
    // OpenAPI writes a path parameter {id}, fastify :id.
    const route = path.replace(/\{(\w+)\}/g, ':$1');
    for (const method of Object.keys(ops)) documented.add(`${method.toUpperCase()} ${route}`);
  }
  assert.deepEqual([...documented].sort(), [...routes].sort());
});

test('the documented schemas are the ones that validate and serialize', () => {
  const c = doc.components.schemas;
  const limit = 512; // the documented default MAX_NEW_TOKENS_LIMIT
  assert.deepEqual(bare(c.CompleteRequest), bare(schemas.completeBodySchema(limit)));
  assert.deepEqual(bare(c.Completion), bare(schemas.completionSchema));
  assert.deepEqual(bare(c.DoneEvent), bare(schemas.doneEventSchema));
  assert.deepEqual(bare(c.TokenEvent), bare(schemas.tokenEventSchema));
  assert.deepEqual(bare(c.TokenizeRequest), bare(schemas.tokenizeBodySchema));
  assert.deepEqual(bare(c.Tokenization), bare(schemas.tokenizeResponseSchema));
  assert.deepEqual(bare(c.Info), bare(schemas.infoResponseSchema));
  assert.deepEqual(bare(c.Health), bare(schemas.healthSchema));
  assert.deepEqual(bare(c.ErrorBody), bare(schemas.errorBodySchema));
  // /v1/*: OpenAI's shapes (the documented limits are the defaults: 512 tokens, GPT-2's vocabulary).
  assert.deepEqual(
    bare(c.OpenAICompletionRequest),
    bare(completionRequestSchema({ maxTokensLimit: limit, vocabSize: 50257 })),
  );
  assert.deepEqual(bare(c.OpenAICompletion), bare(openaiSchemas.openAICompletionSchema));
  assert.deepEqual(bare(c.OpenAICompletionChunk), bare(openaiSchemas.openAICompletionChunkSchema));
  assert.deepEqual(bare(c.OpenAIModel), bare(openaiSchemas.openAIModelSchema));
  assert.deepEqual(bare(c.OpenAIModelList), bare(openaiSchemas.openAIModelListSchema));
  assert.deepEqual(bare(c.OpenAIErrorBody), bare(openaiSchemas.openAIErrorBodySchema));
});

test('the auth scheme is documented: Bearer or x-api-key everywhere, none on the probes', () => {
  const d = doc as unknown as {
    security: unknown;
    components: { securitySchemes: Record<string, Record<string, string>> };
    paths: Record<string, Record<string, { security?: unknown[] }>>;
  };
  assert.deepEqual(d.security, [{ bearerAuth: [] }, { apiKeyHeader: [] }]);
  assert.equal(d.components.securitySchemes.bearerAuth!.scheme, 'bearer');
  assert.equal(d.components.securitySchemes.apiKeyHeader!.name, 'x-api-key');
  for (const [path, ops] of Object.entries(d.paths)) {
    const open =
      path === '/healthz' || path === '/readyz' || path === '/' || path.startsWith('/playground/');
    for (const [method, op] of Object.entries(ops)) {
      assert.equal(
        op.security !== undefined && op.security.length === 0,
        open,
        `${method} ${path}`,
      );
    }
  }
});

/** status → codes, as documented for one operation. */
function documentedErrors(path: string, method: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [status, response] of Object.entries(doc.paths[path]![method]!.responses)) {
    if (response['x-error-codes'] !== undefined)
      out[status] = [...response['x-error-codes']].sort();
  }
  return out;
}

function byStatus(codes: readonly ErrorCode[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const code of codes) {
    const status = String(ERRORS[code].status);
    out[status] = [...(out[status] ?? []), code];
  }
  for (const list of Object.values(out)) list.sort();
  return out;
}

test('each route documents exactly the error codes it can answer, under their statuses', () => {
  assert.deepEqual(documentedErrors('/complete', 'post'), byStatus(COMPLETE_ERROR_CODES));
  assert.deepEqual(documentedErrors('/tokenize', 'post'), byStatus(TOKENIZE_ERROR_CODES));
  assert.deepEqual(documentedErrors('/readyz', 'get'), byStatus(['NOT_READY']));
  assert.deepEqual(documentedErrors('/info', 'get'), byStatus(INFO_ERROR_CODES));
  assert.deepEqual(
    documentedErrors('/v1/completions', 'post'),
    byStatus(OPENAI_COMPLETIONS_ERROR_CODES),
  );
  assert.deepEqual(
    documentedErrors('/v1/chat/completions', 'post'),
    byStatus(OPENAI_CHAT_ERROR_CODES),
  );
  assert.deepEqual(documentedErrors('/v1/models', 'get'), byStatus(OPENAI_MODELS_ERROR_CODES));
  assert.deepEqual(documentedErrors('/v1/models/{id}', 'get'), byStatus(OPENAI_MODEL_ERROR_CODES));
});

test('every error code in the code is documented, with its status', () => {
  const documented = new Map<string, number>(Object.entries(doc['x-other-error-codes'].codes));
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) {
      for (const [status, codes] of Object.entries(documentedErrors(path, method))) {
        for (const code of codes) documented.set(code, Number(status));
      }
    }
  }
  assert.deepEqual(
    Object.fromEntries([...documented].sort()),
    Object.fromEntries(ERROR_CODES.map((code) => [code, ERRORS[code].status]).sort()),
  );
});

test('every catalogue record is complete and consistent', () => {
  const kinds = ['client', 'refusal', 'failure', 'gone'];
  for (const code of ERROR_CODES) {
    const r = ERRORS[code];
    assert.deepEqual(
      Object.keys(r).sort(),
      ['log', 'message', 'reason', 'retryAfterSeconds', 'status'],
      `${code}: every field present`,
    );
    assert.ok(Number.isInteger(r.status) && r.status >= 400 && r.status < 600, `${code}: status`);
    assert.ok(r.message.trim().length > 0, `${code}: a client message`);
    assert.ok(kinds.includes(r.log), `${code}: a log kind`);
    assert.ok(
      r.retryAfterSeconds === undefined ||
        (Number.isInteger(r.retryAfterSeconds) && r.retryAfterSeconds > 0),
      `${code}: Retry-After in whole seconds`,
    );
    assert.ok(
      r.reason === undefined || REJECTION_REASONS.includes(r.reason),
      `${code}: a known metric reason`,
    );
    // A client mistake is a 4xx; anything logged as a refusal or failure is the server's side.
    if (r.log === 'client') assert.ok(r.status < 500, `${code}: client kind but ${r.status}`);
    if (r.log === 'refusal' || r.log === 'failure') {
      assert.ok(r.status >= 500, `${code}: ${r.log} but ${r.status}`);
    }
  }
  // Every reason the rejections metric documents is used by some code.
  const used = new Set(ERROR_CODES.map((code) => ERRORS[code].reason));
  for (const reason of REJECTION_REASONS) assert.ok(used.has(reason), `${reason} unused`);
});

test('live answers use documented statuses and codes', async () => {
  const cases = [
    { method: 'POST' as const, url: '/complete', payload: { prompt: 'a', max_new_tokens: 1 } },
    { method: 'POST' as const, url: '/complete', payload: { prompt: 1 } },
    { method: 'POST' as const, url: '/complete', payload: { prompt: ' a'.repeat(1024) } },
    { method: 'POST' as const, url: '/tokenize', payload: { text: 'a' } },
    { method: 'POST' as const, url: '/tokenize', payload: {} },
    { method: 'GET' as const, url: '/info' },
    { method: 'GET' as const, url: '/healthz' },
    { method: 'GET' as const, url: '/readyz' },
    { method: 'GET' as const, url: '/metrics' },
    { method: 'POST' as const, url: '/v1/completions', payload: { model: 'toy', prompt: 'a' } },
    { method: 'POST' as const, url: '/v1/completions', payload: { model: 'x', prompt: 'a' } },
    { method: 'POST' as const, url: '/v1/completions', payload: { model: 'toy', prompt: 1 } },
    { method: 'POST' as const, url: '/v1/chat/completions', payload: {} },
    { method: 'GET' as const, url: '/v1/models' },
    { method: 'GET' as const, url: '/v1/models/toy' },
    { method: 'GET' as const, url: '/v1/models/x' },
  ];
  for (const c of cases) {
    const res = await app.inject(c);
    const path = c.url.startsWith('/v1/models/') ? '/v1/models/{id}' : c.url;
    const responses = doc.paths[path]![c.method.toLowerCase()]!.responses;
    const documented = responses[String(res.statusCode)];
    assert.ok(documented, `${c.method} ${c.url} answered undocumented ${res.statusCode}`);
    // /v1/* errors carry OpenAI's codes; the status is what the document holds them to.
    if (res.statusCode >= 400 && !c.url.startsWith('/v1/')) {
      const code = res.json<{ error: { code: string } }>().error.code;
      assert.ok(documented['x-error-codes']?.includes(code), `${code} undocumented for ${c.url}`);
    }
  }
});
