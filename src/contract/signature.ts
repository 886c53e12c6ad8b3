/**
 * The one place that understands a GPT-2 model's interface from its metadata; the embedded
 * backend, the Triton backend and `model inspect` all drive models through this.
 *
 * Variants and their tensors (the names `model build` gives them; `:0` suffixes and INT32 ids
 * accepted):
 * - `logits`: input_ids, attention_mask [batch, seq] → logits [batch, seq, vocab].
 *   The "seed signature" of Seldon Core's GPT-2 example notebook (SeldonIO/seldon-core,
 *   examples/triton_gpt2; "the notebook" below and elsewhere) adds past_key_values
 *   [n_layer, 2, batch, n_head, seq, head_dim] (an output only, never needed:
 *   `seedPastKeyValues` tells a client to not request it).
 * - `last`: same inputs → last_logits [batch, vocab], the logits of each row's last real token.
 * - `next-token`: same inputs → next_token [batch, 1] INT64 (greedy argmax) and
 *   logprob [batch, 1] FP32 (its natural-log probability).
 * - `kv` (Optimum / transformers.js decoder convention): input_ids [batch, seq],
 *   attention_mask [batch, past + seq], position_ids [batch, seq],
 *   past_key_values.{i}.key|value [batch, n_head, past, head_dim] → logits [batch, L, vocab],
 *   present.{i}.key|value [batch, n_head, past + seq, head_dim]. An empty past (past = 0) is valid.
 *   L is 1 for our default build (each row's last real new token: all that greedy decoding
 *   needs) and seq for `model build --full-logits` or an Optimum export. Both are accepted,
 *   whether the file declares L symbolic or fixed; a client must take L from the dims each
 *   answer carries (the last position of row b starts at (b × L + L − 1) × vocab), never from
 *   the input length. Our default build also outputs next_token and logprob [batch, 1] (as
 *   next-token's, for each row's last real new token): `outputs.greedy` when both are there,
 *   and a client that reads them need not fetch logits at all.
 *
 * Padding: stateless variants take right-padded rows (1 = real token in attention_mask); positions
 * are computed in the graph from the mask. For `kv` the caller sends position_ids itself and the
 * mask covers past + new positions, so a padded or dummy past slot is simply masked with 0.
 *
 * `kv` under Triton's implicit state (Triton docs, "Implicit State Management" in the sequence
 * batcher's architecture page; docs/triton-notes.md): the states are not model inputs/outputs in
 * the metadata, so Triton reports only input_ids, attention_mask and
 * position_ids in, logits out (`implicitState: true` here). Because a zero-length initial state is
 * unverified on onnxruntime, config.pbtxt seeds each state with ONE zero position. A client must
 * therefore, on every step of a sequence, send:
 *   - attention_mask of length 1 + tokens seen so far (including this step's), with element 0 = 0
 *     (the dummy slot is masked out, so it has no effect on the result) and 1 for every real token;
 *   - position_ids counting real tokens only: the first prompt token has position 0.
 * This yields exactly the logits of the plain forward pass (tested against the graph in
 * test/model/gpt2-graph.test.ts). Clients of a `kv` file with visible past inputs (embedded
 * backend, transformers.js) send an empty past on the first step instead, with no dummy slot.
 */

/** One tensor of a model's metadata: the shape of both ONNX metadata and KServe v2's. */
export interface TensorMetadataLike {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
}

/** What understandSignature reads: a model's name and its inputs and outputs. */
export interface ModelMetadataLike {
  readonly name: string;
  /** Not read here; allowed so that any metadata object fits. */
  readonly versions?: readonly string[];
  readonly platform?: string;
  readonly inputs: readonly TensorMetadataLike[];
  readonly outputs: readonly TensorMetadataLike[];
}

export interface TensorRef {
  readonly name: string;
  readonly datatype: string;
}

export interface KvLayerNames {
  readonly pastKey: string;
  readonly pastValue: string;
  readonly presentKey: string;
  readonly presentValue: string;
}

/** A kv model's cache layout; `layers` is empty under implicit state. */
export interface KvLayout {
  readonly implicitState: boolean;
  readonly nLayer: number;
  readonly nHead: number;
  readonly headDim: number;
  readonly layers: readonly KvLayerNames[];
}

