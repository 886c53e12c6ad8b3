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
