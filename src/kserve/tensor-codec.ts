/**
 * Tensor data in both KServe v2 forms: JSON `data` (flat or nested, row-major) and the binary
 * tensor extension (little-endian, row-major, native element size); see docs/triton-notes.md,
 * 'Tensor data and datatypes' and 'Binary tensor extension'.
 * Every length is checked exactly: a wrong size is a protocol error, never a silent truncation.
 */
import { endianness } from 'node:os';
import { halfToFloat } from '../model/float16.js';
import { elementBytes, elementCount, type FixedDatatype, isFixedDatatype } from './datatype.js';

/** Thrown for any tensor or body that does not follow the protocol; callers map it. */
export class WireFormatError extends Error {
  override readonly name = 'WireFormatError';
}

export type TensorArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

export interface Tensor {
  readonly name: string;
  readonly datatype: FixedDatatype;
  readonly shape: readonly number[];
  /** FP16/BF16 are widened to Float32Array on decode. */
  readonly data: TensorArray;
}

// Typed arrays use the platform's byte order; the binary extension's wire is little-endian.
if (endianness() !== 'LE') throw new Error('gpt2-gateway needs a little-endian CPU');

export function fixedDatatype(datatype: string, what: string): FixedDatatype {
  if (!isFixedDatatype(datatype)) {
    throw new WireFormatError(`${what} has datatype '${datatype}', which is not supported`);
  }
  return datatype;
}

export function concreteCount(shape: readonly number[], what: string): number {
  const n = elementCount(shape);
  if (n === undefined) {
    throw new WireFormatError(
      `${what} has shape [${shape.join(',')}]; every dimension must be >= 0`,
    );
  }
  return n;
}

