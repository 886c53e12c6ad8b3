/**
 * Just enough protobuf (proto3/proto2 wire format) to write and read ONNX files.
 *
 * Writing: a message is built as a list of encoded parts; nested messages and large byte fields
 * whose content is produced later ("lazy" parts) only carry their length. Because every length is
 * known before the first byte is written, the file is written front to back and a multi-hundred-MB
 * initializer is streamed from its producer straight to disk, never held whole in memory.
 *
 * Reading: a cursor over a file handle with positioned reads, so a reader can skip a large field
 * (an initializer's raw_data) without loading it.
 */
import type { FileHandle } from 'node:fs/promises';

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;
/** Small writes are gathered into a buffer of this size before they reach the file. */
const WRITE_BUFFER_BYTES = 1 << 20;
/** Positioned reads fetch at least this much. */
const READ_WINDOW_BYTES = 1 << 16;

export type Emit = (chunk: Uint8Array) => Promise<void>;
/** Produces exactly `length` bytes through `emit`, in chunks of any size. */
export type Producer = (emit: Emit) => Promise<void>;

type Part =
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'message'; header: Uint8Array; message: ProtoMessage }
  | { kind: 'lazy'; header: Uint8Array; length: number; produce: Producer };

function varintBytes(value: number | bigint): Uint8Array {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

function smallVarint(value: number): Uint8Array {
  if (value >= 0 && value < 0x80) return Uint8Array.of(value);
  return varintBytes(value);
}

function tag(fieldNumber: number, wireType: number): Uint8Array {
  return smallVarint((fieldNumber << 3) | wireType);
}

function concat(...chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

const textEncoder = new TextEncoder();

export class ProtoMessage {
  private readonly parts: Part[] = [];
  private cachedSize: number | undefined;

  varint(fieldNumber: number, value: number | bigint): this {
    return this.raw(concat(tag(fieldNumber, WIRE_VARINT), varintBytes(value)));
  }

  float(fieldNumber: number, value: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    return this.raw(concat(tag(fieldNumber, WIRE_FIXED32), b));
  }

  bytes(fieldNumber: number, value: Uint8Array): this {
    return this.raw(concat(tag(fieldNumber, WIRE_LEN), smallVarint(value.length), value));
  }

  string(fieldNumber: number, value: string): this {
    return this.bytes(fieldNumber, textEncoder.encode(value));
  }

  /** A repeated int64/int32 field in packed encoding. */
  packedVarints(fieldNumber: number, values: readonly (number | bigint)[]): this {
    return this.bytes(fieldNumber, concat(...values.map((v) => varintBytes(v))));
  }

  message(fieldNumber: number, message: ProtoMessage): this {
    this.cachedSize = undefined;
    this.parts.push({ kind: 'message', header: tag(fieldNumber, WIRE_LEN), message });
    return this;
  }

  /** A bytes field of known length whose content is produced while the file is written. */
  lazyBytes(fieldNumber: number, length: number, produce: Producer): this {
    this.cachedSize = undefined;
    this.parts.push({
      kind: 'lazy',
      header: concat(tag(fieldNumber, WIRE_LEN), smallVarint(length)),
      length,
      produce,
    });
    return this;
  }

  /** Raw bytes with no field header: for writing a plain byte stream (external data files). */
  rawLazy(length: number, produce: Producer): this {
    this.cachedSize = undefined;
    this.parts.push({ kind: 'lazy', header: new Uint8Array(0), length, produce });
    return this;
  }

  size(): number {
    if (this.cachedSize !== undefined) return this.cachedSize;
    let n = 0;
    for (const p of this.parts) {
      if (p.kind === 'bytes') n += p.bytes.length;
      else if (p.kind === 'lazy') n += p.header.length + p.length;
      else {
        const inner = p.message.size();
        n += p.header.length + smallVarint(inner).length + inner;
      }
    }
    this.cachedSize = n;
    return n;
  }

  /** Serialises into memory; only for messages without lazy parts of any size that matters. */
  async toBytes(): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    await this.writeTo(async (c) => {
      chunks.push(c.slice());
    });
    return concat(...chunks);
  }

  async writeTo(emit: Emit): Promise<void> {
    for (const p of this.parts) {
      if (p.kind === 'bytes') {
        await emit(p.bytes);
      } else if (p.kind === 'message') {
        await emit(p.header);
        await emit(smallVarint(p.message.size()));
        await p.message.writeTo(emit);
      } else {
        await emit(p.header);
        let produced = 0;
        await p.produce(async (chunk) => {
          produced += chunk.length;
          if (produced > p.length) throw new Error(`producer wrote more than ${p.length} bytes`);
          await emit(chunk);
        });
        if (produced !== p.length) {
          throw new Error(`producer wrote ${produced} bytes, expected ${p.length}`);
        }
      }
    }
  }

  private raw(bytes: Uint8Array): this {
    this.cachedSize = undefined;
    this.parts.push({ kind: 'bytes', bytes });
    return this;
  }
}

/** Writes a message to an open file through a write buffer; large chunks bypass the buffer. */
export async function writeMessageToFile(message: ProtoMessage, file: FileHandle): Promise<number> {
  const buffer = new Uint8Array(WRITE_BUFFER_BYTES);
  let used = 0;
  let total = 0;
  const flush = async (): Promise<void> => {
    if (used > 0) await file.write(buffer, 0, used);
    used = 0;
  };
  await message.writeTo(async (chunk) => {
    total += chunk.length;
    if (chunk.length >= WRITE_BUFFER_BYTES / 4) {
      await flush();
      let off = 0;
      while (off < chunk.length) {
        const { bytesWritten } = await file.write(chunk, off, chunk.length - off);
        off += bytesWritten;
      }
      return;
    }
    if (used + chunk.length > WRITE_BUFFER_BYTES) await flush();
    buffer.set(chunk, used);
    used += chunk.length;
  });
  await flush();
  return total;
}

/** One field read by {@link ProtoCursor.next}. Length-delimited payloads are not read yet. */
export interface FieldHeader {
  fieldNumber: number;
  wireType: number;
  /** For varints: the value; for LEN: the payload length; for fixed: 0. */
  value: bigint;
}

/**
 * Reads protobuf fields from a region of a file with positioned reads. Length-delimited fields are
 * returned as headers; the caller then reads or skips the payload.
 */
export class ProtoCursor {
  private window = new Uint8Array(0);
  private windowStart = 0;

  constructor(
    private readonly file: FileHandle,
    public pos: number,
    public readonly end: number,
  ) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  async next(): Promise<FieldHeader> {
    const key = await this.readVarint();
    const fieldNumber = Number(key >> 3n);
    const wireType = Number(key & 7n);
    if (fieldNumber === 0)
      throw new Error(`malformed protobuf: field number 0 at byte ${this.pos}`);
    switch (wireType) {
      case WIRE_VARINT:
        return { fieldNumber, wireType, value: await this.readVarint() };
      case WIRE_LEN: {
        const length = await this.readVarint();
        if (this.pos + Number(length) > this.end) {
          throw new Error(
            `malformed protobuf: field ${fieldNumber} runs past the end of its message`,
          );
        }
        return { fieldNumber, wireType, value: length };
      }
      case WIRE_FIXED64:
        this.pos += 8;
        return { fieldNumber, wireType, value: 0n };
      case WIRE_FIXED32:
        this.pos += 4;
        return { fieldNumber, wireType, value: 0n };
      default:
        throw new Error(
          `malformed protobuf: unsupported wire type ${wireType} at byte ${this.pos}`,
        );
    }
  }

  /** A sub-cursor over the next `length` bytes; this cursor moves past them. */
  sub(length: number): ProtoCursor {
    const c = new ProtoCursor(this.file, this.pos, this.pos + length);
    this.pos += length;
    return c;
  }

  skip(length: number): void {
    this.pos += length;
  }

  async readBytes(length: number): Promise<Uint8Array> {
    if (this.pos + length > this.end) throw new Error('malformed protobuf: truncated field');
    const out = await this.bytesAt(this.pos, length);
    this.pos += length;
    return out;
  }

  async readVarint(): Promise<bigint> {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.end) throw new Error('malformed protobuf: truncated varint');
      const [b] = await this.bytesAt(this.pos, 1);
      this.pos += 1;
      if (b === undefined) throw new Error('malformed protobuf: truncated file');
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return BigInt.asIntN(64, result);
    }
    throw new Error('malformed protobuf: varint too long');
  }

  private async bytesAt(pos: number, length: number): Promise<Uint8Array> {
    const offset = pos - this.windowStart;
    if (offset >= 0 && offset + length <= this.window.length) {
      return this.window.subarray(offset, offset + length);
    }
    const want = Math.max(length, READ_WINDOW_BYTES);
    const buf = new Uint8Array(want);
    const { bytesRead } = await this.file.read(buf, 0, want, pos);
    if (bytesRead < length) throw new Error('malformed protobuf: file is truncated');
    this.window = buf.subarray(0, bytesRead);
    this.windowStart = pos;
    return this.window.subarray(0, length);
  }
}

const textDecoder = new TextDecoder('utf-8', { fatal: true });

export function decodeString(bytes: Uint8Array): string {
  return textDecoder.decode(bytes);
}

/** Decodes a packed or single varint payload (used for repeated int64 in small messages). */
export function decodePackedVarints(bytes: Uint8Array): bigint[] {
  const out: bigint[] = [];
  let result = 0n;
  let shift = 0n;
  for (const b of bytes) {
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) {
      out.push(BigInt.asIntN(64, result));
      result = 0n;
      shift = 0n;
    } else {
      shift += 7n;
    }
  }
  return out;
}
