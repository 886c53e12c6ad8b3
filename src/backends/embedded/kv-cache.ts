/**
 * The embedded backend's KV caches: one per sequence, and the decode group that lets several
 * sequences decode in one run. Pure data and ort.Tensor construction only — no session — so it
 * can move into a worker thread beside the session unchanged.
 *
 * Layouts (per past input of a kv model, see src/contract/signature.ts):
 * - an own cache is [1, n_head, length, head_dim];
 * - a batched run's presents are [rows, n_head, width, head_dim], each row left-padded to width,
 *   its real positions last. sliceRow() cuts one row back out; padRows() builds such a tensor.
 *
 * While the same sequences keep decoding together (the common case between arrivals and
 * departures), the group's presents are fed back as the next pasts with no copying; only a change
 * of membership gives every member its own cache again (dissolve) and forms a new group.
 */
import * as ort from 'onnxruntime-node';
import { BackendError } from '../backend.js';

export interface KvCacheShape {
  readonly nHead: number;
  readonly headDim: number;
  /** Past inputs per run: 2 per layer (key, value), in the order the model's layers list them. */
  readonly pastCount: number;
}

/** A sequence's cache in tensors of its own. */
interface OwnCache {
  readonly kind: 'own';
  readonly past: readonly ort.Tensor[];
  /** Tokens held in the cache. */
  readonly length: number;
}

/** A sequence whose cache is one row of the decode group's batched tensors. */
interface GroupCache {
  readonly kind: 'group';
  readonly length: number;
}

interface DecodeGroup {
  readonly ids: readonly number[];
  readonly past: readonly ort.Tensor[];
  /** Positions per row (the longest member's cache; the others left-padded). */
  readonly width: number;
}

/** The FP32 data of a tensor a run returned, or BACKEND_BAD_RESPONSE. */
export function floatData(tensor: ort.Tensor | undefined, name: string): Float32Array {
  if (tensor === undefined || !(tensor.data instanceof Float32Array)) {
    throw new BackendError('BACKEND_BAD_RESPONSE', `the model returned no FP32 ${name}`);
  }
  return tensor.data;
}

/**
 * Row `row` of a left-padded [rows, nHead, width, headDim] tensor: its last `length` positions,
 * as a [1, nHead, length, headDim] tensor of its own (a copy).
 */
export function sliceRow(
  data: Float32Array,
  row: number,
  length: number,
  dims: { readonly nHead: number; readonly width: number; readonly headDim: number },
): ort.Tensor {
  const { nHead, width, headDim } = dims;
  const own = new Float32Array(nHead * length * headDim);
  for (let h = 0; h < nHead; h++) {
    const from = ((row * nHead + h) * width + (width - length)) * headDim;
    own.set(data.subarray(from, from + length * headDim), h * length * headDim);
  }
  return new ort.Tensor('float32', own, [1, nHead, length, headDim]);
}

/** Own caches [1, nHead, length_b, headDim] stacked into one [rows, nHead, width, headDim],
 * each row left-padded with zeros to `width`. */
