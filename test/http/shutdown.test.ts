/**
 * The shutdown deadline in-process (server.ts calls app.endGenerations() once SHUTDOWN_TIMEOUT_MS
 * has passed; closing the app does the same): streams end with an `error` event SHUTTING_DOWN,
 * waiting JSON requests get 503, and the Triton kv sequence of every generation is ended.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import { buildApp } from '../../src/app.js';
import { TritonBackend } from '../../src/backends/triton/triton-backend.js';
import { ModelServer } from '../../src/model-server/model-server.js';
import { tinyRepository } from '../model-server/tiny-repository.js';
import { testConfig } from '../support/app.js';
import { parseSse } from '../support/sse.js';

const SHUTTING_DOWN = {
  error: {
    code: 'SHUTTING_DOWN',
    message:
      'the server is shutting down and ended this generation before it finished; retry on another instance',
  },
};

async function queued(app: FastifyInstance): Promise<number | undefined> {
  const gauge = app.metricsRegistry.getSingleMetric('gpt2_gateway_generations_queued');
  return (await gauge?.get())?.values[0]?.value;
}

let repo: Awaited<ReturnType<typeof tinyRepository>>;
let server: ModelServer;
let url: string;

before(async () => {
  repo = await tinyRepository(['kv']);
  server = await ModelServer.create({ repository: repo.dir });
  url = `http://127.0.0.1:${await server.listen(0, '127.0.0.1')}`;
});
after(async () => {
  await server.close();
  await repo.remove();
});

for (const how of ['endGenerations()', 'close()'] as const) {
  test(`${how} ends a streaming Triton kv generation with SHUTTING_DOWN, a waiting one with 503, and ends their sequences`, async () => {
    const backend = new TritonBackend({
      url,
      modelName: 'kv',
      wire: 'binary',
      timeoutMs: 10_000,
      connections: 2,
      healthIntervalMs: 0,
      startupTimeoutMs: 0,
    });
    const app = await buildApp(testConfig({ MAX_BATCH_SIZE: '1' }), { backend });
    await backend.init();
    await app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const complete = (stream: boolean) =>
      request(`${base}/complete`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'Hello world', max_new_tokens: 500, stream }),
      });
    const streaming = await complete(true);
    const waiting = complete(false);
    let body = '';
    let closing: Promise<void> | undefined;
    for await (const chunk of streaming.body) {
      body += (chunk as Buffer).toString();
      // Mid-generation, with the second request queued behind it (batch size 1).
      if (closing === undefined && body.includes('event: token') && (await queued(app)) === 1) {
        assert.equal(server.models.get('kv')?.openSequences, 1);
        if (how === 'close()') closing = app.close();
        else {
          assert.equal(app.endGenerations(), 2);
          closing = Promise.resolve();
        }
      }
    }
    const events = parseSse(body);
    assert.ok(events.some((e) => e.event === 'token'));
    assert.deepEqual(events.at(-1), { event: 'error', data: SHUTTING_DOWN });
    const refused = await waiting;
    assert.equal(refused.statusCode, 503);
    assert.deepEqual(await refused.body.json(), SHUTTING_DOWN);
    await closing;
    await app.close();
    // The stepped sequence got its sequence_end from the scheduler's release (before the
    // backend's own close), none is left for Triton's idle reaping.
    await backend.settled();
    assert.equal(server.models.get('kv')?.openSequences, 0);
    await backend.close();
  });
}
