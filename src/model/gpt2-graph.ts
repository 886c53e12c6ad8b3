/**
 * The GPT-2 forward pass as an ONNX graph of standard operators (opset 13), in four serving
 * variants. Tensor names are the interface (see signature.ts):
 *
 *   logits:     input_ids, attention_mask [batch, seq] INT64 → logits [batch, seq, vocab]
 *   last:       same inputs → last_logits [batch, vocab] (each row's last real token)
 *   next-token: same inputs → next_token [batch, 1] INT64, logprob [batch, 1] FP32
 *   kv:         input_ids [batch, seq], attention_mask [batch, past+seq], position_ids [batch, seq],
 *               past_key_values.{i}.key|value [batch, n_head, past, head_dim]
 *               → logits [batch, 1, vocab] (each row's last real new token; with --full-logits
 *               [batch, seq, vocab]), present.{i}.key|value [batch, n_head, past+seq, head_dim],
 *               and (not with --full-logits) next_token [batch, 1] INT64, logprob [batch, 1] FP32
 *               of that last token, as next-token's
 *   seed signature (logits only): input_ids:0, attention_mask:0 INT32 → past_key_values
 *               [n_layer, 2, batch, n_head, seq, head_dim], logits (that order, as recorded).
 *
 * Positions for the stateless variants come from the mask (cumsum − 1), so right and left padding
 * both work. The LM head multiplies by `wte` itself through Gemm(transB=1): the file stores the
 * tied matrix once and onnxruntime runs it without a transposed copy.
 */
import type { ModelVariant } from '../contract/model.js';
import type { Gpt2Config } from './configs.js';
import {
  type AttributeValue,
  type Dim,
  externalTensorProto,
  nodeProto,
  OnnxType,
  smallTensorProto,
  tensorProto,
  valueInfoProto,
} from './onnx-proto.js';
import { type Producer, ProtoMessage } from './protobuf.js';
import { QUANT_BLOCK, type QuantizedMatrix, quantizeInt8 } from './quantize.js';
import { elementCount, type WeightSpec, weightSpecs } from './weights.js';

/**
 * Opset 13 / IR 7: within what Seldon's default Triton 21.08 (onnxruntime 1.8) accepts, where the
 * notebook's opset-13 model ran — so the seed signature can be a drop-in there (unverified on
 * 21.08 itself). The one newer operator a GPT-2 wants, LayerNormalization (opset 17), is spelled
 * out (see layerNorm); onnxruntime fuses it back at load (seen in its profile).
 */
export const OPSET_VERSION = 13;
/**
 * Bumped whenever the graph built for the same options changes, and stored in the file's metadata
 * (`gpt2.graph_version`), so that a cached build (the default model) is known to be stale.
 * 2: kv emits only each row's last position by default.
 * 3: kv declares that position dim as 1; --fused gives MultiHeadAttention a bias per head.
 * 4: kv also outputs next_token and logprob (the greedy choice computed in the graph).
 */
export const GRAPH_VERSION = 4;
export const IR_VERSION = 7;
/** onnxruntime's contrib operator domain, used by --fused and --quantize graphs. */
export const CONTRIB_DOMAIN = 'com.microsoft';
/** MatMulNBits accuracy_level 4: int8 activations too, the fast CPU path (level 0 dequantizes to
 * float per call and was ~50× slower in a micro-benchmark on onnxruntime-node 1.30). */
const INT8_ACCURACY_LEVEL = 4;
/** Added to the scores of masked keys; finite so that a fully masked row never yields NaN. */
const MASK_VALUE = -1e9;

const BATCH = 'batch_size';
const SEQ = 'sequence_length';
const PAST = 'past_sequence_length';
const TOTAL = 'total_sequence_length';

export interface GraphOptions {
  config: Gpt2Config;
  variant: ModelVariant;
  seedSignature: boolean;
  /** Use onnxruntime's com.microsoft fused operators (see fusedLayers). */
  fused?: boolean;
  /** Block-wise int8 weights for the transformer blocks' matrices (MatMulNBits, onnxruntime). */
  quantize?: 'int8';
  /** kv only: logits for every new position [batch, seq, vocab] instead of each row's last. */
  fullLogits?: boolean;
  /** When set, weights go to this external data file instead of the model file. */
  externalData?: ExternalData;
  /** Streams a weight's float32 bytes into the file. */
  weightProducer: (spec: WeightSpec) => Producer;
}

