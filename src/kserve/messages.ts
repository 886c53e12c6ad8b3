/**
 * KServe v2 JSON messages as Triton emits and accepts them (KServe v2 spec; Triton's details in
 * docs/triton-notes.md), with parsers that narrow `unknown` and say exactly what is wrong.
 */
import { WireFormatError } from './tensor-codec.js';

export type ParameterValue = string | number | boolean;
export type Parameters = Readonly<Record<string, ParameterValue>>;

/** One tensor as it appears in an infer request or response (`data` absent when binary). */
export interface TensorJson {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: Parameters;
  data?: unknown[];
}

export interface RequestedOutputJson {
  name: string;
  parameters?: Parameters;
}

export interface InferRequestJson {
  id?: string;
  parameters?: Parameters;
  inputs: TensorJson[];
  outputs?: RequestedOutputJson[];
}

export interface InferResponseJson {
  id?: string;
  model_name: string;
  model_version?: string;
  parameters?: Parameters;
  outputs: TensorJson[];
}

/** GET /v2/models/{m}; same shape as src/model/metadata.ts ModelMetadata. */
export interface TensorMetadataJson {
  name: string;
  datatype: string;
  shape: number[];
}
export interface ModelMetadataJson {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadataJson[];
  outputs: TensorMetadataJson[];
}

/** GET /v2: server metadata. */
export interface ServerMetadataJson {
  name: string;
  version: string;
  extensions: string[];
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Record<string, unknown>, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new WireFormatError(`${what}: '${key}' must be a string`);
  return v;
}

function shapeOf(o: Record<string, unknown>, what: string): number[] {
  const v = o.shape;
  if (!Array.isArray(v) || !v.every((d) => Number.isSafeInteger(d) && d >= -1)) {
    throw new WireFormatError(`${what}: 'shape' must be an array of integers >= -1`);
  }
  return v as number[];
}

function parametersOf(o: Record<string, unknown>, what: string): Parameters | undefined {
  const p = o.parameters;
  if (p === undefined) return undefined;
  if (!isRecord(p)) throw new WireFormatError(`${what}: 'parameters' must be an object`);
  for (const [k, v] of Object.entries(p)) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      throw new WireFormatError(`${what}: parameter '${k}' must be a string, number or boolean`);
    }
  }
  return p as Parameters;
}

function tensorJson(v: unknown, what: string): TensorJson {
  if (!isRecord(v)) throw new WireFormatError(`${what} must be an object`);
  const name = str(v, 'name', what);
  const w = `${what} '${name}'`;
  const t: TensorJson = { name, datatype: str(v, 'datatype', w), shape: shapeOf(v, w) };
  const parameters = parametersOf(v, w);
  if (parameters !== undefined) t.parameters = parameters;
  if (v.data !== undefined) {
    if (!Array.isArray(v.data)) throw new WireFormatError(`${w}: 'data' must be an array`);
    t.data = v.data;
  }
  return t;
}

function list(o: Record<string, unknown>, key: string, what: string): unknown[] {
  const v = o[key];
  if (!Array.isArray(v)) throw new WireFormatError(`${what}: '${key}' must be an array`);
  return v;
}

export function parseInferResponse(v: unknown): InferResponseJson {
  const what = 'infer response';
  if (!isRecord(v)) throw new WireFormatError(`${what} must be a JSON object`);
  const r: InferResponseJson = {
    model_name: str(v, 'model_name', what),
    outputs: list(v, 'outputs', what).map((o, i) => tensorJson(o, `${what} output ${i}`)),
  };
  if (typeof v.id === 'string') r.id = v.id;
  if (typeof v.model_version === 'string') r.model_version = v.model_version;
  const parameters = parametersOf(v, what);
  if (parameters !== undefined) r.parameters = parameters;
  return r;
}

export function parseInferRequest(v: unknown): InferRequestJson {
  const what = 'inference request';
  if (!isRecord(v)) throw new WireFormatError(`${what} must be a JSON object`);
  const r: InferRequestJson = {
    inputs: list(v, 'inputs', what).map((o, i) => tensorJson(o, `${what} input ${i}`)),
  };
  if (v.id !== undefined) r.id = str(v, 'id', what);
  const parameters = parametersOf(v, what);
  if (parameters !== undefined) r.parameters = parameters;
  if (v.outputs !== undefined) {
    r.outputs = list(v, 'outputs', what).map((o, i) => {
      const w = `${what} output ${i}`;
      if (!isRecord(o)) throw new WireFormatError(`${w} must be an object`);
      const out: RequestedOutputJson = { name: str(o, 'name', w) };
      const p = parametersOf(o, w);
      if (p !== undefined) out.parameters = p;
      return out;
    });
  }
  return r;
}

function tensorMetadata(v: unknown, what: string): TensorMetadataJson {
  if (!isRecord(v)) throw new WireFormatError(`${what} must be an object`);
  const name = str(v, 'name', what);
  const w = `${what} '${name}'`;
  return { name, datatype: str(v, 'datatype', w), shape: shapeOf(v, w) };
}

export function parseModelMetadata(v: unknown): ModelMetadataJson {
  const what = 'model metadata';
  if (!isRecord(v)) throw new WireFormatError(`${what} must be a JSON object`);
  const versions = v.versions === undefined ? [] : list(v, 'versions', what);
  return {
    name: str(v, 'name', what),
    versions: versions.map(String),
    platform: typeof v.platform === 'string' ? v.platform : '',
    inputs: list(v, 'inputs', what).map((t, i) => tensorMetadata(t, `${what} input ${i}`)),
    outputs: list(v, 'outputs', what).map((t, i) => tensorMetadata(t, `${what} output ${i}`)),
  };
}

export function parseServerMetadata(v: unknown): ServerMetadataJson {
  const what = 'server metadata';
  if (!isRecord(v)) throw new WireFormatError(`${what} must be a JSON object`);
  const ext = Array.isArray(v.extensions) ? v.extensions.filter((e) => typeof e === 'string') : [];
  return { name: str(v, 'name', what), version: str(v, 'version', what), extensions: ext };
}

/** The message of Triton's `{"error": "..."}` body, or undefined when it is not one. */
export function errorMessageOf(body: string): string | undefined {
  try {
    const v: unknown = JSON.parse(body);
    return isRecord(v) && typeof v.error === 'string' ? v.error : undefined;
  } catch {
    return undefined;
  }
}
