import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { ApiKeyStore, parseApiKeys } from '../../src/auth/api-keys.js';
import { type AuthHookOptions, authPlugin, type ErrorReply } from '../../src/auth/auth-hook.js';

const KEY_ALICE = 'sk-alice-00112233445566778899';
const KEY_BOB = 'sk-bob-99887766554433221100';

/** The app's error body, as the gateway's own routes send it. */
const gatewayErrorReply: ErrorReply = (_request, reply, status, code, message) =>
  reply.code(status).send({ error: { code, message } });

async function appWith(
  options: Partial<AuthHookOptions> & { store: AuthHookOptions['store'] },
  logs?: string[],
) {
  const app = Fastify({
    logger:
      logs === undefined
        ? false
        : {
            level: 'trace',
            stream: new Writable({
              write(chunk, _enc, done) {
                logs.push(String(chunk));
                done();
              },
            }),
          },
  });
  await app.register(authPlugin({ errorReply: gatewayErrorReply, ...options }));
  const whoami = async (request: FastifyRequest, _reply: FastifyReply) => ({
    client: request.clientName ?? null,
  });
  app.get('/healthz', whoami);
  app.get('/readyz', whoami);
  app.post('/complete', whoami);
  app.get('/playground/app.js', whoami);
  // Registered in a child context: the hook must reach routes outside the plugin's own scope.
  await app.register(async (child) => {
    child.post('/v1/completions', whoami);
  });
  return app;
}

const store = () => new ApiKeyStore(parseApiKeys(`alice:${KEY_ALICE}\nbob:${KEY_BOB}\n`));

test('with keys, a valid key passes and the request carries its client name', async () => {
  const app = await appWith({ store: store() });
  const viaBearer = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    headers: { authorization: `Bearer ${KEY_ALICE}` },
  });
  assert.equal(viaBearer.statusCode, 200);
  assert.deepEqual(viaBearer.json(), { client: 'alice' });
  const viaHeader = await app.inject({
    method: 'POST',
    url: '/complete',
    headers: { 'x-api-key': KEY_BOB },
  });
  assert.deepEqual(viaHeader.json(), { client: 'bob' });
  await app.close();
});

test('the probes need no key, with or without a query string', async () => {
  const app = await appWith({ store: store() });
  for (const url of ['/healthz', '/readyz', '/healthz?verbose=1']) {
    const res = await app.inject(url);
    assert.equal(res.statusCode, 200, url);
    assert.deepEqual(res.json(), { client: null });
  }
  await app.close();
});

test('isOpen opens further requests (the playground files)', async () => {
  const app = await appWith({
    store: store(),
    isOpen: (request) => request.url.startsWith('/playground/'),
  });
  assert.equal((await app.inject('/playground/app.js')).statusCode, 200);
  assert.equal((await app.inject({ method: 'POST', url: '/complete' })).statusCode, 401);
  await app.close();
});

test('a missing, unknown, non-Bearer or malformed key is 401 with a challenge and a message that says what to fix', async () => {
  const app = await appWith({ store: store() });
  const cases: [Record<string, string>, string, RegExp][] = [
    [{}, 'Bearer', /^this gateway needs an API key: send `Authorization: Bearer <key>`/],
    [
      { authorization: 'Bearer sk-made-up-key-0000' },
      'Bearer error="invalid_token"',
      /^the API key is not valid/,
    ],
    [
      { 'x-api-key': 'sk-made-up-key-0000' },
      'Bearer error="invalid_token"',
      /^the API key is not valid/,
    ],
    [
      { authorization: `Basic ${KEY_ALICE}` },
      'Bearer',
      /^the Authorization header must use the Bearer scheme/,
    ],
    [
      { authorization: 'Bearer' },
      'Bearer error="invalid_request"',
      /^the API key cannot be read \(the Bearer scheme carries no key\)/,
    ],
    [
      { authorization: `Bearer ${KEY_ALICE}`, 'x-api-key': KEY_BOB },
      'Bearer error="invalid_request"',
      /different keys/,
    ],
  ];
  for (const [headers, challenge, message] of cases) {
    const res = await app.inject({ method: 'POST', url: '/v1/completions', headers });
    const label = JSON.stringify(headers);
    assert.equal(res.statusCode, 401, label);
    assert.equal(res.headers['www-authenticate'], challenge, label);
    const body = res.json() as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'UNAUTHORIZED', label);
    assert.match(body.error.message, message, label);
    assert.ok(!res.body.includes(KEY_ALICE) && !res.body.includes('sk-made-up'), label);
  }
  await app.close();
});

test('an unknown route without a key is 401 too: routes are not probed without a key', async () => {
  const app = await appWith({ store: store() });
  const res = await app.inject('/no-such-route');
  assert.equal(res.statusCode, 401);
  await app.close();
});

test('the injected errorReply decides the body, and learns the reason', async () => {
  const seen: string[] = [];
  const app = await appWith({
    store: store(),
    errorReply: (_request, reply, status, _code, message, reason) => {
      seen.push(reason);
      return reply.code(status).send({
        error: { message, type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
      });
    },
  });
  const res = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    headers: { authorization: 'Bearer nope' },
  });
  assert.equal(res.statusCode, 401);
  assert.deepEqual(res.json(), {
    error: {
      message: 'the API key is not valid; check the key you were given',
      type: 'invalid_request_error',
      param: null,
      code: 'invalid_api_key',
    },
  });
  assert.deepEqual(seen, ['unknown-key']);
  await app.close();
});

test('without a key store every request passes and clientName stays undefined', async () => {
  const app = await appWith({ store: undefined });
  const res = await app.inject({ method: 'POST', url: '/complete' });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.json(), { client: null });
  await app.close();
});

test('nothing of a key reaches the logs at trace level; the client name does', async () => {
  const logs: string[] = [];
  const app = await appWith({ store: store() }, logs);
  await app.inject({
    method: 'POST',
    url: '/complete',
    headers: { authorization: `Bearer ${KEY_ALICE}` },
  });
  await app.inject({
    method: 'POST',
    url: '/complete',
    headers: { authorization: `Bearer ${KEY_BOB}x` },
  });
  await app.inject({ method: 'POST', url: '/complete', headers: { 'x-api-key': KEY_BOB } });
  await app.close();
  const all = logs.join('');
  assert.ok(logs.length > 0);
  for (const fragment of [KEY_ALICE, KEY_BOB, 'sk-alice', 'sk-bob']) {
    assert.ok(!all.includes(fragment), fragment);
  }
  assert.ok(logs.some((line) => JSON.parse(line).client === 'alice'));
  assert.ok(logs.some((line) => JSON.parse(line).reason === 'unknown-key'));
});