export function padRows(
  rows: readonly { readonly data: Float32Array; readonly length: number }[],
  dims: { readonly nHead: number; readonly width: number; readonly headDim: number },
): ort.Tensor {
  const { nHead, width, headDim } = dims;
  const padded = new Float32Array(rows.length * nHead * width * headDim);
  rows.forEach(({ data, length }, b) => {
    for (let h = 0; h < nHead; h++) {
      padded.set(
        data.subarray(h * length * headDim, (h + 1) * length * headDim),
        ((b * nHead + h) * width + (width - length)) * headDim,
      );
    }
  });
  return new ort.Tensor('float32', padded, [rows.length, nHead, width, headDim]);
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

export class KvCache {
  readonly #shape: KvCacheShape;
  readonly #caches = new Map<number, OwnCache | GroupCache>();
  #group: DecodeGroup | undefined;

  constructor(shape: KvCacheShape) {
    this.#shape = shape;
  }

  has(id: number): boolean {
    return this.#caches.has(id);
  }

  /** Tokens held for a sequence; undefined when it has no cache. */
  length(id: number): number | undefined {
    return this.#caches.get(id)?.length;
  }

  /** The group's members, in row order; empty when there is no group. */
  get groupIds(): readonly number[] {
    return this.#group?.ids ?? [];
  }

  /** A released row of the decode group stays (masked, unused) until the group is rebuilt. */
  delete(id: number): void {
    this.#caches.delete(id);
  }

  clear(): void {
    this.#caches.clear();
    this.#group = undefined;
  }

  /** Empty pasts [rows, nHead, 0, headDim]: a prefill's. */
  emptyPast(rows: number): ort.Tensor[] {
    const { nHead, headDim, pastCount } = this.#shape;
    return Array.from(
      { length: pastCount },
      () => new ort.Tensor('float32', new Float32Array(0), [rows, nHead, 0, headDim]),
    );
  }

  /** A sequence's own cache, or an empty one when it has none (a new sequence). */
  own(id: number): { readonly past: readonly ort.Tensor[]; readonly length: number } {
    const cache = this.#caches.get(id);
    return cache?.kind === 'own' ? cache : { past: this.emptyPast(1), length: 0 };
  }

  /** Keeps a run's presents as the sequence's cache, as they are: no copy. */
  storeOwn(id: number, presents: readonly ort.Tensor[], length: number): void {
    this.#caches.set(id, { kind: 'own', past: presents, length });
  }

  /**
   * Keeps the presents of a batched prefill: row b is sequence ids[b], holding lengths[b] real
   * positions of `width`. Each sequence gets its own cache, without the padding.
   */
  storeRows(
    ids: readonly number[],
    lengths: readonly number[],
    presents: readonly Float32Array[],
    width: number,
  ): void {
    const { nHead, headDim } = this.#shape;
    ids.forEach((id, b) => {
      const length = lengths[b] as number;
      const past = presents.map((data) => sliceRow(data, b, length, { nHead, width, headDim }));
      this.#caches.set(id, { kind: 'own', past, length });
    });
  }

  /** Dissolves the decode group unless its members are exactly `ids` (in order). */
  keepGroupOnlyFor(ids: readonly number[] | undefined): void {
    const group = this.#group;
    if (group !== undefined && (ids === undefined || !sameIds(group.ids, ids))) this.#dissolve();
  }

  /** The pasts for a batched decode of `ids`: the group's, formed from own caches if new. */
  groupPast(ids: readonly number[]): {
    readonly past: readonly ort.Tensor[];
    readonly width: number;
  } {
    this.keepGroupOnlyFor(ids);
    this.#group ??= this.#form(ids);
    return this.#group;
  }

  /** After a batched decode: its presents become the group's pasts, one position wider. */
  advanceGroup(
    ids: readonly number[],
    presents: readonly ort.Tensor[],
    lengths: readonly number[],
  ): void {
    const width = (this.#group?.width ?? 0) + 1;
    this.#group = { ids, past: presents, width };
    ids.forEach((id, b) => {
      this.#caches.set(id, { kind: 'group', length: (lengths[b] as number) + 1 });
    });
  }

  #form(ids: readonly number[]): DecodeGroup {
    const { nHead, headDim, pastCount } = this.#shape;
    const caches = ids.map((id) => {
      const cache = this.#caches.get(id);
      if (cache?.kind !== 'own') throw new Error(`sequence ${id} has no cache of its own to group`);
      return cache;
    });
    const width = Math.max(...caches.map((c) => c.length));
    const past = Array.from({ length: pastCount }, (_, i) =>
      padRows(
        caches.map((c) => ({ data: floatData(c.past[i], 'past'), length: c.length })),
        { nHead, width, headDim },
      ),
    );
    return { ids, past, width };
  }

  /** Gives every live member of the decode group its own cache again, and forgets the group. */
  #dissolve(): void {
    const group = this.#group;
    this.#group = undefined;
    if (group === undefined) return;
    const { nHead, headDim } = this.#shape;
    const width = group.width;
    const data = group.past.map((t) => floatData(t, 'present'));
    if (data.some((d) => d.length !== group.ids.length * nHead * width * headDim)) {
      throw new BackendError('BACKEND_BAD_RESPONSE', 'present tensors have an unexpected size');
    }
    group.ids.forEach((id, b) => {
      const cache = this.#caches.get(id);
      if (cache?.kind !== 'group') return;
      const past = data.map((d) => sliceRow(d, b, cache.length, { nHead, width, headDim }));
      this.#caches.set(id, { kind: 'own', past, length: cache.length });
    });
  }
}
