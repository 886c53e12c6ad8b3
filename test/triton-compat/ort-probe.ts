/**
 * Child process for triton-compat.test.ts: opens model files with ONE onnxruntime release (an
 * npm package name in argv[2]) and prints, as one JSON line, what Triton's onnxruntime backend
 * would see and what one greedy step returns. One runtime per process: two onnxruntime native
 * libraries in one process may clash.
 *
 * Shapes come from onnxruntime's C API — SessionGetInputTypeInfo / SessionGetOutputTypeInfo,
 * the calls Triton's onnxruntime backend makes at load (triton-inference-server/onnxruntime_backend,
 * src/onnxruntime.cc) — called through koffi on the libonnxruntime.so that the npm package
 * bundles. onnxruntime-node < 1.22 exposes no shapes in JavaScript, so this is the one way that
 * works on every release; where the binding has `outputMetadata` its answer is returned too, and
 * the test holds the two equal.
 *
 * Jobs arrive on stdin: [{ "id": "...", "file": "/path/model.onnx" }].
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import koffi from 'koffi';

/** Every call used here is in OrtApi version 1, which every release serves. */
const ORT_API_VERSION = 1;
/** Positions of the functions we call in the OrtApi struct (onnxruntime_c_api.h; ABI-stable). */
const ORT = {
  GetErrorMessage: 2,
  CreateEnv: 3,
  CreateSession: 7,
  CreateSessionOptions: 10,
  SetIntraOpNumThreads: 24,
  SessionGetInputCount: 30,
  SessionGetOutputCount: 31,
  SessionGetInputTypeInfo: 33,
  SessionGetOutputTypeInfo: 34,
  SessionGetInputName: 36,
  SessionGetOutputName: 37,
  CastTypeInfoToTensorInfo: 55,
  GetTensorElementType: 60,
  GetDimensionsCount: 61,
  GetDimensions: 62,
  GetAllocatorWithDefaultOptions: 78,
} as const;
const ORT_LOGGING_LEVEL_ERROR = 3;
/** ONNXTensorElementDataType → Triton's datatype names. */
const ELEMENT_TYPES: Record<number, string> = { 1: 'FP32', 6: 'INT32', 7: 'INT64', 9: 'BOOL' };
/** " The quick brown" in GPT-2 tokens: any ids below the vocabulary size would do. */
const PROMPT = [383, 2068, 7586];

