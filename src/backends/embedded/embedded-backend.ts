/**
 * The embedded backend: the same ONNX model file Triton serves, run in-process by
 * onnxruntime-node (issue 3, point 3). It learns the model from its metadata through
 * understandSignature (src/model/signature.ts), the one place that knows model interfaces, and
 * drives every variant:
 * - `kv` (default): the prompt is prefilled once per sequence, then each step feeds only the new
 *   token with that sequence's KV cache. Decode steps of several sequences are batched into one
 *   session.run — pasts left-padded to a common length, padding masked out with attention_mask
 *   zeros and positions given explicitly (the Optimum convention allows this) — so that on CPU
 *   the weights are read once per step for all of them.
 * - `logits`, `last`, `next-token`: stateless; the whole sequence every step, rows right-padded.
 */
import * as ort from 'onnxruntime-node';
import { GPT2_CONTEXT_LENGTH, GPT2_VOCAB_SIZE } from '../../model/configs.js';
import { readModelMetadata } from '../../model/metadata.js';
import { type ModelSignature, type TensorRef, understandSignature } from '../../model/signature.js';
import {
  type Backend,
  type BackendDescription,
  BackendError,
  type Readiness,
  type StepRequest,
  type StepResult,
} from '../backend.js';
import { greedyFromLogits } from './greedy.js';

/** Any id will do under a zero mask; 0 keeps the embedding gather in range. */
const PAD_ID = 0;
/** The scheduler numbers sequences from 1; this one is the backend's own warm-up. */
const WARMUP_SEQUENCE = -1;
/** Sequences one step may carry; beyond this, memory for padded pasts grows without gain. */
const DEFAULT_MAX_BATCH_SIZE = 64;

export interface EmbeddedBackendOptions {
  /** The .onnx file, or a function run first in init() that finds (or builds) it. */
  readonly modelFile: string | (() => Promise<string>);
  readonly modelName: string;
  readonly contextLength?: number;
  readonly maxBatchSize?: number;
  /** kv only: run the prefills and the decode steps of several sequences as one batch each
   * (default true). */
  readonly batchDecode?: boolean;
  /** onnxruntime intra-op threads; default: onnxruntime's (all cores). */
  readonly intraOpNumThreads?: number;
}

/** A sequence's KV cache in tensors of its own: [1, n_head, length, head_dim] per past input. */
interface OwnCache {
  readonly kind: 'own';
  readonly past: ort.Tensor[];
  /** Tokens held in the cache. */
  readonly length: number;
}

/** A sequence whose cache is one row of the decode group's batched tensors. */
interface GroupCache {
  readonly kind: 'group';
  readonly length: number;
}

type KvCache = OwnCache | GroupCache;

/**
 * The sequences of the last batched decode and their caches as that run's presents,
 * [rows, n_head, width, head_dim], each row left-padded to `width`. While the same sequences
 * keep decoding together (the common case between arrivals and departures), the presents are fed
 * back as the next pasts with no copying; only a change of membership rebuilds the group.
 */
interface DecodeGroup {
  readonly ids: readonly number[];
  readonly past: ort.Tensor[];
  readonly width: number;
}

type IdArray = BigInt64Array | Int32Array;

