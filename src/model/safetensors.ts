/**
 * Reads GPT-2 weights from a Hugging Face `model.safetensors` (format: 8-byte little-endian
 * header length, JSON header {name: {dtype, shape, data_offsets}}, raw little-endian data).
 * Tensors are validated up front (names, shapes, dtypes, offsets, file length) and streamed later,
 * converted to float32 chunk by chunk.
 */
import { type FileHandle, open } from 'node:fs/promises';
import type { Gpt2Config } from './configs.js';
import { elementCount, type WeightProvider, type WeightSpec, weightSpecs } from './weights.js';

/** A header larger than this is not a GPT-2 checkpoint header (gpt2-xl's is ~40 KB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const CHUNK_ELEMENTS = 1 << 18;
const PREFIX = 'transformer.';
/** Causal-mask buffers saved by old transformers versions, and the tied head: not weights. */
const IGNORED = [/^h\.\d+\.attn\.bias$/, /^h\.\d+\.attn\.masked_bias$/, /^lm_head\.weight$/];

const DTYPE_BYTES: Readonly<Record<string, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  dataStart: number;
}

export async function readSafetensorsHeader(
  file: string,
  fh: FileHandle,
): Promise<SafetensorsHeader> {
  const { size } = await fh.stat();
  if (size < 8) throw new Error(`${file}: not a safetensors file (${size} bytes, too short)`);
  const lenBuf = Buffer.alloc(8);
  await fh.read(lenBuf, 0, 8, 0);
  const headerLen = Number(lenBuf.readBigUInt64LE(0));
  if (headerLen > MAX_HEADER_BYTES || headerLen + 8 > size) {
    throw new Error(
      `${file}: not a safetensors file or truncated (header length ${headerLen}, file ${size} bytes)`,
    );
  }
  const headerBuf = Buffer.alloc(headerLen);
  await fh.read(headerBuf, 0, headerLen, 8);
  let parsed: unknown;
  try {
    parsed = JSON.parse(headerBuf.toString('utf8'));
  } catch (err) {
    throw new Error(`${file}: bad safetensors JSON header (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${file}: bad safetensors JSON header (not an object)`);
  }
  const dataStart = 8 + headerLen;
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const bad = (why: string): Error => new Error(`${file}: tensor ${name}: ${why}`);
    if (typeof raw !== 'object' || raw === null) throw bad('header entry is not an object');
    const { dtype, shape, data_offsets } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string') throw bad('missing dtype');
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw bad('shape must be an array of non-negative integers');
    }
    if (
      !Array.isArray(data_offsets) ||
      data_offsets.length !== 2 ||
      !data_offsets.every((d) => Number.isInteger(d) && d >= 0) ||
      data_offsets[0] > data_offsets[1]
    ) {
      throw bad('data_offsets must be [begin, end]');
    }
    const begin = dataStart + (data_offsets[0] as number);
    const end = dataStart + (data_offsets[1] as number);
    if (end > size) {
      throw bad(`data ends at byte ${end} but the file has ${size} bytes (truncated download?)`);
    }
    const width = DTYPE_BYTES[dtype];
    if (width !== undefined && end - begin !== elementCount(shape as number[]) * width) {
      throw bad(
        `holds ${end - begin} bytes, but ${dtype} ${JSON.stringify(shape)} needs ${elementCount(shape as number[]) * width}`,
      );
    }
    tensors.set(name, { dtype, shape: shape as number[], begin, end });
  }
  return { tensors, metadata, dataStart };
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac === 0 ? sign * Infinity : Number.NaN;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

let halfTable: Float32Array | undefined;
function halfLookup(): Float32Array {
  if (halfTable === undefined) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = halfToFloat(i);
  }
  return halfTable;
}

class SafetensorsWeights implements WeightProvider {
  readonly description: string;

  constructor(
    private readonly fh: FileHandle,
    private readonly entries: Map<string, SafetensorsEntry>,
    file: string,
  ) {
    this.description = `safetensors ${file}`;
  }

