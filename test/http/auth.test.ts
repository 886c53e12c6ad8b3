/**
 * API keys through the running app: the keys file at start (a malformed one stops it, naming the
 * line), rotation without a restart (a Secret's `..data` swap), a broken rotation that keeps the
 * old keys, 401s in each route family's shape, budgets per authenticated client, and nothing of
 * a key in the logs at trace level or in /metrics.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp, loggerOptions } from '../../src/app.js';
import { ApiKeysFileError } from '../../src/auth/api-keys.js';
import { testConfig, toyApp } from '../support/app.js';
import { type KeysDir, secretKeysFile } from '../support/keys-file.js';
import { ToyBackend } from '../support/toy-backend.js';

const KEY_A = 'sk-alpha-7d41c9e08a2b5f36';
const KEY_B = 'sk-bravo-c2e9a4410f7d8b65';
const KEY_C = 'sk-charlie-1b8e5d2a9c3f7e40';
const ALL_KEYS = [KEY_A, KEY_B, KEY_C];

const dirs: KeysDir[] = [];
after(() => Promise.all(dirs.map((d) => d.remove())));

async function keysFile(text: string): Promise<KeysDir> {
  const dir = await secretKeysFile(text);
  dirs.push(dir);
  return dir;
}

/** Every log line of an app at trace level, and an event per line for waiting on one. */
function traceLog() {
  const lines: string[] = [];
  const events = new EventEmitter();
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const line = chunk.toString();
      lines.push(line);
      events.emit('line', JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  /** Resolves with the first line (from now on) whose msg matches. */
  const next = (msg: RegExp) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const on = (record: Record<string, unknown>) => {
        if (msg.test(String(record.msg))) {
          events.off('line', on);
          resolve(record);
        }
      };
      events.on('line', on);
    });
  return { lines, sink, next };
}

async function appWithKeys(
  path: string,
  overrides: Record<string, string> = {},
  log = traceLog(),
): Promise<{ app: FastifyInstance; log: ReturnType<typeof traceLog> }> {
  const env = { API_KEYS_FILE: path, LOG_LEVEL: 'trace', ...overrides };
  const app = await buildApp(testConfig(env), {
    backend: new ToyBackend(),
    loggerInstance: pino(loggerOptions(testConfig(env)), log.sink),
    // The directory watch usually sees a rotation first; the poll guarantees it.
    apiKeysPollIntervalMs: 25,
  });
  return { app, log };
}

const complete = (key: string | undefined, via: 'bearer' | 'x-api-key' = 'bearer') => ({
  method: 'POST' as const,
  url: '/complete',
  headers:
    key === undefined
      ? {}
      : via === 'bearer'
        ? { authorization: `Bearer ${key}` }
        : { 'x-api-key': key },
  payload: { prompt: 'hello', max_new_tokens: 1 },
});

function assertNoKeyIn(text: string, where: string): void {
  for (const key of ALL_KEYS) {
    // The whole key, and any recognisable part of its secret tail.
    assert.ok(!text.includes(key), `${where} holds a key`);
    assert.ok(!text.includes(key.slice(-12)), `${where} holds part of a key`);
  }
}

test('a malformed keys file stops the start and names its line, never its content', async () => {
  const dir = await keysFile(`# clients\nalpha:${KEY_A}\nbravo ${KEY_B}\n`);
  await assert.rejects(
    buildApp(testConfig({ API_KEYS_FILE: dir.path }), { backend: new ToyBackend() }),
    (err: unknown) =>
      err instanceof ApiKeysFileError && /line 3/.test(err.message) && !err.message.includes(KEY_B),
  );
  await assert.rejects(
    buildApp(testConfig({ API_KEYS_FILE: `${dir.path}.missing` }), { backend: new ToyBackend() }),
    /cannot read the API keys file/,
  );
});

