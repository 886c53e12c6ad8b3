/**
 * Triton's model configuration: the config.pbtxt text format (read by the model server) and the
 * JSON form of GET /v2/models/{m}/config (Triton's model_config.proto; docs/triton-notes.md,
 * 'config.pbtxt and auto-complete'). Only the fields a GPT-2 deployment uses are understood; the
 * rest of a pbtxt is parsed and ignored.
 */
import { isRecord } from './messages.js';

export interface ConfigTensor {
  readonly name: string;
  /** Enum name as in the config: 'TYPE_INT64', 'TYPE_FP32', ... */
  readonly data_type: string;
  readonly dims: readonly number[];
}

export interface ConfigState {
  readonly input_name: string;
  readonly output_name: string;
  readonly data_type: string;
  readonly dims: readonly number[];
  /** ≥ 22.01: the state a sequence starts from; only zero_data is supported here. */
  readonly initial_state?: {
    readonly name: string;
    readonly data_type: string;
    readonly dims: readonly number[];
    readonly zero_data: boolean;
  };
}

export interface TritonModelConfig {
  readonly name: string;
  readonly platform: string;
  readonly backend: string;
  readonly max_batch_size: number;
  readonly input: readonly ConfigTensor[];
  readonly output: readonly ConfigTensor[];
  /** Present when the model has a dynamic_batching block; max_queue_size 0 = unbounded. */
  readonly dynamic_batching?: { readonly max_queue_size: number };
  readonly sequence_batching?: {
    /** 0 in the file means Triton's default of 1 s. */
    readonly max_sequence_idle_microseconds: number;
    readonly state: readonly ConfigState[];
  };
  readonly instance_group: readonly { readonly kind: string; readonly count: number }[];
  /** `parameters` string values (Triton's map<string, ModelParameter>); `model build` records
   * how the graph was built here (gpt2.*), which Triton serves even when the model failed to load. */
  readonly parameters?: Readonly<Record<string, string>>;
}

export class ModelConfigError extends Error {
  override readonly name = 'ModelConfigError';
}

/** Triton's default idle time before a sequence is reaped (model_config.proto). */
export const DEFAULT_SEQUENCE_IDLE_MICROSECONDS = 1_000_000;

// ---- protobuf text format → generic tree (every field collected as a list) ----

type TextValue = string | number | boolean | TextMessage;
interface TextMessage {
  [field: string]: TextValue[];
}

