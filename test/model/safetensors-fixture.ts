/**
 * Writes safetensors files the way Hugging Face's GPT-2 checkpoints look: `transformer.`-prefixed
 * names (optional), Conv1D weights [in, out], `attn.bias` / `attn.masked_bias` buffers, and an
 * `lm_head.weight` tied copy (optional).
 */
import { writeFile } from 'node:fs/promises';
import type { Gpt2Config } from '../../src/model/configs.js';

export interface FixtureOptions {
  prefix: boolean;
  dtype: 'F32' | 'F16';
  buffers: boolean;
  lmHead: boolean;
}

/** float32 → IEEE half, round to nearest even (normals and subnormals; no overflow here). */
const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

export function toHalf(value: number): number {
  scratch[0] = value;
  const x = scratchBits[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa moves into the exponent, which is the correct rounding.
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

export async function writeSafetensors(
  file: string,
  tensors: readonly { name: string; dtype: string; shape: number[]; data: Uint8Array }[],
): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + t.data.length],
    };
    offset += t.data.length;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' '; // the format pads the header with spaces
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(json.length));
  await writeFile(file, Buffer.concat([head, Buffer.from(json), ...tensors.map((t) => t.data)]));
}

export async function writeGpt2Checkpoint(
  file: string,
  config: Gpt2Config,
  weights: ReadonlyMap<string, Float32Array>,
  shapes: ReadonlyMap<string, readonly number[]>,
  o: FixtureOptions,
): Promise<void> {
  const p = o.prefix ? 'transformer.' : '';
  const encode = (x: Float32Array): Uint8Array => {
    if (o.dtype === 'F32')
      return new Uint8Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
    const out = new Uint16Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = toHalf(x[i]!);
    return new Uint8Array(out.buffer);
  };
  const tensors: { name: string; dtype: string; shape: number[]; data: Uint8Array }[] = [];
  // Checkpoints store tensors sorted by name; do the same so order never matters to the reader.
  for (const [name, data] of [...weights].sort(([a], [b]) => a.localeCompare(b))) {
    tensors.push({
      name: p + name,
      dtype: o.dtype,
      shape: [...shapes.get(name)!],
      data: encode(data),
    });
  }
  if (o.buffers) {
    const n = 4; // real ones are [1, 1, n_positions, n_positions]; size does not matter to us
    for (let i = 0; i < config.nLayer; i++) {
      const mask = new Uint8Array(n * n);
      tensors.push({ name: `${p}h.${i}.attn.bias`, dtype: 'U8', shape: [1, 1, n, n], data: mask });
      tensors.push({
        name: `${p}h.${i}.attn.masked_bias`,
        dtype: 'F32',
        shape: [],
        data: new Uint8Array(4),
      });
    }
  }
  if (o.lmHead) {
    tensors.push({
      name: 'lm_head.weight',
      dtype: o.dtype,
      shape: [config.vocabSize, config.nEmbd],
      data: encode(weights.get('wte.weight')!),
    });
  }
  await writeSafetensors(file, tensors);
}