test("with keys every route but the probes needs one; 401s have each family's body and a challenge", async () => {
  const dir = await keysFile(`alpha:${KEY_A}\n`);
  const { app } = await appWithKeys(dir.path);
  // The probes, and the playground's page and files (it asks for the key itself).
  for (const url of ['/healthz', '/readyz', '/', '/playground/page.js']) {
    const res = await app.inject({ method: 'GET', url });
    assert.notEqual(res.statusCode, 401, url);
  }
  assert.equal((await app.inject({ method: 'POST', url: '/' })).statusCode, 401);
  for (const url of ['/info', '/metrics', '/v1/models', '/v1/models/toy', '/nope']) {
    const res = await app.inject({ method: 'GET', url });
    assert.equal(res.statusCode, 401, url);
    assert.equal(res.headers['www-authenticate'], 'Bearer', url);
  }
  const gateway = await app.inject(complete(undefined));
  assert.equal(gateway.statusCode, 401);
  assert.deepEqual(Object.keys(gateway.json<{ error: object }>().error), ['code', 'message']);
  assert.equal(gateway.json<{ error: { code: string } }>().error.code, 'UNAUTHORIZED');

  const wrong = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    headers: { authorization: `Bearer ${KEY_B}` },
    payload: { model: 'toy', prompt: 'x' },
  });
  assert.equal(wrong.statusCode, 401);
  assert.equal(wrong.headers['www-authenticate'], 'Bearer error="invalid_token"');
  const body = wrong.json<{ error: Record<string, unknown> }>();
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(body.error.code, 'invalid_api_key');
  assertNoKeyIn(wrong.body, 'the 401 body');

  const basic = await app.inject({
    method: 'GET',
    url: '/info',
    headers: { authorization: 'Basic YTpi' },
  });
  assert.equal(basic.statusCode, 401);
  const ok = await app.inject({ method: 'GET', url: '/info', headers: { 'x-api-key': KEY_A } });
  assert.equal(ok.statusCode, 200);
  assert.deepEqual(ok.json<{ auth: unknown }>().auth, { required: true });
  assert.equal((await app.inject(complete(KEY_A))).statusCode, 200);
  await app.close();
});

test('without API_KEYS_FILE the gateway is open, /info says so, and the start warns once', async () => {
  const log = traceLog();
  const config = testConfig({ LOG_LEVEL: 'trace' });
  const app = await buildApp(config, {
    backend: new ToyBackend(),
    loggerInstance: pino(loggerOptions(config), log.sink),
  });
  assert.equal((await app.inject(complete(undefined))).statusCode, 200);
  const info = await app.inject('/info');
  assert.deepEqual(info.json<{ auth: unknown }>().auth, { required: false });
  await app.close();
  const warnings = log.lines.filter((l) => /API_KEYS_FILE is unset/.test(l));
  assert.equal(warnings.length, 1);
  assert.equal((JSON.parse(warnings[0]!) as { level: number }).level, 40);
});

test('a rotated keys file takes effect without a restart; a broken one keeps the old keys', async () => {
  const dir = await keysFile(`alpha:${KEY_A}\n`);
  const { app, log } = await appWithKeys(dir.path);
  assert.equal((await app.inject(complete(KEY_A))).statusCode, 200);
  assert.equal((await app.inject(complete(KEY_B))).statusCode, 401);

  const reloaded = log.next(/API keys reloaded/);
  await dir.rotate(`bravo:${KEY_B}\n`);
  assert.deepEqual((await reloaded).clients, ['bravo']);
  assert.equal((await app.inject(complete(KEY_B))).statusCode, 200);
  assert.equal((await app.inject(complete(KEY_A))).statusCode, 401, 'the old key is gone');

  // A rotation to a file that does not parse: logged at error, and bravo still works.
  const refused = log.next(/new API keys file is refused/);
  await dir.rotate(`bravo:${KEY_B}\ncharlie:${KEY_C} trailing\n`);
  const record = await refused;
  assert.equal(record.level, 50);
  assert.match(JSON.stringify(record.err), /line 2/);
  assert.equal((await app.inject(complete(KEY_B))).statusCode, 200);
  assert.equal((await app.inject(complete(KEY_C))).statusCode, 401);
  await app.close();
  assertNoKeyIn(log.lines.join(''), 'the log');
});