  async stream(spec: WeightSpec, emit: (chunk: Uint8Array) => Promise<void>): Promise<void> {
    const entry = this.entries.get(spec.name);
    if (entry === undefined) throw new Error(`internal: tensor ${spec.name} not validated`);
    const width = DTYPE_BYTES[entry.dtype]!;
    const total = elementCount(spec.shape);
    const raw = Buffer.alloc(Math.min(total, CHUNK_ELEMENTS) * width);
    const out = new Float32Array(Math.min(total, CHUNK_ELEMENTS));
    for (let done = 0; done < total; ) {
      const n = Math.min(CHUNK_ELEMENTS, total - done);
      const bytes = n * width;
      const { bytesRead } = await this.fh.read(raw, 0, bytes, entry.begin + done * width);
      if (bytesRead !== bytes) throw new Error(`tensor ${spec.name}: file ended early`);
      if (entry.dtype === 'F32') {
        await emit(new Uint8Array(raw.buffer, raw.byteOffset, bytes));
      } else {
        convert(entry.dtype, raw, n, out);
        await emit(new Uint8Array(out.buffer, 0, n * 4));
      }
      done += n;
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

function convert(dtype: string, raw: Buffer, n: number, out: Float32Array): void {
  if (dtype === 'F16') {
    const table = halfLookup();
    for (let i = 0; i < n; i++) out[i] = table[raw.readUInt16LE(i * 2)]!;
  } else if (dtype === 'BF16') {
    const u = new Uint32Array(out.buffer, 0, n);
    for (let i = 0; i < n; i++) u[i] = raw.readUInt16LE(i * 2) << 16;
  } else {
    for (let i = 0; i < n; i++) out[i] = raw.readDoubleLE(i * 8);
  }
}

/** Opens and validates a checkpoint against the config; errors name the tensor and the fix. */
export async function openSafetensorsWeights(
  file: string,
  config: Gpt2Config,
): Promise<WeightProvider> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    throw new Error(
      `cannot open weights ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  try {
    const header = await readSafetensorsHeader(file, fh);
    const byName = new Map<string, SafetensorsEntry>();
    const unexpected: string[] = [];
    for (const [rawName, entry] of header.tensors) {
      const name = rawName.startsWith(PREFIX) ? rawName.slice(PREFIX.length) : rawName;
      if (IGNORED.some((re) => re.test(name))) continue;
      if (byName.has(name))
        throw new Error(`${file}: tensor ${name} appears twice (with and without "${PREFIX}")`);
      byName.set(name, entry);
      unexpected.push(name);
    }
    const specs = weightSpecs(config);
    const wanted = new Set(specs.map((s) => s.name));
    for (const spec of specs) {
      const entry = byName.get(spec.name);
      if (entry === undefined) {
        throw new Error(
          `${file}: missing tensor ${spec.name} (expected shape [${spec.shape.join(', ')}])`,
        );
      }
      if (
        entry.shape.length !== spec.shape.length ||
        entry.shape.some((d, k) => d !== spec.shape[k])
      ) {
        throw new Error(
          `${file}: tensor ${spec.name} has shape [${entry.shape.join(', ')}], expected [${spec.shape.join(', ')}] (does config.json match the weights?)`,
        );
      }
      if (DTYPE_BYTES[entry.dtype] === undefined) {
        throw new Error(
          `${file}: tensor ${spec.name} has dtype ${entry.dtype}; supported: F32, F16, BF16, F64`,
        );
      }
    }
    const extra = unexpected.filter((n) => !wanted.has(n));
    if (extra.length > 0) {
      throw new Error(
        `${file}: unexpected tensors for a ${config.nLayer}-layer GPT-2: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', …' : ''} (does config.json match the weights?)`,
      );
    }
    return new SafetensorsWeights(fh, byName, file);
  } catch (err) {
    await fh.close();
    throw err;
  }
}