/** The external data file's contents, in order: filled while the graph is built. */
export interface ExternalData {
  /** File name relative to the model file, e.g. `model.onnx_data`. */
  location: string;
  chunks: { length: number; produce: Producer }[];
  bytes: number;
}

class GraphBuilder {
  constructor(private readonly external: ExternalData | undefined) {}

  readonly nodes: ProtoMessage[] = [];
  readonly initializers: ProtoMessage[] = [];
  readonly inputs: ProtoMessage[] = [];
  readonly outputs: ProtoMessage[] = [];
  private counter = 0;
  private readonly constants = new Map<string, string>();

  /** Adds a node and returns its output names. */
  op(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeValue>> = {},
    outputs: number | readonly string[] = 1,
    prefix = '',
    domain = '',
  ): string[] {
    const id = this.counter++;
    const base = `${prefix}/${opType}_${id}`;
    const outNames =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, (_, k) => `${base}_out${k}`)
        : [...outputs];
    this.nodes.push(nodeProto(opType, inputs, outNames, base, attributes, domain));
    return outNames;
  }

  op1(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeValue>> = {},
    prefix = '',
    domain = '',
  ): string {
    return this.op(opType, inputs, attributes, 1, prefix, domain)[0]!;
  }

  int64s(values: readonly number[], scalar = false): string {
    const key = `i64:${scalar}:${values.join(',')}`;
    const existing = this.constants.get(key);
    if (existing !== undefined) return existing;
    const name = `const.i64.${this.constants.size}`;
    const raw = new Uint8Array(values.length * 8);
    const dv = new DataView(raw.buffer);
    values.forEach((v, k) => {
      dv.setBigInt64(k * 8, BigInt(v), true);
    });
    this.initializers.push(
      smallTensorProto(name, OnnxType.INT64, scalar ? [] : [values.length], raw),
    );
    this.constants.set(key, name);
    return name;
  }

  float(value: number): string {
    const key = `f32:${value}`;
    const existing = this.constants.get(key);
    if (existing !== undefined) return existing;
    const name = `const.f32.${this.constants.size}`;
    const raw = new Uint8Array(4);
    new DataView(raw.buffer).setFloat32(0, value, true);
    this.initializers.push(smallTensorProto(name, OnnxType.FLOAT, [], raw));
    this.constants.set(key, name);
    return name;
  }

  weight(spec: WeightSpec, produce: Producer): string {
    const count = elementCount(spec.shape);
    this.bulk(spec.name, OnnxType.FLOAT, spec.shape, count * 4, produce);
    return spec.name;
  }

  /** A large initializer: inline (streamed into the model file) or in the external data file. */
  private bulk(
    name: string,
    type: number,
    dims: readonly number[],
    length: number,
    produce: Producer,
  ): void {
    const ext = this.external;
    if (ext === undefined) {
      this.initializers.push(tensorProto(name, type, dims, length, produce));
      return;
    }
    this.initializers.push(externalTensorProto(name, type, dims, ext.location, ext.bytes, length));
    ext.chunks.push({ length, produce });
    ext.bytes += length;
  }

  /**
   * An int8 MatMulNBits weight and its scales, from a float Conv1D weight [K, N]. The float matrix
   * is gathered once (at most 9.4 MB for gpt2) when the first of the two is written, quantized,
   * and dropped after the second.
   */
  quantizedWeight(spec: WeightSpec, produce: Producer): { q: string; scales: string } {
    const [k, n] = spec.shape as [number, number];
    let cached: QuantizedMatrix | undefined;
    const compute = async (): Promise<QuantizedMatrix> => {
      if (cached === undefined) {
        const bytes = new Uint8Array(k * n * 4);
        let at = 0;
        await produce(async (chunk) => {
          bytes.set(chunk, at);
          at += chunk.length;
        });
        cached = quantizeInt8(new Float32Array(bytes.buffer), k, n);
      }
      return cached;
    };
    const blocks = k / QUANT_BLOCK;
    const q = `${spec.name}.int8`;
    const scales = `${spec.name}.scales`;
    this.bulk(q, OnnxType.UINT8, [n, blocks, QUANT_BLOCK], n * k, async (emit) => {
      await emit((await compute()).q);
    });
    this.bulk(scales, OnnxType.FLOAT, [n * blocks], n * blocks * 4, async (emit) => {
      const m = await compute();
      await emit(new Uint8Array(m.scales.buffer));
      cached = undefined;
    });
    return { q, scales };
  }

  input(name: string, type: number, shape: readonly Dim[]): string {
    this.inputs.push(valueInfoProto(name, type, shape));
    return name;
  }

  output(name: string, type: number, shape: readonly Dim[]): void {
    this.outputs.push(valueInfoProto(name, type, shape));
  }

  graph(name: string): ProtoMessage {
    const g = new ProtoMessage();
    for (const n of this.nodes) g.message(1, n);
    g.string(2, name);
    for (const i of this.inputs) g.message(11, i);
    for (const o of this.outputs) g.message(12, o);
    // Initializers last: everything a reader needs comes before the bulk of the file.
    for (const t of this.initializers) g.message(5, t);
    return g;
  }
}

