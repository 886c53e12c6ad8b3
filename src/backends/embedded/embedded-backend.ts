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

/** GPT-2's n_positions; the model's interface does not show it. */
export const DEFAULT_CONTEXT_LENGTH = 1024;
/** GPT-2's vocabulary, for the next-token variant whose interface hides it. */
const GPT2_VOCAB_SIZE = 50257;
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
  /** kv only: run decode steps of several sequences as one batch (default true). */
  readonly batchDecode?: boolean;
  /** onnxruntime intra-op threads; default: onnxruntime's (all cores). */
  readonly intraOpNumThreads?: number;
}

interface KvState {
  /** present.{i}.key|value of the last run, in layer order: [1, n_head, length, head_dim]. */
  past: ort.Tensor[];
  /** Tokens held in the cache. */
  length: number;
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

function floatsOf(tensor: ort.Tensor | undefined, name: string): Float32Array {
  if (tensor === undefined || !(tensor.data instanceof Float32Array)) {
    throw new BackendError('BACKEND_BAD_RESPONSE', `the model returned no FP32 ${name}`);
  }
  return tensor.data;
}

export class EmbeddedBackend implements Backend {
  readonly #options: EmbeddedBackendOptions;
  #session: ort.InferenceSession | undefined;
  #signature: ModelSignature | undefined;
  #description: BackendDescription | undefined;
  #state = 'not initialised';
  readonly #kv = new Map<number, KvState>();

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
      contextLength: this.#options.contextLength ?? DEFAULT_CONTEXT_LENGTH,
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
    this.#kv.delete(sequenceId);
  }

  async close(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    this.#state = 'closed';
    this.#kv.clear();
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
      const state = this.#kv.get(r.sequenceId);
      if (state !== undefined && r.tokens.length === state.length + 1) decode.push(b);
    }
    const batched = decode.length > 1 && (this.#options.batchDecode ?? true);
    // Prefills (and anything not a one-token decode) run one sequence at a time.
    for (const [b, r] of batch.entries()) {
      if (batched && decode.includes(b)) continue;
      results[b] = await this.#runOne(session, sig, r);
    }
    if (batched) {
      const rows = decode.map((b) => batch[b]!);
      const out = await this.#runDecodeBatch(session, sig, rows);
      decode.forEach((b, i) => {
        results[b] = out[i]!;
      });
    }
    return results;
  }

  /** One sequence: feed the tokens its cache has not seen. */
  async #runOne(
    session: ort.InferenceSession,
    sig: ModelSignature,
    r: StepRequest,
  ): Promise<StepResult> {
    const kv = sig.kv!;
    const state = this.#kv.get(r.sequenceId) ?? {
      past: kv.layers.flatMap(() => [0, 1].map(() => this.#emptyPast(kv.nHead, kv.headDim))),
      length: 0,
    };
    const fresh = r.tokens.slice(state.length);
    if (fresh.length === 0) {
      throw new BackendError('BACKEND_BAD_RESPONSE', `sequence ${r.sequenceId} has no new tokens`);
    }
    const total = state.length + fresh.length;
    const feeds: Record<string, ort.Tensor> = {
      [sig.inputIds.name]: ids(sig.inputIds, fresh, [1, fresh.length]),
      [sig.attentionMask.name]: ids(sig.attentionMask, new Array<number>(total).fill(1), [
        1,
        total,
      ]),
      [sig.positionIds!.name]: ids(
        sig.positionIds!,
        fresh.map((_, k) => state.length + k),
        [1, fresh.length],
      ),
    };
    kv.layers.forEach((layer, i) => {
      feeds[layer.pastKey] = state.past[2 * i]!;
      feeds[layer.pastValue] = state.past[2 * i + 1]!;
    });
    const out = await session.run(feeds);
    const logits = floatsOf(out[sig.outputs.logits!.name], 'logits');
    const vocab = this.description.vocabSize;
    // The presents become the next step's pasts as they are: no copy.
    this.#kv.set(r.sequenceId, {
      past: kv.layers.flatMap((layer) => [out[layer.presentKey]!, out[layer.presentValue]!]),
      length: total,
    });
    return greedyFromLogits(logits, (fresh.length - 1) * vocab, vocab);
  }

  /** Several one-token decodes in one run: pasts left-padded to the longest, padding masked. */
  async #runDecodeBatch(
    session: ort.InferenceSession,
    sig: ModelSignature,
    rows: readonly StepRequest[],
  ): Promise<StepResult[]> {
    const kv = sig.kv!;
    const { nHead, headDim } = kv;
    const states = rows.map((r) => this.#kv.get(r.sequenceId)!);
    const B = rows.length;
    const P = Math.max(...states.map((s) => s.length));
    const mask: number[] = [];
    for (const s of states) {
      for (let k = 0; k < P + 1; k++) mask.push(k < P - s.length ? 0 : 1);
    }
    const feeds: Record<string, ort.Tensor> = {
      [sig.inputIds.name]: ids(
        sig.inputIds,
        rows.map((r) => r.tokens.at(-1)!),
        [B, 1],
      ),
      [sig.attentionMask.name]: ids(sig.attentionMask, mask, [B, P + 1]),
      [sig.positionIds!.name]: ids(
        sig.positionIds!,
        states.map((s) => s.length),
        [B, 1],
      ),
    };
    const block = headDim;
    kv.layers.forEach((layer, i) => {
      for (const [kind, name] of [
        [0, layer.pastKey],
        [1, layer.pastValue],
      ] as const) {
        const padded = new Float32Array(B * nHead * P * headDim);
        states.forEach((s, b) => {
          const src = s.past[2 * i + kind]!.data as Float32Array;
          for (let h = 0; h < nHead; h++) {
            padded.set(
              src.subarray(h * s.length * block, (h + 1) * s.length * block),
              ((b * nHead + h) * P + (P - s.length)) * block,
            );
          }
        });
        feeds[name] = new ort.Tensor('float32', padded, [B, nHead, P, headDim]);
      }
    });
    const out = await session.run(feeds);
    const logits = floatsOf(out[sig.outputs.logits!.name], 'logits');
    const vocab = this.description.vocabSize;
    // Each row's cache: the last (its length + 1) positions of the present, without padding.
    const presents = kv.layers.flatMap((layer) => [
      floatsOf(out[layer.presentKey], layer.presentKey),
      floatsOf(out[layer.presentValue], layer.presentValue),
    ]);
    return rows.map((r, b) => {
      const s = states[b]!;
      const length = s.length + 1;
      const past = presents.map((present) => {
        const own = new Float32Array(nHead * length * headDim);
        for (let h = 0; h < nHead; h++) {
          const from = ((b * nHead + h) * (P + 1) + (P + 1 - length)) * block;
          own.set(present.subarray(from, from + length * block), h * length * block);
        }
        return new ort.Tensor('float32', own, [1, nHead, length, headDim]);
      });
      this.#kv.set(r.sequenceId, { past, length });
      return greedyFromLogits(logits, b * vocab, vocab);
    });
  }

  #emptyPast(nHead: number, headDim: number): ort.Tensor {
    return new ort.Tensor('float32', new Float32Array(0), [1, nHead, 0, headDim]);
  }
}
