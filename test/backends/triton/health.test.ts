/**
 * The background health poll under mock timers, with a client that can stop answering the way a
 * frozen (SIGSTOPped) model server does: a miss is a poll with no answer within its timeout, and
 * only TRITON_HEALTH_FAILURES misses in a row make the upstream not ready.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type HealthClient, UpstreamHealth } from '../../../src/backends/triton/health.js';

const URL = 'http://triton.test:8000';

/** Answers every probe at once with `ready`, or never (until aborted) while frozen. */
class FakeClient implements HealthClient {
  readonly url = URL;
  frozen = false;
  ready = true;
  readonly asked: string[] = [];

  probe(_endpoint: string, path: string, _what: string, signal?: AbortSignal): Promise<boolean> {
    this.asked.push(path);
    if (!this.frozen) return Promise.resolve(this.ready);
    return new Promise((_resolve, reject) => {
      signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  }
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

function health(client: FakeClient, failures: number): UpstreamHealth {
  const h = new UpstreamHealth({
    client,
    modelName: 'gpt2',
    modelPath: '/v2/models/gpt2',
    log: { info() {}, warn() {}, debug() {} },
    now: () => Date.now(),
    timeoutMs: 2000,
    failures,
  });
  h.markReady();
  return h;
}

test('a frozen upstream is not ready after TRITON_HEALTH_FAILURES missed polls, and ready again once it answers', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const client = new FakeClient();
  const h = health(client, 2);
  h.start(1000);
  t.after(() => h.stop());

  client.frozen = true;
  t.mock.timers.tick(1000); // poll 1 asks and hears nothing
  await flush();
  assert.deepEqual(client.asked, ['/v2/health/ready']);
  t.mock.timers.tick(2000); // poll 1 times out: one miss is not enough
  await flush();
  assert.deepEqual(h.readiness(), { ready: true });

  // Poll 1 took the whole interval and more: poll 2 starts at once, without overlapping it.
  t.mock.timers.tick(0);
  await flush();
  assert.equal(client.asked.length, 2);
  t.mock.timers.tick(2000);
  await flush();
  assert.deepEqual(h.readiness(), {
    ready: false,
    reason: `the model server at ${URL} did not answer GET /v2/health/ready within 2000 ms (2 health polls in a row)`,
  });

  client.frozen = false;
  t.mock.timers.tick(0);
  await flush();
  assert.deepEqual(h.readiness(), { ready: true });
  assert.deepEqual(client.asked.slice(2), ['/v2/health/ready', '/v2/models/gpt2/ready']);
});

test('an answered "not ready" counts at once, whatever TRITON_HEALTH_FAILURES is', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const client = new FakeClient();
  const h = health(client, 5);
  h.start(1000);
  t.after(() => h.stop());
  client.ready = false;
  t.mock.timers.tick(1000);
  await flush();
  assert.deepEqual(h.readiness(), {
    ready: false,
    reason: `the model server at ${URL} is not ready (GET /v2/health/ready)`,
  });
});

test('a miss between answers starts the count again', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const client = new FakeClient();
  const h = health(client, 2);
  h.start(1000);
  t.after(() => h.stop());
  for (const frozen of [true, false, true]) {
    client.frozen = frozen;
    t.mock.timers.tick(1000);
    await flush();
    if (frozen) {
      t.mock.timers.tick(2000);
      await flush();
    }
    assert.deepEqual(h.readiness(), { ready: true }, `frozen: ${frozen}`);
  }
});
