/**
 * What Triton's `GET /v2/models/{name}` returns for an ONNX file (docs/triton-notes.md, 'Model
 * metadata and config endpoints'), read from the file with a minimal protobuf reader that skips
 * initializer data.
 *
 * Shapes are the ONNX shapes with dynamic dims as -1. That equals Triton's answer whether the model
 * is served with `max_batch_size` 0 (shape = dims) or > 0 with a dynamic leading batch dim
 * (shape = [-1] + dims). Inputs and outputs are listed in the file's order; initializers listed as
 * graph inputs (IR < 4 exporters) are dropped, as onnxruntime does.
 */
import { open } from 'node:fs/promises';
import { TRITON_DATATYPE } from './onnx-proto.js';
import { decodePackedVarints, decodeString, ProtoCursor } from './protobuf.js';

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/** Everything `model inspect` shows besides the metadata. */
export interface ModelSummary {
  metadata: ModelMetadata;
  /** Elements in floating-point and 8-bit initializers of rank ≥ 1: the weights (scalar
   * constants, int64 shape constants and int8 weights' `.scales` excluded). */
  parameters: number;
  initializerBytes: number;
  opsets: { domain: string; version: number }[];
  producer: string;
  irVersion: number;
  properties: Record<string, string>;
  fileBytes: number;
}

const PLATFORM = 'onnxruntime_onnx';
const FLOAT_TYPES = new Set([1, 10, 11, 16]);
/** int8 / uint8: quantized weights count as parameters; their float `.scales` do not. */
const INT8_TYPES = new Set([2, 3]);

interface MemField {
  fieldNumber: number;
  wireType: number;
  value: bigint;
  bytes: Uint8Array;
}

/** Decodes the fields of a small in-memory message. */
function* memFields(buf: Uint8Array): Generator<MemField> {
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const b = buf[pos++];
      if (b === undefined || shift > 63n) throw new Error('malformed ONNX file: bad varint');
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return BigInt.asIntN(64, result);
    }
  };
  while (pos < buf.length) {
    const key = varint();
    const fieldNumber = Number(key >> 3n);
    const wireType = Number(key & 7n);
    if (wireType === 0) {
      yield { fieldNumber, wireType, value: varint(), bytes: new Uint8Array(0) };
    } else if (wireType === 2) {
      const len = Number(varint());
      if (pos + len > buf.length) throw new Error('malformed ONNX file: truncated field');
      yield { fieldNumber, wireType, value: BigInt(len), bytes: buf.subarray(pos, pos + len) };
      pos += len;
    } else if (wireType === 5) {
      pos += 4;
    } else if (wireType === 1) {
      pos += 8;
    } else {
      throw new Error(`malformed ONNX file: wire type ${wireType}`);
    }
  }
}

function decodeValueInfo(buf: Uint8Array): TensorMetadata {
  let name = '';
  let elemType = 0;
  const shape: number[] = [];
  for (const f of memFields(buf)) {
    if (f.fieldNumber === 1) name = decodeString(f.bytes);
    else if (f.fieldNumber === 2) {
      for (const t of memFields(f.bytes)) {
        if (t.fieldNumber !== 1) continue; // only tensor types are servable
        for (const tt of memFields(t.bytes)) {
          if (tt.fieldNumber === 1) elemType = Number(tt.value);
          else if (tt.fieldNumber === 2) {
            for (const d of memFields(tt.bytes)) {
              if (d.fieldNumber !== 1) continue;
              let dim = -1;
              for (const df of memFields(d.bytes)) {
                if (df.fieldNumber === 1 && df.wireType === 0) dim = Number(df.value);
              }
              shape.push(dim);
            }
          }
        }
      }
    }
  }
  const datatype = TRITON_DATATYPE[elemType];
  if (datatype === undefined)
    throw new Error(`tensor ${name}: unsupported ONNX element type ${elemType}`);
  return { name, datatype, shape };
}

/** Reads an initializer's name, type and dims, skipping its data. */
async function readInitializer(
  c: ProtoCursor,
): Promise<{ name: string; type: number; count: number; rank: number }> {
  let name = '';
  let type = 0;
  const dims: bigint[] = [];
  while (!c.done) {
    const f = await c.next();
    if (f.wireType !== 2) {
      if (f.fieldNumber === 2) type = Number(f.value);
      else if (f.fieldNumber === 1) dims.push(f.value);
      continue;
    }
    const len = Number(f.value);
    if (f.fieldNumber === 8) name = decodeString(await c.readBytes(len));
    else if (f.fieldNumber === 1) dims.push(...decodePackedVarints(await c.readBytes(len)));
    else c.skip(len);
  }
  return { name, type, count: dims.reduce((a, b) => a * Number(b), 1), rank: dims.length };
}