function ids(ref: TensorRef, values: readonly number[], dims: number[]): ort.Tensor {
  return ref.datatype === 'INT64'
    ? new ort.Tensor(
        'int64',
        BigInt64Array.from(values, (v) => BigInt(v)),
        dims,
      )
    : new ort.Tensor('int32', Int32Array.from(values), dims);
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

function floatsOf(tensor: ort.Tensor | undefined, name: string): Float32Array {
  if (tensor === undefined || !(tensor.data instanceof Float32Array)) {
    throw new BackendError('BACKEND_BAD_RESPONSE', `the model returned no FP32 ${name}`);
  }
  return tensor.data;
}

/**
 * Greedy choice from row b's last position of a kv model's logits. The seq dim is read from the
 * dims returned: 1 for the default kv graph (it gathers each row's last real token), the input
 * width for a --full-logits build. Every kv run here is one row or left-padded, so a row's last
 * column is its last real token either way.
 */
function greedyAtLastPosition(tensor: ort.Tensor | undefined, b: number): StepResult {
  const data = floatsOf(tensor, 'logits');
  const [, seq, vocab] = tensor!.dims;
  if (tensor!.dims.length !== 3 || seq === undefined || seq < 1 || vocab === undefined) {
    throw new BackendError(
      'BACKEND_BAD_RESPONSE',
      `logits has shape [${tensor!.dims.join(',')}], expected [batch, seq, vocab]`,
    );
  }
  return greedyFromLogits(data, (b * seq + seq - 1) * vocab, vocab);
}

export class EmbeddedBackend implements Backend {
  readonly #options: EmbeddedBackendOptions;
  #session: ort.InferenceSession | undefined;
  #signature: ModelSignature | undefined;
  #description: BackendDescription | undefined;
  #state = 'not initialised';
  readonly #kv = new Map<number, KvCache>();
  #group: DecodeGroup | undefined;

  constructor(options: EmbeddedBackendOptions) {
    this.#options = options;
  }

  get description(): BackendDescription {
    if (this.#description === undefined) throw new Error('EmbeddedBackend: init() has not run');
    return this.#description;
  }

  async init(): Promise<void> {
    const { modelName } = this.#options;
    this.#state = 'loading the model';
    const option = this.#options.modelFile;
    const modelFile = typeof option === 'string' ? option : await option();
    const signature = understandSignature(await readModelMetadata(modelFile, modelName));
    if (signature.kv?.implicitState === true) {
      throw new Error(
        `${modelFile} keeps its KV cache as Triton implicit state; the embedded backend needs a kv model with past_key_values inputs`,
      );
    }
    const session = await ort.InferenceSession.create(modelFile, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      ...(this.#options.intraOpNumThreads === undefined
        ? {}
        : { intraOpNumThreads: this.#options.intraOpNumThreads }),
    });
    const batch = this.#options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
    this.#signature = signature;
    this.#session = session;
    this.#description = {
      kind: 'embedded',
      modelName,
      variant: signature.variant,
      contextLength: this.#options.contextLength ?? GPT2_CONTEXT_LENGTH,
      vocabSize: signature.vocabSize ?? GPT2_VOCAB_SIZE,
      maxBatchSize: signature.batchDimension ? batch : 1,
      details: {
        runtime: `onnxruntime-node ${ort.env.versions.common}`,
        modelFile,
        inputs: session.inputNames,
        outputs: session.outputNames,
        batchDecode: signature.variant === 'kv' && (this.#options.batchDecode ?? true),
      },
    };
    // One prefill and one decode before the first request: onnxruntime allocates and picks
    // kernels on its first runs, which would otherwise land on a client's first token.
    await this.step([{ sequenceId: WARMUP_SEQUENCE, tokens: [PAD_ID] }]);
    await this.step([{ sequenceId: WARMUP_SEQUENCE, tokens: [PAD_ID, PAD_ID] }]);
    await this.release(WARMUP_SEQUENCE);
    this.#state = 'ready';
  }

  readiness(): Readiness {
    return this.#session !== undefined && this.#state === 'ready'
      ? { ready: true }
      : { ready: false, reason: this.#state };
  }

  async step(batch: readonly StepRequest[]): Promise<StepResult[]> {
    const session = this.#session;
    const signature = this.#signature;
    if (session === undefined || signature === undefined) {
      throw new BackendError('BACKEND_NOT_READY', `the embedded model is ${this.#state}`);
    }
    try {
      return signature.variant === 'kv'
        ? await this.#stepKv(session, signature, batch)
        : await this.#stepStateless(session, signature, batch);
    } catch (err) {
      if (err instanceof BackendError) throw err;
      throw new BackendError('BACKEND_ERROR', `onnxruntime failed: ${String(err)}`, { cause: err });
    }
  }

  async release(sequenceId: number): Promise<void> {
    // A released row of the decode group stays (masked, unused) until the group is rebuilt.
    this.#kv.delete(sequenceId);
  }

  async close(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    this.#state = 'closed';
    this.#kv.clear();
    this.#group = undefined;
    await session?.release();
  }

  async #stepStateless(
    session: ort.InferenceSession,
    sig: ModelSignature,
    batch: readonly StepRequest[],
  ): Promise<StepResult[]> {
    const width = Math.max(...batch.map((r) => r.tokens.length));
    const idValues: number[] = [];
    const maskValues: number[] = [];
    for (const r of batch) {
      for (let k = 0; k < width; k++) {
        idValues.push(r.tokens[k] ?? PAD_ID);
        maskValues.push(k < r.tokens.length ? 1 : 0);
      }
    }
    const dims = [batch.length, width];
    const feeds = {
      [sig.inputIds.name]: ids(sig.inputIds, idValues, dims),
      [sig.attentionMask.name]: ids(sig.attentionMask, maskValues, dims),
    };
    const vocab = this.description.vocabSize;
    const { logits, lastLogits, nextToken, logprob } = sig.outputs;
    if (nextToken !== undefined && logprob !== undefined) {
      const out = await session.run(feeds, [nextToken.name, logprob.name]);
      const tokens = out[nextToken.name]?.data as IdArray | undefined;
      const logprobs = floatsOf(out[logprob.name], logprob.name);
      if (tokens === undefined) throw new BackendError('BACKEND_BAD_RESPONSE', 'no next_token');
      return batch.map((_, b) => ({ tokenId: Number(tokens[b]), logprob: logprobs[b]! }));
    }
    if (lastLogits !== undefined) {
      const out = await session.run(feeds, [lastLogits.name]);
      const data = floatsOf(out[lastLogits.name], lastLogits.name);
      return batch.map((_, b) => greedyFromLogits(data, b * vocab, vocab));
    }
    if (logits === undefined) throw new BackendError('BACKEND_BAD_RESPONSE', 'no logits output');
    // Only logits: never fetch the seed signature's past_key_values (megabytes per step).
    const out = await session.run(feeds, [logits.name]);
    const data = floatsOf(out[logits.name], logits.name);
    return batch.map((r, b) =>
      greedyFromLogits(data, (b * width + r.tokens.length - 1) * vocab, vocab),
    );
  }

  async #stepKv(
    session: ort.InferenceSession,
    sig: ModelSignature,
    batch: readonly StepRequest[],
  ): Promise<StepResult[]> {
    const results = new Array<StepResult>(batch.length);
    const decode: number[] = [];
    for (const [b, r] of batch.entries()) {
      const cache = this.#kv.get(r.sequenceId);
      if (cache !== undefined && r.tokens.length === cache.length + 1) decode.push(b);
    }
    const batched = decode.length > 1 && (this.#options.batchDecode ?? true);
    const ids = decode.map((b) => batch[b]!.sequenceId);
    const group = this.#group;
    if (group !== undefined && !(batched && sameIds(group.ids, ids))) this.#dissolveGroup(sig);
    // New sequences are prefilled together (one read of the weights for all their prompts);
    // anything else that is not a batched decode runs one sequence at a time.
    const prefill = batch.flatMap((r, b) => (this.#kv.has(r.sequenceId) ? [] : [b]));
    const batchedPrefill = prefill.length > 1 && (this.#options.batchDecode ?? true);
    if (batchedPrefill) {
      const out = await this.#prefillTogether(
        session,
        sig,
        prefill.map((b) => batch[b]!),
      );
      prefill.forEach((b, i) => {
        results[b] = out[i]!;
      });
    }
    for (const [b, r] of batch.entries()) {
      if ((batched && decode.includes(b)) || (batchedPrefill && prefill.includes(b))) continue;
      results[b] = await this.#runOne(session, sig, r);
    }
    if (batched) {
      const out = await this.#runGroup(
        session,
        sig,
        decode.map((b) => batch[b]!),
      );
      decode.forEach((b, i) => {
        results[b] = out[i]!;
      });
    }
    return results;
  }

  /** One sequence with a cache of its own: feed the tokens the cache has not seen. */
  async #runOne(
    session: ort.InferenceSession,
    sig: ModelSignature,
    r: StepRequest,
  ): Promise<StepResult> {
    const kv = sig.kv!;
    const cached = this.#kv.get(r.sequenceId);
    const cache: OwnCache =
      cached?.kind === 'own'
        ? cached
        : {
            kind: 'own',
            past: kv.layers.flatMap(() => [0, 1].map(() => this.#emptyPast(kv.nHead, kv.headDim))),
            length: 0,
          };
    const fresh = r.tokens.slice(cache.length);
    if (fresh.length === 0) {
      throw new BackendError('BACKEND_BAD_RESPONSE', `sequence ${r.sequenceId} has no new tokens`);
    }
    const total = cache.length + fresh.length;
    const feeds: Record<string, ort.Tensor> = {
      [sig.inputIds.name]: ids(sig.inputIds, fresh, [1, fresh.length]),
      [sig.attentionMask.name]: ids(sig.attentionMask, new Array<number>(total).fill(1), [
        1,
        total,
      ]),
      [sig.positionIds!.name]: ids(
        sig.positionIds!,
        fresh.map((_, k) => cache.length + k),
        [1, fresh.length],
      ),
    };
    kv.layers.forEach((layer, i) => {
      feeds[layer.pastKey] = cache.past[2 * i]!;
      feeds[layer.pastValue] = cache.past[2 * i + 1]!;
    });
    const out = await session.run(feeds);
    const result = greedyAtLastPosition(out[sig.outputs.logits!.name], 0);
    // The presents become the next step's pasts as they are: no copy.
    this.#kv.set(r.sequenceId, {
      kind: 'own',
      past: kv.layers.flatMap((layer) => [out[layer.presentKey]!, out[layer.presentValue]!]),
      length: total,
    });
    return result;
  }

  /**
   * Prompts of several new sequences in one run: left-padded to the longest, padding masked,
   * positions counted from each prompt's first real token. Each keeps its own cache, without
   * the padding.
   */
  async #prefillTogether(
    session: ort.InferenceSession,
    sig: ModelSignature,
    rows: readonly StepRequest[],
  ): Promise<StepResult[]> {
    const { nHead, headDim, layers } = sig.kv!;
    const B = rows.length;
    const W = Math.max(...rows.map((r) => r.tokens.length));
    const tokens: number[] = [];
    const mask: number[] = [];
    const positions: number[] = [];
    for (const r of rows) {
      const pad = W - r.tokens.length;
      for (let k = 0; k < W; k++) {
        tokens.push(k < pad ? PAD_ID : r.tokens[k - pad]!);
        mask.push(k < pad ? 0 : 1);
        positions.push(k < pad ? 0 : k - pad);
      }
    }
    const feeds: Record<string, ort.Tensor> = {
      [sig.inputIds.name]: ids(sig.inputIds, tokens, [B, W]),
      [sig.attentionMask.name]: ids(sig.attentionMask, mask, [B, W]),
      [sig.positionIds!.name]: ids(sig.positionIds!, positions, [B, W]),
    };
    for (const layer of layers) {
      for (const name of [layer.pastKey, layer.pastValue]) {
        feeds[name] = new ort.Tensor('float32', new Float32Array(0), [B, nHead, 0, headDim]);
      }
    }
    const out = await session.run(feeds);
    const logits = out[sig.outputs.logits!.name];
    const presents = layers.flatMap((layer) => [
      floatsOf(out[layer.presentKey], layer.presentKey),
      floatsOf(out[layer.presentValue], layer.presentValue),
    ]);
    return rows.map((r, b) => {
      const length = r.tokens.length;
      const past = presents.map((present) => {
        const own = new Float32Array(nHead * length * headDim);
        for (let h = 0; h < nHead; h++) {
          const from = ((b * nHead + h) * W + (W - length)) * headDim;
          own.set(present.subarray(from, from + length * headDim), h * length * headDim);
        }
        return new ort.Tensor('float32', own, [1, nHead, length, headDim]);
      });
      this.#kv.set(r.sequenceId, { kind: 'own', past, length });
      return greedyAtLastPosition(logits, b);
    });
  }

  /**
   * One-token decodes of several sequences in one run. Rows are left-padded to the longest
   * cache and the padding masked out; positions are explicit, so each row computes exactly what
   * it would alone.
   */
  async #runGroup(
    session: ort.InferenceSession,
    sig: ModelSignature,
    rows: readonly StepRequest[],
  ): Promise<StepResult[]> {
    const kv = sig.kv!;
    const group = this.#group ?? this.#formGroup(sig, rows);
    const lengths = rows.map((r) => this.#kv.get(r.sequenceId)!.length);
    const B = rows.length;
    const P = group.width;
    const mask: number[] = [];
    for (const length of lengths) {
      for (let k = 0; k < P + 1; k++) mask.push(k < P - length ? 0 : 1);
    }
    const feeds: Record<string, ort.Tensor> = {
      [sig.inputIds.name]: ids(
        sig.inputIds,
        rows.map((r) => r.tokens.at(-1)!),
        [B, 1],
      ),
      [sig.attentionMask.name]: ids(sig.attentionMask, mask, [B, P + 1]),
      [sig.positionIds!.name]: ids(sig.positionIds!, lengths, [B, 1]),
    };
    kv.layers.forEach((layer, i) => {
      feeds[layer.pastKey] = group.past[2 * i]!;
      feeds[layer.pastValue] = group.past[2 * i + 1]!;
    });
    const out = await session.run(feeds);
    const logits = out[sig.outputs.logits!.name];
    this.#group = {
      ids: group.ids,
      past: kv.layers.flatMap((layer) => [out[layer.presentKey]!, out[layer.presentValue]!]),
      width: P + 1,
    };
    return rows.map((r, b) => {
      this.#kv.set(r.sequenceId, { kind: 'group', length: lengths[b]! + 1 });
      return greedyAtLastPosition(logits, b);
    });
  }

  /** Copies the rows' own caches into left-padded batch tensors. */
  #formGroup(sig: ModelSignature, rows: readonly StepRequest[]): DecodeGroup {
    const { nHead, headDim, layers } = sig.kv!;
    const caches = rows.map((r) => this.#kv.get(r.sequenceId) as OwnCache);
    const B = rows.length;
    const P = Math.max(...caches.map((c) => c.length));
    const past = layers.flatMap((_, i) =>
      [0, 1].map((kind) => {
        const padded = new Float32Array(B * nHead * P * headDim);
        caches.forEach((c, b) => {
          const src = c.past[2 * i + kind]!.data as Float32Array;
          for (let h = 0; h < nHead; h++) {
            padded.set(
              src.subarray(h * c.length * headDim, (h + 1) * c.length * headDim),
              ((b * nHead + h) * P + (P - c.length)) * headDim,
            );
          }
        });
        return new ort.Tensor('float32', padded, [B, nHead, P, headDim]);
      }),
    );
    return { ids: rows.map((r) => r.sequenceId), past, width: P };
  }

  /** Gives every live member of the decode group its own cache again, and forgets the group. */
  #dissolveGroup(sig: ModelSignature): void {
    const group = this.#group;
    this.#group = undefined;
    if (group === undefined) return;
    const { nHead, headDim } = sig.kv!;
    const P = group.width;
    const rows = group.ids.length;
    const data = group.past.map((t) => floatsOf(t, 'present'));
    if (data.some((d) => d.length !== rows * nHead * P * headDim)) {
      throw new BackendError('BACKEND_BAD_RESPONSE', 'present tensors have an unexpected size');
    }
    group.ids.forEach((id, b) => {
      const cache = this.#kv.get(id);
      if (cache === undefined || cache.kind !== 'group') return;
      const length = cache.length;
      const past = data.map((present) => {
        const own = new Float32Array(nHead * length * headDim);
        for (let h = 0; h < nHead; h++) {
          const from = ((b * nHead + h) * P + (P - length)) * headDim;
          own.set(present.subarray(from, from + length * headDim), h * length * headDim);
        }
        return new ort.Tensor('float32', own, [1, nHead, length, headDim]);
      });
      this.#kv.set(id, { kind: 'own', past, length });
    });
  }

  #emptyPast(nHead: number, headDim: number): ort.Tensor {
    return new ort.Tensor('float32', new Float32Array(0), [1, nHead, 0, headDim]);
  }
}
