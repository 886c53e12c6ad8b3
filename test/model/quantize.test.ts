import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dequantizeInt8, QUANT_BLOCK, quantizeInt8 } from '../../src/model/quantize.js';

test('int8 blocks: row n of B is column n of W, each value within half a step of its block scale', () => {
  const k = 2 * QUANT_BLOCK;
  const n = 3;
  const w = Float32Array.from({ length: k * n }, (_, i) => Math.sin(i * 0.7) * (1 + (i % n)));
  const m = quantizeInt8(w, k, n);
  assert.equal(m.q.length, k * n);
  assert.equal(m.scales.length, n * 2);
  // Column 1, block 0: scale = max |W[r][1]| / 127 over rows 0..31.
  let max = 0;
  for (let r = 0; r < QUANT_BLOCK; r++) max = Math.max(max, Math.abs(w[r * n + 1]!));
  assert.equal(m.scales[2], Math.fround(max / 127));
  assert.equal(m.q[1 * k + 5], Math.round(w[5 * n + 1]! / m.scales[2]!) + 128);
  const back = dequantizeInt8(m, k, n);
  for (let i = 0; i < w.length; i++) {
    const col = i % n;
    const block = Math.floor(Math.floor(i / n) / QUANT_BLOCK);
    assert.ok(Math.abs(back[i]! - w[i]!) <= m.scales[col * 2 + block]! / 2 + 1e-7, `element ${i}`);
  }
  assert.throws(() => quantizeInt8(new Float32Array(40 * 2), 40, 2), /n_embd divisible by 32/);
});