interface SignatureBase {
  readonly inputIds: TensorRef;
  readonly attentionMask: TensorRef;
  /** True when every input and output has a leading dynamic batch dimension. */
  readonly batchDimension: boolean;
}

/**
 * The stateless variants carry no kv layout or position input; `kv?: undefined` and
 * `positionIds?: undefined` let code that holds any signature ask `sig.kv?.implicitState`
 * without narrowing first.
 */
interface StatelessBase extends SignatureBase {
  readonly positionIds?: undefined;
  readonly kv?: undefined;
}

export interface LogitsSignature extends StatelessBase {
  readonly variant: 'logits';
  readonly outputs: {
    readonly logits: TensorRef;
    /** The seed signature's extra output; never request it. */
    readonly pastKeyValues?: TensorRef;
  };
  /** True for the notebook's model: INT32 `:0` inputs and a past_key_values output. */
  readonly seedPastKeyValues: boolean;
  /** The logits' last dim. */
  readonly vocabSize: number;
}

export interface LastSignature extends StatelessBase {
  readonly variant: 'last';
  readonly outputs: { readonly lastLogits: TensorRef };
  readonly seedPastKeyValues: false;
  readonly vocabSize: number;
}

/** The greedy choice computed in the graph: INT32/INT64 next_token and FP32 logprob [batch, 1]. */
export interface GreedyOutputs {
  readonly nextToken: TensorRef;
  readonly logprob: TensorRef;
}

export interface NextTokenSignature extends StatelessBase {
  readonly variant: 'next-token';
  readonly outputs: GreedyOutputs;
  readonly seedPastKeyValues: false;
  /** Not visible in this variant's interface. */
  readonly vocabSize: undefined;
}

export interface KvSignature extends SignatureBase {
  readonly variant: 'kv';
  readonly positionIds: TensorRef;
  /** `greedy`: next_token and logprob of each row's last real new token, when the file has them. */
  readonly outputs: { readonly logits: TensorRef; readonly greedy?: GreedyOutputs };
  readonly seedPastKeyValues: false;
  readonly vocabSize: number;
  readonly kv: KvLayout;
}

/** How to drive a model, keyed on its variant. */
export type ModelSignature = LogitsSignature | LastSignature | NextTokenSignature | KvSignature;

const ID_TYPES = new Set(['INT32', 'INT64']);

function strip(name: string): string {
  return name.endsWith(':0') ? name.slice(0, -2) : name;
}

function describe(ts: readonly TensorMetadataLike[]): string {
  return ts.length === 0
    ? '(none)'
    : ts.map((t) => `${t.name} ${t.datatype} [${t.shape.join(',')}]`).join(', ');
}

