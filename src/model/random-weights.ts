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

/** mulberry32 uniforms fed to Box–Muller: fast, and plenty for initialisation. */
class NormalStream {
  private state: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  private uniform(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  next(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const u1 = 1 - this.uniform(); // (0, 1]: log stays finite
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
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