/** Builds the graph message; weights are streamed in when the message is written. */
export function buildGpt2Graph(opts: GraphOptions): ProtoMessage {
  const { config, variant, seedSignature } = opts;
  if (seedSignature && variant !== 'logits') {
    throw new Error('--seed-signature applies to the logits variant only');
  }
  if (opts.fullLogits && variant !== 'kv') {
    throw new Error(
      '--full-logits applies to the kv variant only (logits always has every position)',
    );
  }
  if (seedSignature && (opts.fused || opts.quantize)) {
    throw new Error(
      '--seed-signature reproduces the notebook’s plain graph; it cannot be --fused or quantized',
    );
  }
  const g = new GraphBuilder(opts.externalData);
  const e = config.nEmbd;
  const nHead = config.nHead;
  const headDim = e / nHead;
  const specs = new Map(weightSpecs(config).map((s) => [s.name, s]));
  const w = (name: string): string => {
    const spec = specs.get(name);
    if (spec === undefined) throw new Error(`internal: no weight ${name}`);
    return g.weight(spec, opts.weightProducer(spec));
  };
  const isKv = variant === 'kv';

  // Inputs.
  let inputIds: string;
  let mask: string;
  if (seedSignature) {
    const ids32 = g.input('input_ids:0', OnnxType.INT32, [BATCH, SEQ]);
    const mask32 = g.input('attention_mask:0', OnnxType.INT32, [BATCH, SEQ]);
    inputIds = g.op1('Cast', [ids32], { to: OnnxType.INT64 });
    mask = g.op1('Cast', [mask32], { to: OnnxType.INT64 });
  } else {
    inputIds = g.input('input_ids', OnnxType.INT64, [BATCH, SEQ]);
    mask = g.input('attention_mask', OnnxType.INT64, [BATCH, isKv ? TOTAL : SEQ]);
  }
  let positionIds: string;
  if (isKv) {
    positionIds = g.input('position_ids', OnnxType.INT64, [BATCH, SEQ]);
  } else {
    // cumsum(mask) − 1, clamped at 0: the real tokens get 0..n−1 whatever side the padding is on.
    const cs = g.op1('CumSum', [mask, g.int64s([1], true)]);
    positionIds = g.op1('Max', [g.op1('Sub', [cs, g.int64s([1], true)]), g.int64s([0], true)]);
  }
  const past: { key: string; value: string }[] = [];
  if (isKv) {
    for (let i = 0; i < config.nLayer; i++) {
      past.push({
        key: g.input(`past_key_values.${i}.key`, OnnxType.FLOAT, [BATCH, nHead, PAST, headDim]),
        value: g.input(`past_key_values.${i}.value`, OnnxType.FLOAT, [BATCH, nHead, PAST, headDim]),
      });
    }
  }

  // Additive attention bias [batch, 1, seq, total]: causal (key ≤ query's absolute position) and
  // the attention mask over past + new keys. Computed once, shared by every layer.
  const seqLen = g.op1('Gather', [g.op1('Shape', [inputIds]), g.int64s([1], true)], { axis: 0 });
  const totalLen = g.op1('Gather', [g.op1('Shape', [mask]), g.int64s([1], true)], { axis: 0 });
  const pastLen = g.op1('Sub', [totalLen, seqLen]);
  const one = g.int64s([1], true);
  const queryPos = g.op1('Range', [pastLen, totalLen, one]);
  const keyPos = g.op1('Range', [g.int64s([0], true), totalLen, one]);
  const causal = g.op1('LessOrEqual', [
    g.op1('Unsqueeze', [keyPos, g.int64s([0])]),
    g.op1('Unsqueeze', [queryPos, g.int64s([1])]),
  ]);
  const keyMask = g.op1('Unsqueeze', [
    g.op1('Cast', [mask], { to: OnnxType.BOOL }),
    g.int64s([1, 2]),
  ]);
  const allowed = g.op1('And', [causal, keyMask]);
  const attnBias = g.op1('Where', [allowed, g.float(0), g.float(MASK_VALUE)]);

  // Embeddings.
  const wte = w('wte.weight');
  const h = g.op1('Add', [
    g.op1('Gather', [wte, inputIds], { axis: 0 }),
    g.op1('Gather', [w('wpe.weight'), positionIds], { axis: 0 }),
  ]);

  const mm = (x: string, weightName: string, prefix: string): string => {
    const spec = specs.get(weightName);
    if (spec === undefined) throw new Error(`internal: no weight ${weightName}`);
    if (opts.quantize !== 'int8') return g.op1('MatMul', [x, w(weightName)], {}, prefix);
    const [k, n] = spec.shape as [number, number];
    const { q, scales } = g.quantizedWeight(spec, opts.weightProducer(spec));
    return g.op1(
      'MatMulNBits',
      [x, q, scales],
      { K: k, N: n, bits: 8, block_size: QUANT_BLOCK, accuracy_level: INT8_ACCURACY_LEVEL },
      prefix,
      CONTRIB_DOMAIN,
    );
  };
  const layers: LayerContext = { g, w, mm, config, past, attnBias, h };
  const { hidden: hf, presents } =
    opts.fused === true ? fusedLayers(layers) : standardLayers(layers);

  const vocab = config.vocabSize;
  const kvPresentOutputs = (): void => {
    for (let i = 0; i < config.nLayer; i++) {
      g.output(`present.${i}.key`, OnnxType.FLOAT, [BATCH, nHead, TOTAL, headDim]);
      g.output(`present.${i}.value`, OnnxType.FLOAT, [BATCH, nHead, TOTAL, headDim]);
    }
  };
  /** next_token and logprob [batch, 1] from logits [batch, vocab]: ArgMax keeps the first
   * maximum (select_last_index 0), as greedyFromLogits does. */
  const greedyOutputs = (logits: string): void => {
    g.op('ArgMax', [logits], { axis: 1, keepdims: 1 }, ['next_token']);
    const logSoftmax = g.op1('LogSoftmax', [logits], { axis: 1 });
    // The log-probability of the argmax is the row's maximum log-softmax value.
    g.op('ReduceMax', [logSoftmax], { axes: [1], keepdims: 1 }, ['logprob']);
    g.output('next_token', OnnxType.INT64, [BATCH, 1]);
    g.output('logprob', OnnxType.FLOAT, [BATCH, 1]);
  };
  /** [rows, E] × wteᵀ through Gemm(transB): no transposed copy of the tied matrix. */
  const lmHead = (rows2d: string, outName?: string): string =>
    g.op('Gemm', [rows2d, wte], { transB: 1 }, outName === undefined ? 1 : [outName])[0]!;

  /**
   * Each row's last real position: max over (mask × (index + 1)) − 1, right or left padding.
   * `newMask` [batch, seq] marks the real tokens among this call's inputs.
   */
  const lastRealHidden = (newMask: string): string => {
    const idx1 = g.op1('Add', [g.op1('Range', [g.int64s([0], true), seqLen, one]), one]);
    const lastPos = g.op1('Sub', [
      g.op1('ReduceMax', [g.op1('Mul', [newMask, idx1])], { axes: [1], keepdims: 1 }),
      one,
    ]);
    const lastPosClamped = g.op1('Max', [lastPos, g.int64s([0], true)]);
    return g.op1('GatherND', [hf, lastPosClamped], { batch_dims: 1 });
  };

  if (isKv && opts.fullLogits !== true) {
    // Greedy decoding needs one row per sequence: running the LM head over a whole prompt at
    // prefill is seq × vocab × n_embd wasted FLOPs and a seq × vocab tensor (201 MB at 1000
    // tokens). The new tokens' mask is the last `seq` columns of attention_mask (the past's come
    // first), so left-padded prefill, right-padded prefill and one-token decode all pick the
    // row's last real token. transformers.js reads only logits[:, -1, :] when generating, so
    // [batch, 1, vocab] stays loadable there.
    const newMask = g.op1('Slice', [
      mask,
      g.op1('Unsqueeze', [pastLen, g.int64s([0])]),
      g.op1('Unsqueeze', [totalLen, g.int64s([0])]),
      g.int64s([1]),
    ]);
    const rows = lmHead(lastRealHidden(newMask));
    g.op('Unsqueeze', [rows, g.int64s([1])], {}, ['logits']);
    // The fixed 1 it is: onnxruntime >= 1.17 infers it from the Unsqueeze whatever we declare,
    // and Triton compares output dims exactly, so declaring it lets one config.pbtxt
    // ([1, vocab]) load on every release (test/triton-compat).
    g.output('logits', OnnxType.FLOAT, [BATCH, 1, vocab]);
    // Beside logits (which transformers.js reads), the greedy choice itself: a client that asks
    // for these two instead receives 12 bytes a row, and onnxruntime's vectorized kernels do the
    // pass over the vocabulary (in JS it cost ~0.5-1.5 ms a row, a step's tenth at batch 16).
    greedyOutputs(rows);
    kvPresentOutputs();
  } else if (variant === 'logits' || variant === 'kv') {
    const flat = g.op1('Reshape', [hf, g.int64s([-1, e])]);
    const batchSeq = g.op1('Slice', [g.op1('Shape', [inputIds]), g.int64s([0]), g.int64s([2])]);
    const outShape = g.op1('Concat', [batchSeq, g.int64s([vocab])], { axis: 0 });
    g.op('Reshape', [lmHead(flat), outShape], {}, ['logits']);
    if (seedSignature) {
      // [n_layer, 2, batch, n_head, seq, head_dim], as the notebook's tf2onnx export returned it.
      const perLayer = presents.map(({ key, value }) =>
        g.op1('Unsqueeze', [
          g.op1(
            'Concat',
            [g.op1('Unsqueeze', [key, g.int64s([0])]), g.op1('Unsqueeze', [value, g.int64s([0])])],
            { axis: 0 },
          ),
          g.int64s([0]),
        ]),
      );
      g.op('Concat', perLayer, { axis: 0 }, ['past_key_values']);
      g.output('past_key_values', OnnxType.FLOAT, [config.nLayer, 2, BATCH, nHead, SEQ, headDim]);
    }
    g.output('logits', OnnxType.FLOAT, [BATCH, SEQ, vocab]);
    if (isKv) kvPresentOutputs();
  } else {
    const lastHidden = lastRealHidden(mask);
    if (variant === 'last') {
      lmHead(lastHidden, 'last_logits');
      g.output('last_logits', OnnxType.FLOAT, [BATCH, vocab]);
    } else {
      greedyOutputs(lmHead(lastHidden));
    }
  }
  return g.graph(
    `gpt2-${variant}${seedSignature ? '-seed-signature' : ''}${opts.fullLogits ? '-full-logits' : ''}${opts.fused ? '-fused' : ''}${opts.quantize ? `-${opts.quantize}` : ''}`,
  );
}

