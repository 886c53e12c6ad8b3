import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_INIT_STD, RandomWeights } from '../../src/model/random-weights.js';
import type { WeightSpec } from '../../src/model/weights.js';

const matrix: WeightSpec = { name: 'h.0.mlp.c_fc.weight', shape: [600, 1000], role: 'matrix' };

test('random weights are deterministic per seed and tensor name, and independent of chunking', async () => {
  const a = new RandomWeights(7).tensor(matrix);
  assert.deepEqual(new RandomWeights(7).tensor(matrix), a);
  assert.notDeepEqual(new RandomWeights(8).tensor(matrix), a);
  assert.notDeepEqual(new RandomWeights(7).tensor({ ...matrix, name: 'h.1.mlp.c_fc.weight' }), a);
  const streamed: Uint8Array[] = [];
  await new RandomWeights(7).stream(matrix, async (chunk) => {
    streamed.push(chunk.slice());
  });
  assert.ok(streamed.length > 1, 'the tensor is large enough to stream in several chunks');
  assert.deepEqual(new Float32Array(Buffer.concat(streamed).buffer.slice(0)), a);
});

test('values follow N(0, std²), layer-norm gains N(1, std²)', () => {
  const x = new RandomWeights(3).tensor(matrix);
  const mean = x.reduce((s, v) => s + v, 0) / x.length;
  const std = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length);
  assert.ok(Math.abs(mean) < 1e-4, `mean ${mean}`);
  assert.ok(Math.abs(std / DEFAULT_INIT_STD - 1) < 0.01, `std ${std}`);
  const inside = x.filter((v) => Math.abs(v) < 1.959964 * DEFAULT_INIT_STD).length / x.length;
  assert.ok(Math.abs(inside - 0.95) < 0.002, `P(|z| < 1.96) = ${inside}`);
  const gain = new RandomWeights(3).tensor({
    name: 'ln_f.weight',
    shape: [10_000],
    role: 'ln-weight',
  });
  const gainMean = gain.reduce((s, v) => s + v, 0) / gain.length;
  assert.ok(Math.abs(gainMean - 1) < 0.002, `gain mean ${gainMean}`);
});

test('a bad seed or std is refused', () => {
  assert.throws(
    () => new RandomWeights(-1),
    /random seed must be a non-negative integer \(got -1\)/,
  );
  assert.throws(
    () => new RandomWeights(1.5),
    /random seed must be a non-negative integer \(got 1\.5\)/,
  );
  assert.throws(() => new RandomWeights(1, 0), /random init std must be positive \(got 0\)/);
});
