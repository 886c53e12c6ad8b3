/**
 * Infer bodies in the binary tensor extension (docs/triton-notes.md, 'Binary tensor extension'):
 * a JSON header, then the binary tensors in JSON order with no separators;
 * `Inference-Header-Content-Length` gives the JSON length. Used by the Triton client (requests
 * out, responses in) and the model server (the reverse), so both ends frame bodies the same way.
 */
import { elementBytes } from './datatype.js';
import {
  type InferRequestJson,
  type InferResponseJson,
  type Parameters,
  parseInferRequest,
  parseInferResponse,
  type TensorJson,
} from './messages.js';
import {
  concreteCount,
  decodeBinaryTensor,
  decodeJsonTensor,
  fixedDatatype,
  jsonData,
  type Tensor,
  tensorBytes,
  WireFormatError,
} from './tensor-codec.js';

export const HEADER_LENGTH_HEADER = 'inference-header-content-length';

export interface EncodedBody {
  readonly body: Buffer;
  /** Set when the body carries binary data: the value of Inference-Header-Content-Length. */
  readonly headerLength: number | undefined;
}

/** A tensor to send, and whether its bytes go as binary or as JSON `data`. */
export interface OutgoingTensor {
  readonly tensor: Tensor;
  readonly binary: boolean;
}

function frame(header: object, binaries: Uint8Array[]): EncodedBody {
  const json = Buffer.from(JSON.stringify(header));
  if (binaries.length === 0) return { body: json, headerLength: undefined };
  return { body: Buffer.concat([json, ...binaries]), headerLength: json.byteLength };
}

function tensorEntries(tensors: readonly OutgoingTensor[]): {
  entries: TensorJson[];
  binaries: Uint8Array[];
} {
  const entries: TensorJson[] = [];
  const binaries: Uint8Array[] = [];
  for (const { tensor, binary } of tensors) {
    const entry: TensorJson = {
      name: tensor.name,
      datatype: tensor.datatype,
      shape: [...tensor.shape],
    };
    if (binary) {
      const bytes = tensorBytes(tensor.data);
      entry.parameters = { binary_data_size: bytes.byteLength };
      // As in Triton's responses, zero-sized binary tensors add no bytes.
      if (bytes.byteLength > 0) binaries.push(bytes);
    } else entry.data = jsonData(tensor);
    entries.push(entry);
  }
  return { entries, binaries };
}

/** Split a received body by its Inference-Header-Content-Length, checking it fits the body. */
export function splitBody(
  body: Buffer,
  headerLength: string | undefined,
): { json: unknown; binary: Buffer } {
  let h = body.byteLength;
  if (headerLength !== undefined) {
    if (!/^\d+$/.test(headerLength.trim())) {
      throw new WireFormatError(
        `Inference-Header-Content-Length '${headerLength}' is not a number`,
      );
    }
    h = Number(headerLength.trim());
    if (h > body.byteLength) {
      throw new WireFormatError(
        `Inference-Header-Content-Length ${h} exceeds the body length ${body.byteLength}`,
      );
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(body.subarray(0, h).toString('utf8'));
  } catch (err) {
    throw new WireFormatError(
      `JSON header (${h} bytes) does not parse: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  return { json, binary: body.subarray(h) };
}

/** Resolve each tensor entry's data from JSON `data` or the next slice of binary bytes. */
function readTensors(entries: readonly TensorJson[], binary: Buffer, side: string): Tensor[] {
  let offset = 0;
  const tensors = entries.map((e) => {
    const what = `${side} '${e.name}'`;
    const datatype = fixedDatatype(e.datatype, what);
    const size = e.parameters?.binary_data_size;
    if (size === undefined) {
      if (e.data === undefined)
        throw new WireFormatError(`${what} has neither data nor binary_data_size`);
      return decodeJsonTensor(e.name, datatype, e.shape, e.data);
    }
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      throw new WireFormatError(`${what}: binary_data_size must be a non-negative integer`);
    }
    const need = concreteCount(e.shape, what) * elementBytes(datatype);
    if (size !== need) {
      throw new WireFormatError(
        `${what}: binary_data_size ${size} does not match ${datatype} [${e.shape.join(',')}] (${need} bytes)`,
      );
    }
    if (offset + size > binary.byteLength) {
      throw new WireFormatError(
        `${what} needs ${size} binary bytes at offset ${offset}, but only ${binary.byteLength - offset} remain`,
      );
    }
    const t = decodeBinaryTensor(e.name, datatype, e.shape, binary.subarray(offset, offset + size));
    offset += size;
    return t;
  });
  if (offset !== binary.byteLength) {
    throw new WireFormatError(
      `${binary.byteLength - offset} bytes follow the last binary tensor; the header length or sizes are wrong`,
    );
  }
  return tensors;
}

// ---- client side: encode a request, decode a response ----

export interface InferRequestSpec {
  readonly id?: string;
  readonly parameters?: Parameters;
  readonly inputs: readonly OutgoingTensor[];
  /** Requested outputs; `binary` sets `binary_data` on each (Triton reads it per listed output). */
  readonly outputs: readonly { readonly name: string; readonly binary: boolean }[];
}

export function encodeInferRequest(spec: InferRequestSpec): EncodedBody {
  const { entries, binaries } = tensorEntries(spec.inputs);
  const header: InferRequestJson = { inputs: entries };
  if (spec.id !== undefined) header.id = spec.id;
  if (spec.parameters !== undefined) header.parameters = spec.parameters;
  header.outputs = spec.outputs.map((o) =>
    o.binary ? { name: o.name, parameters: { binary_data: true } } : { name: o.name },
  );
  // Key order: id, parameters, inputs, outputs reads naturally in captures.
  const ordered = {
    ...(header.id === undefined ? {} : { id: header.id }),
    ...(header.parameters === undefined ? {} : { parameters: header.parameters }),
    inputs: header.inputs,
    outputs: header.outputs,
  };
  return frame(ordered, binaries);
}

export interface DecodedInferResponse {
  readonly json: InferResponseJson;
  readonly outputs: ReadonlyMap<string, Tensor>;
}

export function decodeInferResponse(
  body: Buffer,
  headerLength: string | undefined,
): DecodedInferResponse {
  const { json, binary } = splitBody(body, headerLength);
  const parsed = parseInferResponse(json);
  const tensors = readTensors(parsed.outputs, binary, 'output');
  return { json: parsed, outputs: new Map(tensors.map((t) => [t.name, t])) };
}

// ---- server side: decode a request, encode a response ----

export interface DecodedInferRequest {
  readonly json: InferRequestJson;
  readonly inputs: readonly Tensor[];
}

export function decodeInferRequest(
  body: Buffer,
  headerLength: string | undefined,
): DecodedInferRequest {
  const { json, binary } = splitBody(body, headerLength);
  const parsed = parseInferRequest(json);
  return { json: parsed, inputs: readTensors(parsed.inputs, binary, 'input') };
}

export interface InferResponseSpec {
  readonly id?: string;
  readonly modelName: string;
  readonly modelVersion: string;
  readonly outputs: readonly OutgoingTensor[];
}

export function encodeInferResponse(spec: InferResponseSpec): EncodedBody {
  const { entries, binaries } = tensorEntries(spec.outputs);
  const header: InferResponseJson = {
    ...(spec.id === undefined || spec.id === '' ? {} : { id: spec.id }),
    model_name: spec.modelName,
    model_version: spec.modelVersion,
    outputs: entries,
  };
  return frame(header, binaries);
}