interface LayerContext {
  g: GraphBuilder;
  w: (name: string) => string;
  /** x · W for a Conv1D weight W [in, out]: MatMul, or MatMulNBits on int8 weights. */
  mm: (x: string, weightName: string, prefix: string) => string;
  config: Gpt2Config;
  past: readonly { key: string; value: string }[];
  /** Additive attention bias [batch, 1, seq, total]. */
  attnBias: string;
  /** Embeddings [batch, seq, n_embd]. */
  h: string;
}

interface LayersResult {
  /** Final layer norm output [batch, seq, n_embd]. */
  hidden: string;
  presents: { key: string; value: string }[];
}

/** The transformer blocks in standard opset-17 operators (transformers.js runs these too). */
function standardLayers(c: LayerContext): LayersResult {
  const { g, w, mm, config, past, attnBias } = c;
  let h = c.h;
  const e = config.nEmbd;
  const nHead = config.nHead;
  const headDim = e / nHead;
  const headShape = g.int64s([0, 0, nHead, headDim]);
  const mergeShape = g.int64s([0, 0, e]);
  const scale = g.float(1 / Math.sqrt(headDim));
  const presents: { key: string; value: string }[] = [];

  for (let i = 0; i < config.nLayer; i++) {
    const p = `h.${i}.`;
    const pre = `/h.${i}`;
    const ln1 = layerNorm(g, h, w(`${p}ln_1.weight`), w(`${p}ln_1.bias`), config, pre);
    const qkv = g.op1(
      'Add',
      [mm(ln1, `${p}attn.c_attn.weight`, pre), w(`${p}attn.c_attn.bias`)],
      {},
      pre,
    );
    const [q, k, v] = g.op('Split', [qkv, g.int64s([e, e, e])], { axis: 2 }, 3, pre) as [
      string,
      string,
      string,
    ];
    const heads = (x: string): string =>
      g.op1('Transpose', [g.op1('Reshape', [x, headShape], {}, pre)], { perm: [0, 2, 1, 3] }, pre);
    const qh = g.op1('Mul', [heads(q), scale], {}, pre);
    let kh = heads(k);
    let vh = heads(v);
    const pastI = past[i];
    if (pastI !== undefined) {
      kh = g.op('Concat', [pastI.key, kh], { axis: 2 }, [`present.${i}.key`], pre)[0]!;
      vh = g.op('Concat', [pastI.value, vh], { axis: 2 }, [`present.${i}.value`], pre)[0]!;
    }
    presents.push({ key: kh, value: vh });
    const scores = g.op1(
      'Add',
      [
        g.op1('MatMul', [qh, g.op1('Transpose', [kh], { perm: [0, 1, 3, 2] }, pre)], {}, pre),
        attnBias,
      ],
      {},
      pre,
    );
    const probs = g.op1('Softmax', [scores], { axis: -1 }, pre);
    const ctx = g.op1(
      'Transpose',
      [g.op1('MatMul', [probs, vh], {}, pre)],
      { perm: [0, 2, 1, 3] },
      pre,
    );
    const attnOut = g.op1(
      'Add',
      [
        mm(g.op1('Reshape', [ctx, mergeShape], {}, pre), `${p}attn.c_proj.weight`, pre),
        w(`${p}attn.c_proj.bias`),
      ],
      {},
      pre,
    );
    h = g.op1('Add', [h, attnOut], {}, pre);

    const ln2 = layerNorm(g, h, w(`${p}ln_2.weight`), w(`${p}ln_2.bias`), config, pre);
    const fc = g.op1('Add', [mm(ln2, `${p}mlp.c_fc.weight`, pre), w(`${p}mlp.c_fc.bias`)], {}, pre);
    const act = gelu(g, fc, pre);
    const mlpOut = g.op1(
      'Add',
      [mm(act, `${p}mlp.c_proj.weight`, pre), w(`${p}mlp.c_proj.bias`)],
      {},
      pre,
    );
    h = g.op1('Add', [h, mlpOut], {}, pre);
  }
  const hidden = layerNorm(g, h, w('ln_f.weight'), w('ln_f.bias'), config, '');
  return { hidden, presents };
}