const TOKEN =
  /\s*(?:#[^\n]*\n?\s*)*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[{}[\]:,;<>]|[^\s{}[\]:,;<>#"']+)/y;

function tokenize(text: string): string[] {
  const out: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(text);
    if (m === null) {
      // exec resets lastIndex on failure; only trailing blanks and comments may remain.
      if (/^\s*(#[^\n]*\n?\s*)*$/.test(text.slice(at))) break;
      throw new ModelConfigError(`config.pbtxt: cannot read near '${text.slice(at, at + 20)}'`);
    }
    out.push(m[1] ?? '');
  }
  return out;
}

function scalar(tok: string): string | number | boolean {
  if (tok.startsWith('"') || tok.startsWith("'")) return tok.slice(1, -1).replace(/\\(.)/g, '$1');
  if (tok === 'true') return true;
  if (tok === 'false') return false;
  if (/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(tok)) return Number(tok);
  return tok; // enum identifier
}

export function parseTextProto(text: string): TextMessage {
  const toks = tokenize(text);
  let i = 0;
  const peek = () => toks[i];
  const next = () => {
    const t = toks[i++];
    if (t === undefined) throw new ModelConfigError('config.pbtxt ends unexpectedly');
    return t;
  };
  const value = (): TextValue => {
    const t = next();
    if (t === '{' || t === '<') return message(t === '{' ? '}' : '>');
    if (/^[{}[\]:,;<>]$/.test(t)) throw new ModelConfigError(`config.pbtxt: unexpected '${t}'`);
    return scalar(t);
  };
  const message = (close: string | undefined): TextMessage => {
    const msg: TextMessage = {};
    for (;;) {
      const t = peek();
      if (t === undefined) {
        if (close === undefined) return msg;
        throw new ModelConfigError(`config.pbtxt: missing '${close}'`);
      }
      if (t === close) {
        i++;
        return msg;
      }
      if (t === ',' || t === ';') {
        i++;
        continue;
      }
      const field = next();
      if (!/^[A-Za-z_][\w.]*$/.test(field))
        throw new ModelConfigError(`config.pbtxt: unexpected '${field}'`);
      if (peek() === ':') i++;
      const values = msg[field] ?? [];
      msg[field] = values;
      if (peek() === '[') {
        i++;
        while (peek() !== ']') {
          if (peek() === ',') i++;
          else values.push(value());
        }
        i++;
      } else values.push(value());
    }
  };
  return message(undefined);
}

// ---- narrowing into TritonModelConfig ----

function one(m: TextMessage, f: string): TextValue | undefined {
  const v = m[f];
  return v === undefined ? undefined : v[v.length - 1];
}
function str(m: TextMessage, f: string, dflt = ''): string {
  const v = one(m, f);
  if (v === undefined) return dflt;
  if (typeof v !== 'string') throw new ModelConfigError(`config: '${f}' must be a string`);
  return v;
}
function num(m: TextMessage, f: string, dflt = 0): number {
  const v = one(m, f);
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v))
    throw new ModelConfigError(`config: '${f}' must be an integer`);
  return v;
}
function msgs(m: TextMessage, f: string): TextMessage[] {
  return (m[f] ?? []).map((v) => {
    if (typeof v !== 'object') throw new ModelConfigError(`config: '${f}' must be a message`);
    return v;
  });
}
function dims(m: TextMessage, f: string): number[] {
  return (m[f] ?? []).map((v) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < -1) {
      throw new ModelConfigError(`config: '${f}' must list integers >= -1`);
    }
    return v;
  });
}

function tensors(m: TextMessage, f: string): ConfigTensor[] {
  return msgs(m, f).map((t) => ({
    name: str(t, 'name'),
    data_type: str(t, 'data_type'),
    dims: dims(t, 'dims'),
  }));
}

/** pbtxt lists map entries as { key, value { string_value } }; Triton's JSON keys an object. */
function parameters(m: TextMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of msgs(m, 'parameters')) {
    // JSON numbers-as-strings may have become numbers (modelConfigFromJson): take them back.
    const text = (value: TextMessage | undefined): string => {
      const v = value === undefined ? undefined : one(value, 'string_value');
      if (typeof v === 'object')
        throw new ModelConfigError("config: 'string_value' must be a string");
      return v === undefined ? '' : String(v);
    };
    if (typeof one(entry, 'key') === 'string') {
      out[str(entry, 'key')] = text(msgs(entry, 'value')[0]);
      continue;
    }
    for (const key of Object.keys(entry)) out[key] = text(msgs(entry, key)[0]);
  }
  return out;
}

function fromTree(m: TextMessage): TritonModelConfig {
  const seq = msgs(m, 'sequence_batching')[0];
  const dyn = msgs(m, 'dynamic_batching')[0];
  const queuePolicy = dyn === undefined ? undefined : msgs(dyn, 'default_queue_policy')[0];
  return {
    name: str(m, 'name'),
    platform: str(m, 'platform'),
    backend: str(m, 'backend'),
    max_batch_size: num(m, 'max_batch_size'),
    input: tensors(m, 'input'),
    output: tensors(m, 'output'),
    ...(dyn === undefined
      ? {}
      : {
          dynamic_batching: {
            max_queue_size: queuePolicy === undefined ? 0 : num(queuePolicy, 'max_queue_size'),
          },
        }),
    ...(seq === undefined
      ? {}
      : {
          sequence_batching: {
            max_sequence_idle_microseconds: num(seq, 'max_sequence_idle_microseconds'),
            state: msgs(seq, 'state').map((s) => {
              const init = msgs(s, 'initial_state')[0];
              return {
                input_name: str(s, 'input_name'),
                output_name: str(s, 'output_name'),
                data_type: str(s, 'data_type'),
                dims: dims(s, 'dims'),
                ...(init === undefined
                  ? {}
                  : {
                      initial_state: {
                        name: str(init, 'name'),
                        data_type: str(init, 'data_type'),
                        dims: dims(init, 'dims'),
                        zero_data: one(init, 'zero_data') === true,
                      },
                    }),
              };
            }),
          },
        }),
    instance_group: msgs(m, 'instance_group').map((g) => ({
      kind: str(g, 'kind', 'KIND_AUTO'),
      count: num(g, 'count', 1),
    })),
    parameters: parameters(m),
  };
}

