/**
 * One model of the repository, loaded in onnxruntime-node and served the way Triton's
 * onnxruntime backend serves it: the config's inputs and outputs (auto-completed from the ONNX
 * file when there is no config.pbtxt), request checks with Triton's messages, a bounded queue in
 * front of `instance_group.count` concurrent runs, and, for models with a sequence_batching
 * state, implicit state kept per sequence id with idle reaping. The Triton behaviour copied here
 * is in docs/triton-notes.md: 'config.pbtxt and auto-complete', 'Triton 21.08 status codes',
 * 'Implicit state (sequence batcher)' and 'Binary tensor extension'.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import {
  configTypeFromDatatype,
  datatypeFromConfigType,
  type FixedDatatype,
  isFixedDatatype,
} from '../kserve/datatype.js';
import type { DecodedInferRequest, OutgoingTensor } from '../kserve/infer-body.js';
import type { ModelMetadataJson, TensorMetadataJson } from '../kserve/messages.js';
import {
  type ConfigState,
  type ConfigTensor,
  DEFAULT_SEQUENCE_IDLE_MICROSECONDS,
  parseConfigPbtxt,
  type TritonModelConfig,
} from '../kserve/model-config.js';
import type { Tensor, TensorArray } from '../kserve/tensor-codec.js';
import { readModelMetadata } from '../model/metadata.js';
import { InferenceError } from './inference-error.js';

/** ORT backend's default max_batch_size for auto-completed batchable models. */
const AUTO_COMPLETE_MAX_BATCH_SIZE = 4;
const MODEL_FILE = 'model.onnx';

const ORT_TYPE: Partial<Record<FixedDatatype, ort.Tensor.Type>> = {
  BOOL: 'bool',
  UINT8: 'uint8',
  INT8: 'int8',
  UINT16: 'uint16',
  INT16: 'int16',
  INT32: 'int32',
  UINT32: 'uint32',
  INT64: 'int64',
  UINT64: 'uint64',
  FP32: 'float32',
  FP64: 'float64',
};
const FROM_ORT: Record<string, FixedDatatype> = Object.fromEntries(
  Object.entries(ORT_TYPE).map(([k, v]) => [v, k as FixedDatatype]),
);

interface Sequence {
  state: Map<string, ort.Tensor>;
  lastUsed: number;
  /** Runs of one sequence happen in order (the direct strategy keeps a slot per sequence). */
  tail: Promise<unknown>;
}

function metadataTensor(t: ConfigTensor, batched: boolean): TensorMetadataJson {
  return {
    name: t.name,
    datatype: datatypeFromConfigType(t.data_type),
    shape: batched ? [-1, ...t.dims] : [...t.dims],
  };
}

/** Auto-complete: batchable only when every input and output leads with a dynamic dim. */
function autoComplete(meta: ModelMetadataJson, name: string): TritonModelConfig {
  const all = [...meta.inputs, ...meta.outputs];
  const batchable = all.every((t) => t.shape[0] === -1);
  const tensor = (t: TensorMetadataJson): ConfigTensor => ({
    name: t.name,
    data_type: configTypeFromDatatype(t.datatype),
    dims: batchable ? t.shape.slice(1) : t.shape,
  });
  return {
    name,
    platform: 'onnxruntime_onnx',
    backend: 'onnxruntime',
    max_batch_size: batchable ? AUTO_COMPLETE_MAX_BATCH_SIZE : 0,
    input: meta.inputs.map(tensor),
    output: meta.outputs.map(tensor),
    ...(batchable ? { dynamic_batching: { max_queue_size: 0 } } : {}),
    instance_group: [{ kind: 'KIND_CPU', count: 1 }],
  };
}

export interface ServedModelOptions {
  /** Injected clock for idle reaping (ms). */
  readonly now?: () => number;
}

export class ServedModel {
  readonly name: string;
  readonly version: string;
  readonly config: TritonModelConfig;
  readonly metadata: ModelMetadataJson;
  readonly #session: ort.InferenceSession;
  readonly #now: () => number;
  readonly #sequences = new Map<string, Sequence>();
  readonly #instances: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  #reaper: NodeJS.Timeout | undefined;

