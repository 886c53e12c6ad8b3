import assert from 'node:assert/strict';
import { test } from 'node:test';
import { greedyFromLogits } from '../../src/backends/greedy.js';

test('greedy picks the first maximum and its log-softmax probability', () => {
  const row = Float32Array.from([1, 3, -2, 3, 0.5]);
  const padded = Float32Array.from([9, 9, ...row]);
  const { tokenId, logprob } = greedyFromLogits(padded, 2, row.length);
  assert.equal(tokenId, 1);
  const exact = 3 - Math.log([...row].reduce((s, x) => s + Math.exp(x), 0));
  assert.ok(Math.abs(logprob - exact) < 1e-6, `${logprob} vs ${exact}`);
});

test('a uniform row of the GPT-2 vocabulary gives log(1/50257)', () => {
  const { tokenId, logprob } = greedyFromLogits(new Float32Array(50257).fill(-3.5), 0, 50257);
  assert.equal(tokenId, 0);
  assert.ok(Math.abs(logprob + Math.log(50257)) < 1e-6);
});

test('logits far below the maximum are skipped without changing the logprob', () => {
  const row = new Float32Array(50257);
  for (let i = 0; i < row.length; i++) row[i] = i % 3 === 0 ? -40 - (i % 7) : (i % 11) / 4;
  let exactSum = 0;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of row) max = Math.max(max, v);
  for (const v of row) exactSum += Math.exp(v - max);
  const { logprob } = greedyFromLogits(row, 0, row.length);
  assert.ok(Math.abs(logprob + Math.log(exactSum)) < 1e-9, `${logprob} vs ${-Math.log(exactSum)}`);
});