test('nothing of a key reaches the logs at trace level, nor /metrics; the client name does', async () => {
  const dir = await keysFile(`alpha:${KEY_A}\nbravo:${KEY_B}\n`);
  const { app, log } = await appWithKeys(dir.path);
  await app.inject(complete(KEY_A));
  await app.inject(complete(KEY_B, 'x-api-key'));
  await app.inject(complete(KEY_C));
  await app.inject({
    method: 'POST',
    url: '/v1/completions',
    headers: { authorization: `Bearer ${KEY_A}` },
    payload: { model: 'toy', prompt: 'x', max_tokens: 1, stream: true },
  });
  await app.inject({
    method: 'POST',
    url: '/v1/completions',
    headers: { authorization: `Bearer ${KEY_A}`, 'x-api-key': KEY_B },
    payload: { model: 'toy', prompt: 'x' },
  });
  const metrics = await app.inject({
    method: 'GET',
    url: '/metrics',
    headers: { 'x-api-key': KEY_A },
  });
  assert.equal(metrics.statusCode, 200);
  assertNoKeyIn(metrics.body, '/metrics');
  assert.match(metrics.body, /^gpt2_gateway_rejections_total\{reason="unauthorized"\} 2$/m);
  await app.close();
  const all = log.lines.join('');
  // At trace level even the quiet request lines (debug) of the scrape are kept.
  assert.ok(
    log.lines.some((l) => JSON.parse(l).level <= 20),
    'debug and trace lines were kept',
  );
  assertNoKeyIn(all, 'the log');
  assert.match(all, /"client":"alpha"/);
  assert.match(all, /"client":"bravo"/);
});

test('the rate-limit budget belongs to the authenticated client, whichever header carries the key', async () => {
  const dir = await keysFile(`alpha:${KEY_A}\nbravo:${KEY_B}\n`);
  const { app } = await appWithKeys(dir.path, { RATE_LIMIT_MAX: '2', LOG_LEVEL: 'silent' });
  assert.equal((await app.inject(complete(KEY_A))).statusCode, 200);
  assert.equal((await app.inject(complete(KEY_A, 'x-api-key'))).statusCode, 200);
  const limited = await app.inject(complete(KEY_A));
  assert.equal(limited.statusCode, 429);
  // Another client from the same address has its own budget.
  assert.equal((await app.inject(complete(KEY_B))).statusCode, 200);
  // A made-up key is refused before it could name a budget.
  assert.equal((await app.inject(complete('sk-made-up'))).statusCode, 401);
  // Each route keeps its own budgets (as /complete and /tokenize always did); /v1/completions
  // counts alpha's requests there and answers in OpenAI's shape.
  const v1 = {
    method: 'POST' as const,
    url: '/v1/completions',
    headers: { authorization: `Bearer ${KEY_A}` },
    payload: { model: 'toy', prompt: 'x', max_tokens: 1 },
  };
  assert.equal((await app.inject(v1)).statusCode, 200);
  assert.equal((await app.inject(v1)).statusCode, 200);
  const v1Limited = await app.inject(v1);
  assert.equal(v1Limited.statusCode, 429);
  assert.equal(v1Limited.json<{ error: { code: string } }>().error.code, 'rate_limit_exceeded');
  await app.close();
});

test('the open gateway still limits per address: toyApp without keys', async () => {
  const { app } = await toyApp({ RATE_LIMIT_MAX: '1' });
  assert.equal((await app.inject(complete(KEY_A))).statusCode, 200);
  assert.equal((await app.inject(complete(KEY_B))).statusCode, 429);
  await app.close();
});
