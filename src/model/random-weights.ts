/**
 * Seeded random GPT-2 weights: same names and shapes as a checkpoint, deterministic for a seed,
 * independent of chunking and of which other tensors are generated (each tensor has its own
 * stream, seeded from the seed and its name).
 */
import { elementCount, type WeightProvider, type WeightSpec } from './weights.js';

/** Hugging Face's GPT-2 initializer range (config.initializer_range). */
export const DEFAULT_INIT_STD = 0.02;
const CHUNK_ELEMENTS = 1 << 18;

/** FNV-1a over the name, mixed with the seed: a 32-bit stream seed per tensor. */
function tensorSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= Math.floor(seed / 2 ** 32);
  return h >>> 0;
}

/** Acklam's rational approximation of the inverse normal CDF (relative error < 1.2e-9). */
function inverseNormalCdf(p: number): number {
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
    -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549671010229528,
    4.374664141464968, 2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const tail = (q: number): number =>
    (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
    ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}

const TABLE_BITS = 12;
const TABLE_SIZE = 1 << TABLE_BITS;
const FRACTION_BITS = 32 - TABLE_BITS;
let quantiles: Float64Array | undefined;

/**
 * The inverse normal CDF tabulated at 4096 evenly spaced probabilities: a 32-bit uniform picks a
 * cell with its top 12 bits and interpolates with the rest. One PRNG step and no transcendental
 * per value, which keeps 124M values at about a second (Box–Muller took ~10 s). Tails clip near
 * ±3.6σ, which an initializer does not miss.
 */
function quantileTable(): Float64Array {
  if (quantiles === undefined) {
    quantiles = new Float64Array(TABLE_SIZE + 1);
    const edge = 0.5 / TABLE_SIZE;
    for (let i = 0; i <= TABLE_SIZE; i++) {
      quantiles[i] = inverseNormalCdf(Math.min(Math.max(i / TABLE_SIZE, edge), 1 - edge));
    }
  }
  return quantiles;
}

/** mulberry32: a fast 32-bit generator, plenty for initialisation. */
class NormalStream {
  private state: number;
  private readonly table = quantileTable();

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = (t ^ (t >>> 14)) >>> 0;
    const cell = u >>> FRACTION_BITS;
    const frac = (u & ((1 << FRACTION_BITS) - 1)) / (1 << FRACTION_BITS);
    const lo = this.table[cell]!;
    return lo + frac * (this.table[cell + 1]! - lo);
  }
}

function fill(out: Float32Array, normals: NormalStream, spec: WeightSpec, std: number): void {
  const offset = spec.role === 'ln-weight' ? 1 : 0;
  for (let i = 0; i < out.length; i++) out[i] = offset + std * normals.next();
}

export class RandomWeights implements WeightProvider {
  readonly description: string;

  constructor(
    private readonly seed: number,
    private readonly std: number = DEFAULT_INIT_STD,
  ) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new Error(`random seed must be a non-negative integer (got ${seed})`);
    }
    if (!(std > 0)) throw new Error(`random init std must be positive (got ${std})`);
    this.description = `random (seed ${seed}, std ${std})`;
  }

  /** The whole tensor in memory; for tests and small configs. */
  tensor(spec: WeightSpec): Float32Array {
    const out = new Float32Array(elementCount(spec.shape));
    fill(out, new NormalStream(tensorSeed(this.seed, spec.name)), spec, this.std);
    return out;
  }

  async stream(spec: WeightSpec, emit: (chunk: Uint8Array) => Promise<void>): Promise<void> {
    const normals = new NormalStream(tensorSeed(this.seed, spec.name));
    const total = elementCount(spec.shape);
    const buf = new Float32Array(Math.min(total, CHUNK_ELEMENTS));
    for (let done = 0; done < total; ) {
      const n = Math.min(buf.length, total - done);
      const view = buf.subarray(0, n);
      fill(view, normals, spec, this.std);
      await emit(new Uint8Array(view.buffer, view.byteOffset, n * 4));
      done += n;
    }
  }

  async close(): Promise<void> {}
}