/**
 * The transformer blocks with onnxruntime's com.microsoft fused operators: MultiHeadAttention
 * (past/present in the same [batch, n_head, seq, head_dim] layout and names), SkipLayerNormalization
 * (residual add + bias + layer norm in one pass) and FastGelu (bias + tanh GELU). Same weights,
 * same interface; only onnxruntime can run it. Measured no faster on CPU (onnxruntime already
 * fuses the standard graph and decode is weight-bandwidth bound); kept opt-in for GPU trials.
 */
function fusedLayers(c: LayerContext): LayersResult {
  const { g, w, mm, config, past, attnBias } = c;
  const e = config.nEmbd;
  const ms = CONTRIB_DOMAIN;
  const eps = { float: config.layerNormEpsilon };
  const presents: { key: string; value: string }[] = [];
  // onnxruntime ≤ 1.17 wants MultiHeadAttention's bias with a dim per head (it refuses the
  // broadcast 1 at the first step, not at load); expanded once, shared by every layer.
  const headBias = g.op1('Expand', [attnBias, g.int64s([1, config.nHead, 1, 1])]);
  let residual = c.h;
  let normed = layerNorm(g, residual, w('h.0.ln_1.weight'), w('h.0.ln_1.bias'), config, '');
  for (let i = 0; i < config.nLayer; i++) {
    const p = `h.${i}.`;
    const pre = `/h.${i}`;
    const qkv = mm(normed, `${p}attn.c_attn.weight`, pre);
    const [q, k, v] = g.op('Split', [qkv, g.int64s([e, e, e])], { axis: 2 }, 3, pre) as [
      string,
      string,
      string,
    ];
    const pastI = past[i];
    const outputs =
      pastI === undefined ? 1 : [`${pre}/attn_out`, `present.${i}.key`, `present.${i}.value`];
    const attn = g.op(
      'MultiHeadAttention',
      [
        q,
        k,
        v,
        w(`${p}attn.c_attn.bias`),
        '',
        headBias,
        ...(pastI ? [pastI.key, pastI.value] : []),
      ],
      { num_heads: config.nHead },
      outputs,
      pre,
      ms,
    );
    if (pastI !== undefined) presents.push({ key: attn[1]!, value: attn[2]! });
    const proj = mm(attn[0]!, `${p}attn.c_proj.weight`, pre);
    // output 0: LN(proj + bias + residual) = ln_2 input; output 3: the new residual stream.
    const skip1 = g.op(
      'SkipLayerNormalization',
      [proj, residual, w(`${p}ln_2.weight`), w(`${p}ln_2.bias`), w(`${p}attn.c_proj.bias`)],
      { epsilon: eps },
      [`${pre}/ln2`, '', '', `${pre}/resid_attn`],
      pre,
      ms,
    );
    const fc = mm(skip1[0]!, `${p}mlp.c_fc.weight`, pre);
    const act = g.op1('FastGelu', [fc, w(`${p}mlp.c_fc.bias`)], {}, pre, ms);
    const mlp = mm(act, `${p}mlp.c_proj.weight`, pre);
    const last = i === config.nLayer - 1;
    const skip2 = g.op(
      'SkipLayerNormalization',
      [
        mlp,
        skip1[3]!,
        w(last ? 'ln_f.weight' : `h.${i + 1}.ln_1.weight`),
        w(last ? 'ln_f.bias' : `h.${i + 1}.ln_1.bias`),
        w(`${p}mlp.c_proj.bias`),
      ],
      { epsilon: eps },
      [`${pre}/ln_next`, '', '', `${pre}/resid_mlp`],
      pre,
      ms,
    );
    normed = skip2[0]!;
    residual = skip2[3]!;
  }
  return { hidden: normed, presents };
}