export interface ProbeTensor {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ProbeResult {
  id: string;
  runtime: string;
  /** undefined when the session opened. */
  loadError?: string;
  inputs: ProbeTensor[];
  outputs: ProbeTensor[];
  /** The binding's own outputMetadata (symbolic dims as -1), where the release has it. */
  bindingOutputs?: ProbeTensor[];
  /** Dims of every output of one step on PROMPT. */
  stepDims?: Record<string, number[]>;
  /** The last position's logits (base64 float32), or next_token's id and logprob. */
  lastLogits?: string;
  nextToken?: number;
  logprob?: number;
  /** The step failed after the session opened (a kernel refusing its inputs). */
  stepError?: string;
}

type Pointer = unknown;

/** The OrtApi, as callable functions that throw onnxruntime's own message on failure. */
function openOrtApi(libraryFile: string) {
  const lib = koffi.load(libraryFile);
  const base: Pointer = lib.func('void *OrtGetApiBase()')();
  const [getApi, getVersion] = koffi.decode(base, 'void *', 2) as [Pointer, Pointer];
  const version = koffi.call(
    getVersion,
    koffi.proto('const char *OrtGetVersionString()'),
  ) as string;
  const api: Pointer = koffi.call(
    getApi,
    koffi.proto('void *OrtGetApi(uint32_t)'),
    ORT_API_VERSION,
  );
  if (api === null) throw new Error(`onnxruntime ${version} has no API version ${ORT_API_VERSION}`);
  const table = koffi.decode(api, 'void *', ORT.GetAllocatorWithDefaultOptions + 1) as Pointer[];
  const protos = new Map<string, ReturnType<typeof koffi.proto>>();
  const fn = (index: number, signature: string) => {
    let proto = protos.get(signature);
    if (proto === undefined) {
      proto = koffi.proto(signature);
      protos.set(signature, proto);
    }
    const p = proto;
    return (...args: unknown[]): unknown => koffi.call(table[index], p, ...args);
  };
  const errorMessage = fn(ORT.GetErrorMessage, 'const char *OrtGetErrorMessage(void *)');
  const checked =
    (index: number, signature: string) =>
    (...args: unknown[]): void => {
      const status = fn(index, signature)(...args);
      if (status !== null) throw new Error(String(errorMessage(status)));
    };
  return {
    version,
    createEnv: checked(ORT.CreateEnv, 'void *OrtCreateEnv(int, const char *, _Out_ void **)'),
    createSessionOptions: checked(
      ORT.CreateSessionOptions,
      'void *OrtCreateSessionOptions(_Out_ void **)',
    ),
    setIntraOpNumThreads: checked(
      ORT.SetIntraOpNumThreads,
      'void *OrtSetIntraOpNumThreads(void *, int)',
    ),
    createSession: checked(
      ORT.CreateSession,
      'void *OrtCreateSession(void *, const char *, void *, _Out_ void **)',
    ),
    inputCount: checked(
      ORT.SessionGetInputCount,
      'void *OrtSessionGetInputCount(void *, _Out_ size_t *)',
    ),
    outputCount: checked(
      ORT.SessionGetOutputCount,
      'void *OrtSessionGetOutputCount(void *, _Out_ size_t *)',
    ),
    inputTypeInfo: checked(
      ORT.SessionGetInputTypeInfo,
      'void *OrtSessionGetInputTypeInfo(void *, size_t, _Out_ void **)',
    ),
    outputTypeInfo: checked(
      ORT.SessionGetOutputTypeInfo,
      'void *OrtSessionGetOutputTypeInfo(void *, size_t, _Out_ void **)',
    ),
    inputName: checked(
      ORT.SessionGetInputName,
      'void *OrtSessionGetInputName(void *, size_t, void *, _Out_ char **)',
    ),
    outputName: checked(
      ORT.SessionGetOutputName,
      'void *OrtSessionGetOutputName(void *, size_t, void *, _Out_ char **)',
    ),
    tensorInfo: checked(
      ORT.CastTypeInfoToTensorInfo,
      'void *OrtCastTypeInfoToTensorInfo(void *, _Out_ void **)',
    ),
    elementType: checked(
      ORT.GetTensorElementType,
      'void *OrtGetTensorElementType(void *, _Out_ int *)',
    ),
    dimensionsCount: checked(
      ORT.GetDimensionsCount,
      'void *OrtGetDimensionsCount(void *, _Out_ size_t *)',
    ),
    dimensions: checked(ORT.GetDimensions, 'void *OrtGetDimensions(void *, int64_t *, size_t)'),
    defaultAllocator: checked(
      ORT.GetAllocatorWithDefaultOptions,
      'void *OrtGetAllocatorWithDefaultOptions(_Out_ void **)',
    ),
  };
}

type OrtApi = ReturnType<typeof openOrtApi>;

/** Inputs and outputs as the session reports them (what Triton compares with config.pbtxt). */
function sessionTensors(api: OrtApi, env: Pointer, file: string) {
  const out: Pointer[] = [null];
  api.createSessionOptions(out);
  const options = out[0];
  api.setIntraOpNumThreads(options, 1);
  api.createSession(env, file, options, out);
  const session = out[0];
  api.defaultAllocator(out);
  const allocator = out[0];
  const list = (
    count: typeof api.inputCount,
    name: typeof api.inputName,
    typeInfo: typeof api.inputTypeInfo,
  ): ProbeTensor[] => {
    const n: number[] = [0];
    count(session, n);
    const tensors: ProbeTensor[] = [];
    for (let i = 0; i < n[0]!; i++) {
      const s: (string | null)[] = [null];
      name(session, i, allocator, s);
      typeInfo(session, i, out);
      const info = out[0];
      api.tensorInfo(info, out);
      const tensor = out[0];
      const type: number[] = [0];
      api.elementType(tensor, type);
      const rank: number[] = [0];
      api.dimensionsCount(tensor, rank);
      const dims = new BigInt64Array(rank[0]!);
      api.dimensions(tensor, dims, rank[0]);
      tensors.push({
        name: String(s[0]),
        datatype: ELEMENT_TYPES[type[0]!] ?? `onnx-type-${type[0]}`,
        shape: [...dims].map(Number),
      });
    }
    return tensors;
  };
  return {
    inputs: list(api.inputCount, api.inputName, api.inputTypeInfo),
    outputs: list(api.outputCount, api.outputName, api.outputTypeInfo),
  };
}

// The slice of onnxruntime-node's API used here, the same from 1.10 to 1.30.
interface OrtTensor {
  readonly dims: readonly number[];
  readonly data: ArrayLike<number | bigint>;
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  readonly outputMetadata?: readonly {
    name: string;
    isTensor: boolean;
    type?: string;
    shape?: readonly (number | string)[];
  }[];
}
interface OrtModule {
  InferenceSession: {
    create(file: string, options: Record<string, unknown>): Promise<OrtSession>;
  };
  Tensor: new (
    type: string,
    data: Float32Array | BigInt64Array | Int32Array,
    dims: readonly number[],
  ) => OrtTensor;
}

const BINDING_TYPES: Record<string, string> = { float32: 'FP32', int64: 'INT64', int32: 'INT32' };

/** Feeds for one step on PROMPT, shaped from the session's own inputs. */
function feeds(ort: OrtModule, inputs: readonly ProbeTensor[]): Record<string, OrtTensor> {
  const kv = inputs.some((t) => t.name.startsWith('past_key_values.'));
  const ints = (t: ProbeTensor, values: number[]) =>
    t.datatype === 'INT32'
      ? new ort.Tensor('int32', Int32Array.from(values), [1, values.length])
      : new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), [1, values.length]);
  const result: Record<string, OrtTensor> = {};
  for (const t of inputs) {
    const base = t.name.replace(/:0$/, '');
    if (base === 'input_ids') result[t.name] = ints(t, PROMPT);
    else if (base === 'attention_mask') {
      // kv: one zero past position, masked out (how the gateway starts a sequence).
      result[t.name] = ints(t, kv ? [0, ...PROMPT.map(() => 1)] : PROMPT.map(() => 1));
    } else if (base === 'position_ids') result[t.name] = ints(t, [...PROMPT.keys()]);
    else if (t.name.startsWith('past_key_values.')) {
      const dims = [1, t.shape[1]!, 1, t.shape[3]!];
      result[t.name] = new ort.Tensor('float32', new Float32Array(dims[1]! * dims[3]!), dims);
    } else throw new Error(`no feed for input ${t.name}`);
  }
  return result;
}