/** The raw little-endian bytes of a tensor, without copying. */
export function tensorBytes(data: TensorArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function arrayFor(datatype: FixedDatatype, buffer: ArrayBuffer, count: number): TensorArray {
  switch (datatype) {
    case 'BOOL':
    case 'UINT8':
      return new Uint8Array(buffer, 0, count);
    case 'INT8':
      return new Int8Array(buffer, 0, count);
    case 'UINT16':
    case 'FP16':
    case 'BF16':
      return new Uint16Array(buffer, 0, count);
    case 'INT16':
      return new Int16Array(buffer, 0, count);
    case 'UINT32':
      return new Uint32Array(buffer, 0, count);
    case 'INT32':
      return new Int32Array(buffer, 0, count);
    case 'FP32':
      return new Float32Array(buffer, 0, count);
    case 'UINT64':
      return new BigUint64Array(buffer, 0, count);
    case 'INT64':
      return new BigInt64Array(buffer, 0, count);
    case 'FP64':
      return new Float64Array(buffer, 0, count);
  }
}

/** Decode one binary tensor; `bytes.length` must be exactly what shape and datatype need. */
export function decodeBinaryTensor(
  name: string,
  datatype: FixedDatatype,
  shape: readonly number[],
  bytes: Uint8Array,
): Tensor {
  const what = `tensor '${name}'`;
  const count = concreteCount(shape, what);
  const size = elementBytes(datatype);
  if (bytes.byteLength !== count * size) {
    throw new WireFormatError(
      `${what} carries ${bytes.byteLength} bytes, but ${datatype} [${shape.join(',')}] needs ${count * size}`,
    );
  }
  // Copy into a fresh, aligned buffer: slices of a received body are rarely aligned.
  const copy = new Uint8Array(count * size);
  copy.set(bytes);
  let data = arrayFor(datatype, copy.buffer, count);
  if (datatype === 'FP16' || datatype === 'BF16') {
    const raw = data as Uint16Array;
    const wide = new Float32Array(count);
    const bf = new Float32Array(1);
    const bfBits = new Uint32Array(bf.buffer);
    for (let i = 0; i < count; i++) {
      const bits = raw[i] ?? 0;
      if (datatype === 'FP16') wide[i] = halfToFloat(bits);
      else {
        bfBits[0] = bits << 16;
        wide[i] = bf[0] ?? 0;
      }
    }
    data = wide;
  }
  return { name, datatype, shape: [...shape], data };
}

function flatten(value: unknown, out: unknown[], depth: number): void {
  if (Array.isArray(value)) {
    // Protocol allows nesting to the tensor's rank; bound it so hostile input cannot recurse deeply.
    if (depth > 32) throw new WireFormatError('tensor data is nested too deeply');
    for (const v of value) flatten(v, out, depth + 1);
  } else out.push(value);
}

const INT_RANGE: Partial<Record<FixedDatatype, readonly [number, number]>> = {
  INT8: [-128, 127],
  UINT8: [0, 255],
  INT16: [-32768, 32767],
  UINT16: [0, 65535],
  INT32: [-2147483648, 2147483647],
  UINT32: [0, 4294967295],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
};

/** Build a typed tensor from plain numbers (booleans for BOOL), checking every element fits. */
export function tensorFromValues(
  name: string,
  datatype: FixedDatatype,
  shape: readonly number[],
  values: ArrayLike<unknown>,
): Tensor {
  const what = `tensor '${name}'`;
  if (datatype === 'FP16' || datatype === 'BF16') {
    throw new WireFormatError(`${what}: ${datatype} data cannot be sent as JSON; use binary data`);
  }
  const count = concreteCount(shape, what);
  if (values.length !== count) {
    throw new WireFormatError(
      `${what} has ${values.length} elements, but shape [${shape.join(',')}] needs ${count}`,
    );
  }
  const data = arrayFor(datatype, new ArrayBuffer(count * elementBytes(datatype)), count);
  const range = INT_RANGE[datatype];
  for (let i = 0; i < count; i++) {
    const v = values[i];
    if (datatype === 'BOOL') {
      if (typeof v !== 'boolean')
        throw new WireFormatError(`${what}: element ${i} is not a boolean`);
      (data as Uint8Array)[i] = v ? 1 : 0;
    } else if (typeof v !== 'number' || Number.isNaN(v)) {
      throw new WireFormatError(`${what}: element ${i} is not a number`);
    } else if (range !== undefined) {
      if (!Number.isInteger(v) || v < range[0] || v > range[1]) {
        throw new WireFormatError(`${what}: element ${i} (${v}) is not a valid ${datatype}`);
      }
      if (data instanceof BigInt64Array || data instanceof BigUint64Array) data[i] = BigInt(v);
      else (data as Int32Array)[i] = v;
    } else (data as Float32Array)[i] = v;
  }
  return { name, datatype, shape: [...shape], data };
}

/** Decode JSON `data`, flat or nested; like Triton, only the total element count is checked. */
export function decodeJsonTensor(
  name: string,
  datatype: FixedDatatype,
  shape: readonly number[],
  data: unknown,
): Tensor {
  if (!Array.isArray(data)) throw new WireFormatError(`tensor '${name}': 'data' must be an array`);
  // Flat data (what Triton always sends) needs no copy; nested data is flattened.
  if (!data.some(Array.isArray)) return tensorFromValues(name, datatype, shape, data);
  const flat: unknown[] = [];
  flatten(data, flat, 0);
  return tensorFromValues(name, datatype, shape, flat);
}

/** Flat JSON `data` for a tensor, as Triton writes it (always flat). */
export function jsonData(tensor: Tensor): (number | boolean)[] {
  const { data, datatype } = tensor;
  if (datatype === 'BOOL') return Array.from(data as Uint8Array, (v) => v !== 0);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array)
    return Array.from(data, Number);
  // Array.from on a number typed array is the fastest copy V8 offers (large logits as JSON).
  return Array.from(data as Float32Array);
}

/** Element i as a JS number (token ids fit: < 2^53). */
export function numberAt(data: TensorArray, i: number): number {
  return Number(data[i] ?? Number.NaN);
}
