/**
 * The embedded backend's KV cache without a model: rows cut from and stacked into left-padded
 * batch tensors, and a decode group formed, advanced and dissolved, checked value by value.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { BackendError } from '../../../src/backends/backend.js';
import { KvCache, padRows, sliceRow } from '../../../src/backends/embedded/kv-cache.js';

const nHead = 2;
const headDim = 3;

/** Distinct values per (row, head, position, dim): a misplaced copy shows. */
function value(row: number, h: number, pos: number, d: number): number {
  return row * 1000 + h * 100 + pos * 10 + d;
}

/** A [rows, nHead, width, headDim] batch whose row b holds lengths[b] real positions, left-padded. */
function batch(lengths: readonly number[], width: number): Float32Array {
  const data = new Float32Array(lengths.length * nHead * width * headDim).fill(-1);
  lengths.forEach((length, b) => {
    for (let h = 0; h < nHead; h++)
      for (let p = 0; p < length; p++)
        for (let d = 0; d < headDim; d++)
          data[((b * nHead + h) * width + width - length + p) * headDim + d] = value(b, h, p, d);
  });
  return data;
}

/** Row b of batch() as its own [1, nHead, length, headDim] data. */
function own(b: number, length: number): number[] {
  const out: number[] = [];
  for (let h = 0; h < nHead; h++)
    for (let p = 0; p < length; p++) for (let d = 0; d < headDim; d++) out.push(value(b, h, p, d));
  return out;
}

function floats(t: ort.Tensor | undefined): number[] {
  assert.ok(t !== undefined && t.data instanceof Float32Array, 'an FP32 tensor');
  return [...t.data];
}

describe('sliceRow and padRows', () => {
  it('cut a row out of a left-padded batch without its padding', () => {
    const data = batch([2, 4, 1], 4);
    for (const [b, length] of [
      [0, 2],
      [1, 4],
      [2, 1],
    ] as const) {
      const t = sliceRow(data, b, length, { nHead, width: 4, headDim });
      assert.deepEqual(t.dims, [1, nHead, length, headDim]);
      assert.deepEqual(floats(t), own(b, length));
    }
  });

  it('stack own rows into a left-padded batch that sliceRow takes apart again', () => {
    const lengths = [3, 1];
    const t = padRows(
      lengths.map((length, b) => ({ data: Float32Array.from(own(b, length)), length })),
      { nHead, width: 3, headDim },
    );
    assert.deepEqual(t.dims, [2, nHead, 3, headDim]);
    const data = t.data as Float32Array;
    // Padding is zeros; the real positions are the last of each row.
    assert.deepEqual(
      floats(sliceRow(data, 1, 3, { nHead, width: 3, headDim })).slice(0, 2 * headDim),
      [0, 0, 0, 0, 0, 0],
    );
    lengths.forEach((length, b) => {
      assert.deepEqual(
        floats(sliceRow(data, b, length, { nHead, width: 3, headDim })),
        own(b, length),
      );
    });
  });
});