  private constructor(
    name: string,
    version: string,
    config: TritonModelConfig,
    session: ort.InferenceSession,
    opts: ServedModelOptions,
  ) {
    this.name = name;
    this.version = version;
    this.config = config;
    this.#session = session;
    this.#now = opts.now ?? Date.now;
    const batched = config.max_batch_size > 0;
    this.metadata = {
      name,
      versions: [version],
      platform: config.platform || `${config.backend}_onnx`,
      inputs: config.input.map((t) => metadataTensor(t, batched)),
      outputs: config.output.map((t) => metadataTensor(t, batched)),
    };
    this.#instances = Math.max(
      1,
      config.instance_group.reduce((n, g) => n + g.count, 0),
    );
    const seq = config.sequence_batching;
    if (seq !== undefined) {
      const idleMs =
        (seq.max_sequence_idle_microseconds || DEFAULT_SEQUENCE_IDLE_MICROSECONDS) / 1000;
      this.#reaper = setInterval(() => this.reapIdle(), Math.max(10, Math.min(idleMs / 2, 1000)));
      this.#reaper.unref();
    }
  }

  /** Load <repo>/<name>: the highest numeric version directory and config.pbtxt if present. */
  static async load(
    repository: string,
    name: string,
    opts: ServedModelOptions = {},
  ): Promise<ServedModel> {
    const dir = join(repository, name);
    const versions = (await readdir(dir, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && /^[1-9]\d*$/.test(e.name))
      .map((e) => e.name)
      .sort((a, b) => Number(b) - Number(a));
    const version = versions[0];
    if (version === undefined)
      throw new Error(
        `model ${name}: no numeric version directory in ${dir} (expected ${dir}/1/${MODEL_FILE})`,
      );
    let file = join(dir, version, MODEL_FILE);
    if ((await stat(file)).isDirectory()) file = join(file, MODEL_FILE);
    let config: TritonModelConfig;
    const pbtxt = await readFile(join(dir, 'config.pbtxt'), 'utf8').catch(
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      },
    );
    if (pbtxt === undefined) config = autoComplete(await readModelMetadata(file, name), name);
    else {
      config = parseConfigPbtxt(pbtxt);
      if (config.name !== '' && config.name !== name) {
        throw new Error(
          `model ${name}: config.pbtxt names it '${config.name}'; the directory name must match`,
        );
      }
      config = { ...config, name };
    }
    const session = await ort.InferenceSession.create(file, { executionProviders: ['cpu'] });
    const model = new ServedModel(name, version, config, session, opts);
    model.#checkAgainstFile();
    return model;
  }

  #checkAgainstFile(): void {
    const inputs = new Set(this.#session.inputNames);
    const outputs = new Set(this.#session.outputNames);
    const states = this.config.sequence_batching?.state ?? [];
    for (const t of this.config.input)
      if (!inputs.has(t.name))
        throw new Error(
          `model ${this.name}: config input '${t.name}' is not an input of ${MODEL_FILE}`,
        );
    for (const t of this.config.output)
      if (!outputs.has(t.name))
        throw new Error(
          `model ${this.name}: config output '${t.name}' is not an output of ${MODEL_FILE}`,
        );
    for (const s of states) {
      if (!inputs.has(s.input_name) || !outputs.has(s.output_name)) {
        throw new Error(
          `model ${this.name}: state ${s.input_name} → ${s.output_name} does not match ${MODEL_FILE}`,
        );
      }
    }
    const fed = new Set([
      ...this.config.input.map((t) => t.name),
      ...states.map((s) => s.input_name),
    ]);
    const missing = [...inputs].filter((n) => !fed.has(n));
    if (missing.length > 0)
      throw new Error(
        `model ${this.name}: ${MODEL_FILE} inputs ${missing.join(', ')} are neither config inputs nor states`,
      );
  }

  get openSequences(): number {
    return this.#sequences.size;
  }

  /** Drop sequences idle longer than max_sequence_idle_microseconds. */
  reapIdle(): void {
    const seq = this.config.sequence_batching;
    if (seq === undefined) return;
    const idleMs =
      (seq.max_sequence_idle_microseconds || DEFAULT_SEQUENCE_IDLE_MICROSECONDS) / 1000;
    const now = this.#now();
    for (const [id, s] of this.#sequences)
      if (now - s.lastUsed > idleMs) this.#sequences.delete(id);
  }

  async close(): Promise<void> {
    clearInterval(this.#reaper);
    this.#sequences.clear();
    await this.#session.release();
  }

  /** Run one request; outputs in config order, each marked binary or JSON as Triton would. */
  async infer(req: DecodedInferRequest): Promise<OutgoingTensor[]> {
    const c = this.config;
    const params = req.json.parameters ?? {};
    for (const key of Object.keys(params)) {
      if (key.startsWith('triton_'))
        throw new InferenceError(
          'INVALID_ARG',
          `parameter keys starting with 'triton_' are reserved for Triton usage and should not be specified.`,
        );
    }
    const feeds = this.#checkInputs(req.inputs);
    const requested = this.#requestedOutputs(req);
    const seqCfg = c.sequence_batching;
    if (seqCfg === undefined) {
      const result = await this.#run(
        feeds,
        requested.map((r) => r.name),
      );
      return requested.map((r) => ({
        tensor: this.#fromOrt(r.name, result[r.name]),
        binary: r.binary,
      }));
    }
    const id = params.sequence_id;
    if (id === undefined || id === 0 || id === '') {
      throw new InferenceError(
        'INVALID_ARG',
        `inference request to model '${this.name}' must specify a non-zero or non-empty correlation ID`,
      );
    }
    if (
      typeof id === 'boolean' ||
      (typeof id === 'number' && (!Number.isSafeInteger(id) || id < 0))
    ) {
      throw new InferenceError(
        'INVALID_ARG',
        `sequence_id must be an unsigned integer or a string`,
      );
    }
    const key = String(id);
    const start = params.sequence_start === true;
    const end = params.sequence_end === true;
    const batch = req.inputs[0]?.shape[0] ?? 1;
    if (c.max_batch_size > 0 && batch !== 1) {
      throw new InferenceError(
        'INVALID_ARG',
        `inference request to model '${this.name}' must specify batch-size 1 due to requirements of sequence batcher`,
      );
    }
    let seq = this.#sequences.get(key);
    if (start) {
      // A START for an open id ends the old sequence first (Triton logs a warning).
      seq = {
        state: this.#initialState(seqCfg.state),
        lastUsed: this.#now(),
        tail: Promise.resolve(),
      };
      this.#sequences.set(key, seq);
    } else if (seq === undefined) {
      throw new InferenceError(
        'INVALID_ARG',
        `inference request for sequence ${key} to model '${this.name}' must specify the START flag on the first request of the sequence`,
      );
    }
    const s = seq;
    const run = s.tail.then(async () => {
      for (const st of seqCfg.state)
        feeds[st.input_name] = s.state.get(st.input_name) as ort.Tensor;
      const fetches = [
        ...new Set([...requested.map((r) => r.name), ...seqCfg.state.map((st) => st.output_name)]),
      ];
      const result = await this.#run(feeds, fetches);
      s.lastUsed = this.#now();
      if (end) this.#sequences.delete(key);
      else
        for (const st of seqCfg.state)
          s.state.set(st.input_name, result[st.output_name] as ort.Tensor);
      return requested.map((r) => ({
        tensor: this.#fromOrt(r.name, result[r.name]),
        binary: r.binary,
      }));
    });
    s.tail = run.catch(() => undefined);
    s.lastUsed = this.#now();
    return run;
  }

  #initialState(states: readonly ConfigState[]): Map<string, ort.Tensor> {
    const m = new Map<string, ort.Tensor>();
    const batched = this.config.max_batch_size > 0;
    for (const st of states) {
      // With initial_state, Triton starts from it (prepending the batch dim); without it the
      // start is uninitialised memory on Triton: here an empty past, the sane equivalent.
      const dims = st.initial_state?.dims ?? st.dims.map((d) => Math.max(d, 0));
      const shape = batched ? [1, ...dims] : [...dims];
      const count = shape.reduce((a, b) => a * b, 1);
      const type = datatypeFromConfigType(st.data_type);
      if (type !== 'FP32')
        throw new InferenceError(
          'UNSUPPORTED',
          `state ${st.input_name}: only TYPE_FP32 states are supported`,
        );
      m.set(st.input_name, new ort.Tensor('float32', new Float32Array(count), shape));
    }
    return m;
  }

  #checkInputs(inputs: readonly Tensor[]): Record<string, ort.Tensor> {
    const c = this.config;
    const batched = c.max_batch_size > 0;
    const feeds: Record<string, ort.Tensor> = {};
    let batch: number | undefined;
    for (const t of inputs) {
      const spec = c.input.find((i) => i.name === t.name);
      if (spec === undefined)
        throw new InferenceError(
          'INVALID_ARG',
          `unexpected inference input '${t.name}' for model '${this.name}'`,
        );
      if (feeds[t.name] !== undefined)
        throw new InferenceError('INVALID_ARG', `input '${t.name}' is specified more than once`);
      const want = datatypeFromConfigType(spec.data_type);
      if (t.datatype !== want) {
        throw new InferenceError(
          'INVALID_ARG',
          `inference input '${t.name}' data-type is '${t.datatype}', but model '${this.name}' expects '${want}'`,
        );
      }
      const dims = batched ? t.shape.slice(1) : [...t.shape];
      const fits =
        dims.length === spec.dims.length && spec.dims.every((d, i) => d === -1 || d === dims[i]);
      if (!fits) {
        const expected = batched ? `[-1,${spec.dims.join(',')}]` : `[${spec.dims.join(',')}]`;
        throw new InferenceError(
          'INVALID_ARG',
          `unexpected shape for input '${t.name}' for model '${this.name}'. Expected ${expected}, got [${t.shape.join(',')}]${batched ? '' : '. NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero. See the model configuration docs for more info on max_batch_size.'}`,
        );
      }
      if (batched) {
        const b = t.shape[0] ?? 0;
        if (b > c.max_batch_size)
          throw new InferenceError(
            'INVALID_ARG',
            `inference request batch-size must be <= ${c.max_batch_size} for '${this.name}'`,
          );
        if (batch !== undefined && b !== batch)
          throw new InferenceError(
            'INVALID_ARG',
            `input '${t.name}' batch size does not match other inputs for '${this.name}'`,
          );
        batch = b;
      }
      const type = ORT_TYPE[t.datatype];
      if (type === undefined)
        throw new InferenceError(
          'UNSUPPORTED',
          `datatype ${t.datatype} is not supported by this server`,
        );
      feeds[t.name] = new ort.Tensor(type, t.data as Exclude<TensorArray, Uint16Array>, [
        ...t.shape,
      ]);
    }
    if (Object.keys(feeds).length !== c.input.length) {
      throw new InferenceError(
        'INVALID_ARG',
        `expected ${c.input.length} inputs but got ${Object.keys(feeds).length} inputs for model '${this.name}'`,
      );
    }
    return feeds;
  }

  #requestedOutputs(req: DecodedInferRequest): { name: string; binary: boolean }[] {
    const params = req.json.parameters ?? {};
    const listed = req.json.outputs;
    if (listed === undefined || listed.length === 0) {
      // Unlisted outputs follow binary_data_output.
      const binary = params.binary_data_output === true;
      return this.config.output.map((o) => ({ name: o.name, binary }));
    }
    return listed.map((o) => {
      if (!this.config.output.some((c) => c.name === o.name)) {
        throw new InferenceError(
          'INVALID_ARG',
          `unexpected inference output '${o.name}' for model '${this.name}'`,
        );
      }
      if (o.parameters?.classification !== undefined)
        throw new InferenceError(
          'UNSUPPORTED',
          'the classification extension is not supported by this server',
        );
      // A listed output is binary only if its own binary_data says so (Triton's code, not docs).
      return { name: o.name, binary: o.parameters?.binary_data === true };
    });
  }

  async #run(
    feeds: Record<string, ort.Tensor>,
    fetches: string[],
  ): Promise<ort.InferenceSession.ReturnType> {
    await this.#acquire();
    try {
      return await this.#session.run(feeds, fetches);
    } catch (err) {
      throw new InferenceError(
        'INTERNAL',
        `onnx runtime error: ${err instanceof Error ? err.message : String(err)}`,
      );
    } finally {
      this.#release();
    }
  }

  async #acquire(): Promise<void> {
    if (this.#running < this.#instances) {
      this.#running++;
      return;
    }
    const limit = this.config.dynamic_batching?.max_queue_size ?? 0;
    if (limit > 0 && this.#waiting.length >= limit)
      throw new InferenceError('UNAVAILABLE', 'Exceeds maximum queue size');
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next();
    else this.#running--;
  }

  #fromOrt(name: string, t: ort.Tensor | undefined): Tensor {
    if (t === undefined) throw new InferenceError('INTERNAL', `output '${name}' was not produced`);
    const datatype = FROM_ORT[t.type];
    if (datatype === undefined || !isFixedDatatype(datatype))
      throw new InferenceError(
        'UNSUPPORTED',
        `output '${name}' has type ${t.type}, which this server cannot send`,
      );
    return { name, datatype, shape: t.dims.map(Number), data: t.data as TensorArray };
  }
}