export function understandSignature(meta: ModelMetadataLike): ModelSignature {
  const what = `model ${meta.name} (inputs: ${describe(meta.inputs)}; outputs: ${describe(meta.outputs)})`;
  const fail = (why: string): never => {
    throw new Error(`cannot drive ${what}: ${why}`);
  };
  const find = (
    list: readonly TensorMetadataLike[],
    name: string,
  ): TensorMetadataLike | undefined => list.find((t) => strip(t.name) === name);
  const ref = (t: TensorMetadataLike): TensorRef => ({ name: t.name, datatype: t.datatype });
  /** next_token with its logprob, checked; undefined when the model has no next_token. */
  const greedyOutputs = (outputs: readonly TensorMetadataLike[]): GreedyOutputs | undefined => {
    const nextToken = find(outputs, 'next_token');
    if (nextToken === undefined) return undefined;
    const logprob = find(outputs, 'logprob') ?? fail('next_token without a logprob output');
    if (!ID_TYPES.has(nextToken.datatype)) fail('next_token must be INT32 or INT64');
    if (logprob.datatype !== 'FP32') fail('logprob must be FP32');
    return { nextToken: ref(nextToken), logprob: ref(logprob) };
  };

  const ids = find(meta.inputs, 'input_ids') ?? fail('no input named input_ids');
  const mask = find(meta.inputs, 'attention_mask') ?? fail('no input named attention_mask');
  for (const t of [ids, mask]) {
    if (!ID_TYPES.has(t.datatype)) fail(`${t.name} must be INT32 or INT64, not ${t.datatype}`);
    if (t.shape.length !== 2) fail(`${t.name} must have 2 dims [batch, sequence]`);
  }
  const positions = find(meta.inputs, 'position_ids');
  if (positions !== undefined && !ID_TYPES.has(positions.datatype)) {
    fail(`position_ids must be INT32 or INT64, not ${positions.datatype}`);
  }
  const batchDimension =
    [...meta.inputs, ...meta.outputs].every((t) => t.shape[0] === -1) &&
    find(meta.outputs, 'past_key_values') === undefined;

  const vocabOf = (t: TensorMetadataLike): number => {
    const v = t.shape[t.shape.length - 1];
    if (v === undefined || v <= 0)
      fail(`${t.name} must have a fixed vocabulary size as its last dim`);
    if (t.datatype !== 'FP32' && t.datatype !== 'FP16') fail(`${t.name} must be FP32 or FP16`);
    return v as number;
  };
  const base = {
    inputIds: ref(ids),
    attentionMask: ref(mask),
    batchDimension,
  };

  const pastInputs = meta.inputs.filter((t) => /^past_key_values\.\d+\.(key|value)$/.test(t.name));
  const presentOutputs = meta.outputs.filter((t) => /^present\.\d+\.(key|value)$/.test(t.name));
  const logits = find(meta.outputs, 'logits');

  if (pastInputs.length > 0 || presentOutputs.length > 0 || positions !== undefined) {
    const kvLogits =
      logits !== undefined && logits.shape.length === 3
        ? logits
        : fail('a kv model needs logits [batch, seq or 1, vocab]');
    const kvPositions = positions ?? fail('a kv model needs a position_ids input');
    const implicitState = pastInputs.length === 0;
    const layers: KvLayerNames[] = [];
    let nHead = 0;
    let headDim = 0;
    if (!implicitState) {
      const nLayer = pastInputs.length / 2;
      for (let i = 0; i < nLayer; i++) {
        const names = {
          pastKey: `past_key_values.${i}.key`,
          pastValue: `past_key_values.${i}.value`,
          presentKey: `present.${i}.key`,
          presentValue: `present.${i}.value`,
        };
        for (const [list, n] of [
          [meta.inputs, names.pastKey],
          [meta.inputs, names.pastValue],
          [meta.outputs, names.presentKey],
          [meta.outputs, names.presentValue],
        ] as const) {
          const t = list.find((x) => x.name === n) ?? fail(`missing ${n}`);
          if (t.shape.length !== 4 || t.datatype !== 'FP32') {
            fail(`${n} must be FP32 [batch, n_head, seq, head_dim]`);
          }
          nHead = t.shape[1] ?? 0;
          headDim = t.shape[3] ?? 0;
          if (nHead <= 0 || headDim <= 0) fail(`${n} must have fixed n_head and head_dim`);
        }
        layers.push(names);
      }
    }
    const greedy = greedyOutputs(meta.outputs);
    return {
      ...base,
      variant: 'kv',
      positionIds: ref(kvPositions),
      outputs: { logits: ref(kvLogits), ...(greedy === undefined ? {} : { greedy }) },
      seedPastKeyValues: false,
      vocabSize: vocabOf(kvLogits),
      kv: { implicitState, nLayer: layers.length, nHead, headDim, layers },
    };
  }

  const greedy = greedyOutputs(meta.outputs);
  if (greedy !== undefined) {
    // The vocabulary size is not visible in this variant's interface.
    return {
      ...base,
      variant: 'next-token',
      outputs: greedy,
      seedPastKeyValues: false,
      vocabSize: undefined,
    };
  }
  const last = find(meta.outputs, 'last_logits');
  if (last !== undefined) {
    if (last.shape.length !== 2) fail('last_logits must be [batch, vocab]');
    return {
      ...base,
      variant: 'last',
      outputs: { lastLogits: ref(last) },
      seedPastKeyValues: false,
      vocabSize: vocabOf(last),
    };
  }
  if (logits !== undefined) {
    if (logits.shape.length !== 3) fail('logits must be [batch, seq, vocab]');
    const pkv = find(meta.outputs, 'past_key_values');
    return {
      ...base,
      variant: 'logits',
      outputs:
        pkv === undefined
          ? { logits: ref(logits) }
          : { logits: ref(logits), pastKeyValues: ref(pkv) },
      seedPastKeyValues: pkv !== undefined,
      vocabSize: vocabOf(logits),
    };
  }
  return fail('no output named logits, last_logits or next_token');
}
