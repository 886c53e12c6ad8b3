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
 * departures), the group's presents are fed back as the next pasts with no copying. A change of
 * membership builds the new group in one copy, each row straight from the old group's presents or
 * from a newcomer's own cache; only a step with no batched decode gives every member its own
 * cache again (dissolve).
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

  /**
   * Prepares the decode group for a step whose batched decode is `ids` (undefined: none). With no
   * batched decode the group is dissolved (every member gets its own cache back). Otherwise only
   * live members that leave take their rows out now, so that a step can run them alone; the
   * remaining members are regrouped by groupPast in one copy.
   */
  keepGroupOnlyFor(ids: readonly number[] | undefined): void {
    const group = this.#group;
    if (group === undefined) return;
    if (ids === undefined) {
      this.#detach(group, group.ids);
      this.#group = undefined;
    } else if (!sameIds(group.ids, ids)) {
      this.#detach(
        group,
        group.ids.filter((id) => !ids.includes(id)),
      );
    }
  }

  /**
   * The pasts for a batched decode of `ids`: the group's as they are while its members are
   * unchanged (no copy). When they change, the new group is built in one copy per past, each row
   * taken straight from where its cache is — a row of the old group or a cache of its own —
   * rather than dissolving the old group first (which would copy every surviving row twice).
   */
  groupPast(ids: readonly number[]): {
    readonly past: readonly ort.Tensor[];
    readonly width: number;
  } {
    const group = this.#group;
    if (group !== undefined && sameIds(group.ids, ids)) return group;
    this.keepGroupOnlyFor(ids);
    this.#group = this.#form(ids, group);
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

  #form(ids: readonly number[], old: DecodeGroup | undefined): DecodeGroup {
    const { nHead, headDim, pastCount } = this.#shape;
    const oldData = old === undefined ? undefined : this.#groupData(old);
    // Where each row's positions are: a row of the old group (left-padded to its width) or an
    // own cache (row 0, exactly its length wide).
    const sources = ids.map((id) => {
      const cache = this.#caches.get(id);
      if (cache?.kind === 'group' && old !== undefined && oldData !== undefined) {
        const row = old.ids.indexOf(id);
        if (row === -1) throw new Error(`sequence ${id} is not in the decode group`);
        return { data: (i: number) => oldData[i]!, row, width: old.width, length: cache.length };
      }
      if (cache?.kind !== 'own') throw new Error(`sequence ${id} has no cache of its own to group`);
      return {
        data: (i: number) => floatData(cache.past[i], 'past'),
        row: 0,
        width: cache.length,
        length: cache.length,
      };
    });
    const width = Math.max(...sources.map((c) => c.length));
    const past = Array.from({ length: pastCount }, (_, i) => {
      const padded = new Float32Array(ids.length * nHead * width * headDim);
      sources.forEach((source, b) => {
        const data = source.data(i);
        const n = source.length * headDim;
        for (let h = 0; h < nHead; h++) {
          const from =
            ((source.row * nHead + h) * source.width + source.width - source.length) * headDim;
          padded.set(
            data.subarray(from, from + n),
            ((b * nHead + h) * width + width - source.length) * headDim,
          );
        }
      });
      return new ort.Tensor('float32', padded, [ids.length, nHead, width, headDim]);
    });
    return { ids, past, width };
  }

  /** The group's pasts as FP32 data, checked against its shape. */
  #groupData(group: DecodeGroup): Float32Array[] {
    const { nHead, headDim } = this.#shape;
    const data = group.past.map((t) => floatData(t, 'present'));
    if (data.some((d) => d.length !== group.ids.length * nHead * group.width * headDim)) {
      throw new BackendError('BACKEND_BAD_RESPONSE', 'present tensors have an unexpected size');
    }
    return data;
  }

  /** Gives the live ones of `leaving` (members of `group`) their own caches again. */
  #detach(group: DecodeGroup, leaving: readonly number[]): void {
    const live = leaving.filter((id) => this.#caches.get(id)?.kind === 'group');
    if (live.length === 0) return;
    const { nHead, headDim } = this.#shape;
    const width = group.width;
    const data = this.#groupData(group);
    for (const id of live) {
      const b = group.ids.indexOf(id);
      const length = (this.#caches.get(id) as GroupCache).length;
      const past = data.map((d) => sliceRow(d, b, length, { nHead, width, headDim }));
      this.#caches.set(id, { kind: 'own', past, length });
    }
  }
}
