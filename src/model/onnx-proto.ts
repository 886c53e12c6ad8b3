/**
 * ONNX message builders over {@link ProtoMessage}. Field numbers from onnx/onnx.proto (IR v8).
 */
import { type Producer, ProtoMessage } from './protobuf.js';

/** onnx.proto TensorProto.DataType values we use. */
export const OnnxType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;
export type OnnxTypeCode = (typeof OnnxType)[keyof typeof OnnxType];

/** Triton's protocol datatype names for ONNX element types (KServe v2 tensor data types). */
export const TRITON_DATATYPE: Readonly<Record<number, string>> = {
  1: 'FP32',
  2: 'UINT8',
  3: 'INT8',
  4: 'UINT16',
  5: 'INT16',
  6: 'INT32',
  7: 'INT64',
  8: 'BYTES',
  9: 'BOOL',
  10: 'FP16',
  11: 'FP64',
  12: 'UINT32',
  13: 'UINT64',
  16: 'BF16',
};

/** A dimension: a fixed size or a symbolic name (dynamic). */
export type Dim = number | string;

const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_INTS = 7;

export type AttributeValue = number | string | readonly number[] | { float: number };

function attribute(name: string, value: AttributeValue): ProtoMessage {
  const a = new ProtoMessage().string(1, name);
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: use {float} for ${value}`);
    a.varint(3, value).varint(20, ATTR_INT);
  } else if (typeof value === 'string') {
    a.string(4, value).varint(20, ATTR_STRING);
  } else if ('float' in value) {
    a.float(2, value.float).varint(20, ATTR_FLOAT);
  } else {
    a.packedVarints(8, value).varint(20, ATTR_INTS);
  }
  return a;
}

export function nodeProto(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  name: string,
  attributes: Readonly<Record<string, AttributeValue>> = {},
  domain = '',
): ProtoMessage {
  const n = new ProtoMessage();
  for (const i of inputs) n.string(1, i);
  for (const o of outputs) n.string(2, o);
  n.string(3, name).string(4, opType);
  for (const [k, v] of Object.entries(attributes)) n.message(5, attribute(k, v));
  if (domain !== '') n.string(7, domain);
  return n;
}

export function valueInfoProto(
  name: string,
  elemType: number,
  shape: readonly Dim[],
): ProtoMessage {
  const shapeMsg = new ProtoMessage();
  for (const d of shape) {
    const dim = new ProtoMessage();
    if (typeof d === 'number') dim.varint(1, d);
    else dim.string(2, d);
    shapeMsg.message(1, dim);
  }
  const tensorType = new ProtoMessage().varint(1, elemType).message(2, shapeMsg);
  return new ProtoMessage().string(1, name).message(2, new ProtoMessage().message(1, tensorType));
}

/** An initializer whose raw little-endian bytes are produced while the file is written. */
export function tensorProto(
  name: string,
  elemType: number,
  dims: readonly number[],
  byteLength: number,
  produce: Producer,
): ProtoMessage {
  const t = new ProtoMessage();
  // name before raw_data so a reader learns it without passing the data.
  t.packedVarints(1, dims).varint(2, elemType).string(8, name);
  t.lazyBytes(9, byteLength, produce);
  return t;
}

/** An initializer whose bytes live in an external data file (ONNX external data, for > 2 GB). */
export function externalTensorProto(
  name: string,
  elemType: number,
  dims: readonly number[],
  location: string,
  offset: number,
  length: number,
): ProtoMessage {
  const t = new ProtoMessage().packedVarints(1, dims).varint(2, elemType).string(8, name);
  for (const [k, v] of [
    ['location', location],
    ['offset', String(offset)],
    ['length', String(length)],
  ]) {
    t.message(13, new ProtoMessage().string(1, k!).string(2, v!));
  }
  return t.varint(14, 1); // data_location = EXTERNAL
}

export function smallTensorProto(
  name: string,
  elemType: number,
  dims: readonly number[],
  raw: Uint8Array,
): ProtoMessage {
  return new ProtoMessage()
    .packedVarints(1, dims)
    .varint(2, elemType)
    .string(8, name)
    .bytes(9, raw);
}

export interface OpsetImport {
  domain: string;
  version: number;
}

export function modelProto(opts: {
  irVersion: number;
  opsets: readonly OpsetImport[];
  producerName: string;
  producerVersion: string;
  graph: ProtoMessage;
  metadata: Readonly<Record<string, string>>;
}): ProtoMessage {
  const m = new ProtoMessage().varint(1, opts.irVersion);
  m.string(2, opts.producerName).string(3, opts.producerVersion);
  m.message(7, opts.graph);
  for (const o of opts.opsets) {
    const op = new ProtoMessage();
    if (o.domain !== '') op.string(1, o.domain);
    op.varint(2, o.version);
    m.message(8, op);
  }
  for (const [k, v] of Object.entries(opts.metadata)) {
    m.message(14, new ProtoMessage().string(1, k).string(2, v));
  }
  return m;
}