async function step(ort: OrtModule, file: string, r: ProbeResult): Promise<void> {
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
  if (session.outputMetadata !== undefined) {
    r.bindingOutputs = session.outputMetadata.map((m) => ({
      name: m.name,
      datatype: BINDING_TYPES[m.type ?? ''] ?? String(m.type),
      shape: (m.shape ?? []).map((d) => (typeof d === 'number' ? d : -1)),
    }));
  }
  const out = await session.run(feeds(ort, r.inputs));
  r.stepDims = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v.dims]]));
  const logits = out.logits ?? out.last_logits;
  if (logits !== undefined) {
    const vocab = logits.dims[logits.dims.length - 1]!;
    const all = logits.data as Float32Array;
    const row = all.slice(all.length - vocab);
    r.lastLogits = Buffer.from(row.buffer, row.byteOffset, row.byteLength).toString('base64');
  }
  if (out.next_token !== undefined) r.nextToken = Number(out.next_token.data[0]);
  if (out.logprob !== undefined) r.logprob = Number(out.logprob.data[0]);
}

async function main(): Promise<void> {
  const pkg = process.argv[2];
  if (pkg === undefined) throw new Error('usage: ort-probe <onnxruntime-node package>');
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve(`${pkg}/package.json`));
  const napi = readdirSync(join(root, 'bin')).find((d) => d.startsWith('napi-v'));
  if (napi === undefined) throw new Error(`${pkg} carries no native binaries`);
  const binDir = join(root, 'bin', napi, process.platform, process.arch);
  const lib = readdirSync(binDir).find((f) => /^libonnxruntime\.so(\.|$)/.test(f));
  if (lib === undefined) throw new Error(`${pkg} has no libonnxruntime.so in ${binDir}`);
  const api = openOrtApi(join(binDir, lib));
  const ort = require(pkg) as OrtModule;
  const env: Pointer[] = [null];
  api.createEnv(ORT_LOGGING_LEVEL_ERROR, 'triton-compat', env);

  const jobs = JSON.parse(readFileSync(0, 'utf8')) as { id: string; file: string }[];
  const results: ProbeResult[] = [];
  for (const job of jobs) {
    const r: ProbeResult = { id: job.id, runtime: api.version, inputs: [], outputs: [] };
    try {
      Object.assign(r, sessionTensors(api, env[0], job.file));
    } catch (err) {
      r.loadError = (err as Error).message;
    }
    if (r.loadError === undefined) {
      await step(ort, job.file, r).catch((err: Error) => {
        r.stepError = err.message;
      });
    }
    results.push(r);
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

await main();