export async function readModelSummary(onnxFile: string, name: string): Promise<ModelSummary> {
  const fh = await open(onnxFile, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot open model ${onnxFile}: ${err.code ?? err.message}`);
  });
  try {
    const { size } = await fh.stat();
    const top = new ProtoCursor(fh, 0, size);
    const inputs: TensorMetadata[] = [];
    const outputs: TensorMetadata[] = [];
    const initializerNames = new Set<string>();
    const opsets: { domain: string; version: number }[] = [];
    const properties: Record<string, string> = {};
    let parameters = 0;
    let initializerBytes = 0;
    let producer = '';
    let irVersion = 0;
    let sawGraph = false;
    try {
      while (!top.done) {
        const f = await top.next();
        if (f.wireType !== 2) {
          if (f.fieldNumber === 1) irVersion = Number(f.value);
          continue;
        }
        const len = Number(f.value);
        if (f.fieldNumber === 7) {
          sawGraph = true;
          const g = top.sub(len);
          while (!g.done) {
            const gf = await g.next();
            if (gf.wireType !== 2) continue;
            const glen = Number(gf.value);
            if (gf.fieldNumber === 11) inputs.push(decodeValueInfo(await g.readBytes(glen)));
            else if (gf.fieldNumber === 12) outputs.push(decodeValueInfo(await g.readBytes(glen)));
            else if (gf.fieldNumber === 5) {
              const t = await readInitializer(g.sub(glen));
              initializerNames.add(t.name);
              const weight =
                (FLOAT_TYPES.has(t.type) && !t.name.endsWith('.scales')) || INT8_TYPES.has(t.type);
              if (weight && t.rank > 0) parameters += t.count;
              initializerBytes += glen;
            } else g.skip(glen);
          }
        } else if (f.fieldNumber === 8 || f.fieldNumber === 14 || f.fieldNumber === 2) {
          const bytes = await top.readBytes(len);
          if (f.fieldNumber === 2) producer = decodeString(bytes);
          else if (f.fieldNumber === 8) {
            let domain = '';
            let version = 0;
            for (const o of memFields(bytes)) {
              if (o.fieldNumber === 1) domain = decodeString(o.bytes);
              else if (o.fieldNumber === 2) version = Number(o.value);
            }
            opsets.push({ domain, version });
          } else {
            let k = '';
            let v = '';
            for (const p of memFields(bytes)) {
              if (p.fieldNumber === 1) k = decodeString(p.bytes);
              else if (p.fieldNumber === 2) v = decodeString(p.bytes);
            }
            properties[k] = v;
          }
        } else top.skip(len);
      }
    } catch (err) {
      throw new Error(`${onnxFile}: not a readable ONNX model (${(err as Error).message})`);
    }
    if (!sawGraph || outputs.length === 0) {
      throw new Error(`${onnxFile}: not an ONNX model (no graph with outputs)`);
    }
    return {
      metadata: {
        name,
        versions: ['1'],
        platform: PLATFORM,
        inputs: inputs.filter((i) => !initializerNames.has(i.name)),
        outputs,
      },
      parameters,
      initializerBytes,
      opsets,
      producer,
      irVersion,
      properties,
      fileBytes: size,
    };
  } finally {
    await fh.close();
  }
}

export async function readModelMetadata(onnxFile: string, name: string): Promise<ModelMetadata> {
  return (await readModelSummary(onnxFile, name)).metadata;
}

/**
 * Triton's view of a model whose config.pbtxt keeps implicit state: state tensors are
 * inputs/outputs of the ONNX file but not of the served model, so its metadata lists neither
 * (docs/triton-notes.md, 'Implicit state (sequence batcher)'). `configText` is the config.pbtxt;
 * without a `state` block the metadata is unchanged.
 */
export function tritonView(meta: ModelMetadata, configText: string): ModelMetadata {
  const stateInputs = new Set(
    [...configText.matchAll(/input_name:\s*"([^"]+)"/g)].map((m) => m[1]),
  );
  const stateOutputs = new Set(
    [...configText.matchAll(/output_name:\s*"([^"]+)"/g)].map((m) => m[1]),
  );
  return {
    ...meta,
    inputs: meta.inputs.filter((t) => !stateInputs.has(t.name)),
    outputs: meta.outputs.filter((t) => !stateOutputs.has(t.name)),
  };
}
