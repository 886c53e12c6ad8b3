/** buildApp owns the whole app: one metrics registry per app, shared with its backend. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, type Registry } from 'prom-client';
import { toyApp } from '../support/app.js';
import { ToyBackend } from '../support/toy-backend.js';

/** A backend with metrics of its own, as the Triton backend has (gpt2_gateway_upstream_*). */
class MeteredBackend extends ToyBackend {
  readonly registries: Registry[] = [];
  registerMetrics(registry: Registry): void {
    this.registries.push(registry);
    new Counter({
      name: 'gpt2_gateway_upstream_test_total',
      help: 'A backend metric.',
      registers: [registry],
    }).inc(3);
  }
}

test("buildApp hands its one registry to the backend once, and /metrics serves the backend's metrics", async () => {
  const backend = new MeteredBackend();
  const { app } = await toyApp({}, { backend });
  try {
    assert.equal(backend.registries.length, 1);
    assert.equal(backend.registries[0], app.metricsRegistry);
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(res.body, /^gpt2_gateway_upstream_test_total 3$/m);
    assert.match(res.body, /^# TYPE gpt2_gateway_http_requests_total counter$/m);
  } finally {
    await app.close();
  }
});

test('two apps in one process never share a registry', async () => {
  const first = await toyApp({}, { backend: new MeteredBackend() });
  const second = await toyApp({}, { backend: new MeteredBackend() });
  try {
    assert.notEqual(first.app.metricsRegistry, second.app.metricsRegistry);
    await first.app.inject({ method: 'POST', url: '/tokenize', payload: { text: 'a' } });
    const counted = (body: string) =>
      /gpt2_gateway_http_requests_total\{route="\/tokenize",method="POST",status="200"\} 1/.test(
        body,
      );
    assert.equal(counted((await first.app.inject({ url: '/metrics' })).body), true);
    assert.equal(counted((await second.app.inject({ url: '/metrics' })).body), false);
  } finally {
    await first.app.close();
    await second.app.close();
  }
});
