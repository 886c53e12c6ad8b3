/**
 * METRICS_PORT: /metrics on a second listener that buildApp builds from the app's one registry;
 * the API port then answers /metrics with 404. Unset, /metrics stays on the API port.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { request } from 'undici';
import { toyApp } from '../support/app.js';
import { secretKeysFile } from '../support/keys-file.js';
import { exchange, parseAnswer } from '../support/raw-http.js';

test('with METRICS_PORT the API port has no /metrics and the metrics listener serves the app registry', async () => {
  const { app } = await toyApp({ METRICS_PORT: '0' });
  const server = app.metricsServer;
  assert.ok(server !== undefined);
  await app.listen({ host: '127.0.0.1', port: 0 });
  await server.listen({ host: '127.0.0.1', port: 0 });
  const api = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const scrape = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
  try {
    const done = await request(`${api}/complete`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'hello', max_new_tokens: 2 }),
    });
    assert.equal(done.statusCode, 200);
    await done.body.dump();

    const onApi = await request(`${api}/metrics`);
    assert.equal(onApi.statusCode, 404);
    assert.equal(
      ((await onApi.body.json()) as { error: { code: string } }).error.code,
      'NOT_FOUND',
    );

    const metrics = await request(`${scrape}/metrics`);
    assert.equal(metrics.statusCode, 200);
    assert.match(String(metrics.headers['content-type']), /^text\/plain/);
    const text = await metrics.body.text();
    // The same registry: the generation on the API port is counted here.
    assert.match(text, /^gpt2_gateway_generated_tokens_total 2$/m);
    const other = await request(`${scrape}/complete`, { method: 'POST' });
    assert.equal(other.statusCode, 404);
    await other.body.dump();
  } finally {
    await app.close();
  }
  // Closing the app closed the metrics listener too.
  assert.equal(server.server.listening, false);
});

test('with API keys and METRICS_PORT the scrape needs no key; the API port does', async () => {
  const dir = await secretKeysFile('alpha:sk-alpha-5e0c2a91b7d34f68\n');
  const { app } = await toyApp({ METRICS_PORT: '0', API_KEYS_FILE: dir.path });
  try {
    assert.equal((await app.inject('/info')).statusCode, 401);
    assert.equal((await app.metricsServer!.inject('/metrics')).statusCode, 200);
  } finally {
    await app.close();
    await dir.remove();
  }
});

test('without METRICS_PORT /metrics stays on the API port and there is no second listener', async () => {
  const { app } = await toyApp();
  assert.equal(app.metricsServer, undefined);
  assert.equal((await app.inject('/metrics')).statusCode, 200);
  await app.close();
});

test('the metrics listener answers what the HTTP parser refuses, and slow headers, in the one error body', async () => {
  // A short bound so the slow case ends quickly; the answer, not the duration, is tested.
  const { app } = await toyApp({ METRICS_PORT: '0', REQUEST_TIMEOUT_MS: '300' });
  const server = app.metricsServer!;
  await server.listen({ host: '127.0.0.1', port: 0 });
  const port = (server.server.address() as AddressInfo).port;
  try {
    const garbage = parseAnswer((await exchange(port, 'GARBAGE\r\nHost: x\r\n\r\n')).text);
    assert.equal(garbage.status, 400);
    assert.equal(garbage.headers.connection, 'close');
    const bad = JSON.parse(garbage.body) as { error: { code: string; message: string } };
    assert.equal(bad.error.code, 'BAD_REQUEST');
    assert.match(bad.error.message, /^the request is not valid HTTP\/1\.1: /);
    // Headers that never finish: cut at REQUEST_TIMEOUT_MS like the API port, not Node's 60 s.
    const slow = parseAnswer((await exchange(port, 'GET /metrics HTTP/1.1\r\nHost: x\r\n')).text);
    assert.equal(slow.status, 408);
    assert.equal(
      (JSON.parse(slow.body) as { error: { code: string } }).error.code,
      'REQUEST_TIMEOUT',
    );
  } finally {
    await app.close();
  }
});

test('the metrics listener has the API port’s connection cap', async () => {
  const { app } = await toyApp({ METRICS_PORT: '0', MAX_CONNECTIONS: '7' });
  try {
    assert.equal(app.server.maxConnections, 7);
    assert.equal(app.metricsServer?.server.maxConnections, 7);
  } finally {
    await app.close();
  }
});