describe('KvCache', () => {
  const shape = { nHead, headDim, pastCount: 2 };

  /** Sequences 1 and 2, one token each, decoding as a group. */
  function groupOfTwo(): KvCache {
    const cache = new KvCache(shape);
    cache.storeRows(
      [1, 2],
      [1, 1],
      [0, 1].map(() => batch([1, 1], 1)),
      1,
    );
    cache.groupPast([1, 2]);
    return cache;
  }

  it('a new sequence starts from an empty past', () => {
    const cache = new KvCache(shape);
    const fresh = cache.own(7);
    assert.equal(fresh.length, 0);
    assert.equal(fresh.past.length, 2);
    assert.deepEqual(fresh.past[0]?.dims, [1, nHead, 0, headDim]);
    assert.equal(cache.has(7), false);
  });

  it('a batched prefill leaves each sequence its own cache, padding cut off', () => {
    const cache = new KvCache(shape);
    const presents = [batch([2, 4], 4), batch([2, 4], 4)];
    cache.storeRows([10, 11], [2, 4], presents, 4);
    assert.equal(cache.length(10), 2);
    assert.equal(cache.length(11), 4);
    assert.deepEqual(floats(cache.own(10).past[1]), own(0, 2));
    assert.deepEqual(floats(cache.own(11).past[0]), own(1, 4));
  });

  it('a decode group is formed from own caches, advanced in place, and dissolved on a change', () => {
    const cache = new KvCache(shape);
    cache.storeRows([1, 2], [2, 3], [batch([2, 3], 3), batch([2, 3], 3)], 3);
    const formed = cache.groupPast([1, 2]);
    assert.equal(formed.width, 3);
    assert.deepEqual(cache.groupIds, [1, 2]);
    // The two caches stacked, row 0 left-padded by one zero position.
    const expected = [...batch([2, 3], 3)].map((v) => (v === -1 ? 0 : v));
    assert.deepEqual(floats(formed.past[0]), expected);

    // A decode's presents (one position wider) are the group's next pasts, as they are.
    const presents = [0, 1].map(
      () => new ort.Tensor('float32', batch([3, 4], 4), [2, nHead, 4, headDim]),
    );
    cache.advanceGroup([1, 2], presents, [2, 3]);
    assert.equal(cache.length(1), 3);
    assert.equal(cache.length(2), 4);
    const next = cache.groupPast([1, 2]);
    assert.equal(next.width, 4);
    assert.equal(next.past[0], presents[0]);

    // Sequence 1 leaves: the group dissolves and sequence 2 gets its row back as its own cache.
    cache.delete(1);
    cache.keepGroupOnlyFor(undefined);
    assert.deepEqual(cache.groupIds, []);
    assert.equal(cache.has(1), false);
    assert.equal(cache.length(2), 4);
    assert.deepEqual(floats(cache.own(2).past[0]), own(1, 4));
    assert.deepEqual(floats(cache.own(2).past[1]), own(1, 4));
  });

  it('the same members keep the group; other members rebuild it', () => {
    const cache = new KvCache(shape);
    cache.storeRows(
      [1, 2, 3],
      [1, 1, 1],
      [0, 1].map(() => batch([1, 1, 1], 1)),
      1,
    );
    const first = cache.groupPast([1, 2]);
    cache.keepGroupOnlyFor([1, 2]);
    assert.equal(cache.groupPast([1, 2]), first);
    const other = cache.groupPast([2, 3]);
    assert.notEqual(other, first);
    assert.deepEqual(cache.groupIds, [2, 3]);
  });

  it('a change of members regroups in one copy: rows from the old group and from own caches', () => {
    const cache = new KvCache(shape);
    cache.storeRows([1, 2], [2, 3], [batch([2, 3], 3), batch([2, 3], 3)], 3);
    cache.groupPast([1, 2]);
    const presents = [0, 1].map(
      () => new ort.Tensor('float32', batch([3, 4], 4), [2, nHead, 4, headDim]),
    );
    cache.advanceGroup([1, 2], presents, [2, 3]);
    // Sequence 3 arrives with a cache of its own; sequence 1, still alive, leaves the group.
    cache.storeRows([3], [2], [batch([2], 2), batch([2], 2)], 2);
    const regrouped = cache.groupPast([2, 3]);
    assert.deepEqual(cache.groupIds, [2, 3]);
    assert.equal(regrouped.width, 4);
    // Row 0: sequence 2's four positions (row 1 of the old group); row 1: sequence 3's two,
    // left-padded with zeros to the width.
    const expected: number[] = [];
    for (const [source, length] of [
      [1, 4],
      [0, 2],
    ] as const) {
      for (let h = 0; h < nHead; h++)
        for (let p = 0; p < 4; p++)
          for (let d = 0; d < headDim; d++)
            expected.push(p < 4 - length ? 0 : value(source, h, p - (4 - length), d));
    }
    assert.deepEqual(floats(regrouped.past[1]), expected);
    // The member that left has its own cache again, exactly its three positions.
    assert.equal(cache.length(1), 3);
    assert.deepEqual(floats(cache.own(1).past[0]), own(0, 3));
  });

  it('presents of the wrong size are a bad response, not a misread cache', () => {
    const cache = groupOfTwo();
    const short = new ort.Tensor('float32', new Float32Array(3), [1, 1, 1, 3]);
    cache.advanceGroup([1, 2], [short, short], [1, 1]);
    assert.throws(
      () => cache.keepGroupOnlyFor(undefined),
      (e: unknown) => e instanceof BackendError && e.code === 'BACKEND_BAD_RESPONSE',
    );
  });

  it('clear() forgets every cache and the group', () => {
    const cache = groupOfTwo();
    cache.clear();
    assert.equal(cache.has(1), false);
    assert.deepEqual(cache.groupIds, []);
  });
});