/**
 * Layer normalisation over the last axis in opset-13 operators, in the form onnxruntime's
 * LayerNormFusion recognises (ReduceMean, Sub, Pow 2, ReduceMean, Add ε, Sqrt, Div, Mul, Add).
 */
function layerNorm(
  g: GraphBuilder,
  x: string,
  gamma: string,
  beta: string,
  config: Gpt2Config,
  prefix: string,
): string {
  const mean = g.op1('ReduceMean', [x], { axes: [-1], keepdims: 1 }, prefix);
  const centred = g.op1('Sub', [x, mean], {}, prefix);
  const variance = g.op1(
    'ReduceMean',
    [g.op1('Pow', [centred, g.float(2)], {}, prefix)],
    { axes: [-1], keepdims: 1 },
    prefix,
  );
  const std = g.op1(
    'Sqrt',
    [g.op1('Add', [variance, g.float(config.layerNormEpsilon)], {}, prefix)],
    {},
    prefix,
  );
  const normed = g.op1('Div', [centred, std], {}, prefix);
  return g.op1('Add', [g.op1('Mul', [normed, gamma], {}, prefix), beta], {}, prefix);
}

/**
 * GPT-2's "gelu_new": x·0.5·(1 + tanh(√(2/π)·(x + 0.044715·x³))), spelled the way onnxruntime's
 * FastGeluFusion recognises it (Pow, then x·0.5 times the bracket), so the standard graph gets a
 * fused FastGelu at session start without the file leaving standard operators.
 */
function gelu(g: GraphBuilder, x: string, prefix: string): string {
  const cube = g.op1('Pow', [x, g.float(3)], {}, prefix);
  const inner = g.op1(
    'Mul',
    [
      g.op1('Add', [x, g.op1('Mul', [cube, g.float(0.044715)], {}, prefix)], {}, prefix),
      g.float(Math.sqrt(2 / Math.PI)),
    ],
    {},
    prefix,
  );
  const bracket = g.op1('Add', [g.op1('Tanh', [inner], {}, prefix), g.float(1)], {}, prefix);
  return g.op1('Mul', [g.op1('Mul', [x, g.float(0.5)], {}, prefix), bracket], {}, prefix);
}