export function parseConfigPbtxt(text: string): TritonModelConfig {
  return fromTree(parseTextProto(text));
}

/** JSON (GET .../config) → the same tree shape, so one narrowing serves both forms. */
function treeFromJson(v: unknown, path: string): TextMessage {
  if (!isRecord(v)) throw new ModelConfigError(`model config: '${path}' must be an object`);
  const m: TextMessage = {};
  for (const [k, val] of Object.entries(v)) {
    const items = Array.isArray(val) ? val : [val];
    m[k] = items.map((item) => {
      if (typeof item === 'string' || typeof item === 'number' || typeof item === 'boolean')
        return item;
      return treeFromJson(item, `${path}.${k}`);
    });
  }
  return m;
}

export function modelConfigFromJson(v: unknown): TritonModelConfig {
  const tree = treeFromJson(v, 'config');
  // Triton prints int64 fields that it does not convert back as strings; accept both.
  const fixNumbers = (m: TextMessage): void => {
    for (const [k, vals] of Object.entries(m)) {
      m[k] = vals.map((x) => {
        if (typeof x === 'object') {
          fixNumbers(x);
          return x;
        }
        return typeof x === 'string' && /^-?\d+$/.test(x) && k !== 'name' ? Number(x) : x;
      });
    }
  };
  fixNumbers(tree);
  return fromTree(tree);
}

/** The JSON Triton returns for GET .../config (snake_case, primitives always printed). */
export function modelConfigToJson(c: TritonModelConfig): Record<string, unknown> {
  const t = (x: ConfigTensor) => ({
    name: x.name,
    data_type: x.data_type,
    format: 'FORMAT_NONE',
    dims: [...x.dims],
    is_shape_tensor: false,
    allow_ragged_batch: false,
    optional: false,
  });
  return {
    name: c.name,
    platform: c.platform,
    backend: c.backend,
    version_policy: { latest: { num_versions: 1 } },
    max_batch_size: c.max_batch_size,
    input: c.input.map(t),
    output: c.output.map((x) => ({
      name: x.name,
      data_type: x.data_type,
      dims: [...x.dims],
      label_filename: '',
      is_shape_tensor: false,
    })),
    ...(c.dynamic_batching === undefined
      ? {}
      : {
          dynamic_batching: {
            preferred_batch_size: [],
            max_queue_delay_microseconds: 0,
            default_queue_policy: {
              timeout_action: 'REJECT',
              default_timeout_microseconds: 0,
              allow_timeout_override: false,
              max_queue_size: c.dynamic_batching.max_queue_size,
            },
          },
        }),
    ...(c.sequence_batching === undefined
      ? {}
      : {
          sequence_batching: {
            max_sequence_idle_microseconds:
              c.sequence_batching.max_sequence_idle_microseconds ||
              DEFAULT_SEQUENCE_IDLE_MICROSECONDS,
            control_input: [],
            state: c.sequence_batching.state.map((s) => ({ ...s, dims: [...s.dims] })),
            direct: {},
          },
        }),
    instance_group: c.instance_group.map((g) => ({
      name: c.name,
      kind: g.kind,
      count: g.count,
      gpus: [],
      passive: false,
    })),
    default_model_filename: 'model.onnx',
    parameters: Object.fromEntries(
      Object.entries(c.parameters ?? {}).map(([k, v]) => [k, { string_value: v }]),
    ),
  };
}
