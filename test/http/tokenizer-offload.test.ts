import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { TokenizerPool } from '../../src/tokenizer/tokenizer-pool.js';
import { toyApp } from '../support/app.js';

const pool = new TokenizerPool({ workers: 1 });
after(() => pool.close());

/** Resolves once the pool has a text in a worker, or the request has already been answered. */
async function untilEncoding(answered: () => boolean): Promise<void> {
  while (pool.stats.busy === 0 && !answered()) {
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('a large text being tokenized does not hold up /healthz (it is encoded in a worker)', async () => {
  await pool.ready();
  const { app } = await toyApp({}, { tokenizerPool: pool });
  after(() => app.close());
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  // ~60 KB of distinct words: well inside the body limit, and hundreds of ms of BPE.
  const text = Array.from({ length: 6000 }, (_, i) => `w${i.toString(36)}x`).join(' ');
  const order: string[] = [];
  const tokenized = fetch(`${url}/tokenize`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text }),
  }).then(async (res) => {
    order.push('tokenize');
    return { status: res.status, body: (await res.json()) as { count: number } };
  });
  await untilEncoding(() => order.length > 0);
  const health = await fetch(`${url}/healthz`);
  order.push('healthz');
  assert.equal(health.status, 200);
  const answer = await tokenized;
  assert.equal(answer.status, 200);
  assert.ok(answer.body.count > 6000);
  assert.deepEqual(order, ['healthz', 'tokenize']);
});
