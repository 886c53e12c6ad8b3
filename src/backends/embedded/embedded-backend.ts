/**
 * The embedded backend's engine: the same ONNX model file Triton serves, run by onnxruntime-node
 * on the calling thread. The gateway runs it inside its inference worker (worker-backend.ts),
 * since session.run blocks that thread; tests and benches also drive it directly. It learns the model from its metadata through understandSignature
 * (src/contract/signature.ts), the one place that knows model interfaces, and drives every
 * variant:
 * - `kv` (default): the prompt is prefilled once per sequence, then each step feeds only the new
 *   token with that sequence's KV cache; a prompt may also come in chunks (wantToken: false), each
 *   extending the cache. Decode steps of several sequences are batched into one
 *   session.run — pasts left-padded to a common length, padding masked out with attention_mask
 *   zeros and positions given explicitly (the Optimum convention allows this) — so that on CPU
 *   the weights are read once per step for all of them. The runs are in kv-steps.ts, the caches
 *   and the decode group in kv-cache.ts.
 * - `logits`, `last`, `next-token`: stateless; the whole sequence every step, rows right-padded.
 */
import * as ort from 'onnxruntime-node';
import { GPT2_CONTEXT_LENGTH, GPT2_VOCAB_SIZE } from '../../contract/model.js';
import { type ModelSignature, understandSignature } from '../../contract/signature.js';
import { readModelMetadata } from '../../model/metadata.js';
import {
  type Backend,
  type BackendDescription,
  BackendError,
  type Readiness,
  type StepCost,
  type StepRequest,
  type StepResult,
} from '../backend.js';
import { greedyFromLogits } from '../greedy.js';
import { type IdArray, ids, PAD_ID } from './feeds.js';
import { floatData, KvCache } from './kv-cache.js';
import { stepKv } from './kv-steps.js';

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
  /** Whether idle intra-op threads spin for work (onnxruntime's session.intra_op.allow_spinning);
   * default onnxruntime's (yes). */
  readonly intraOpSpinning?: boolean;
}

export class EmbeddedBackend implements Backend {
  readonly #options: EmbeddedBackendOptions;
  #session: ort.InferenceSession | undefined;
  #signature: ModelSignature | undefined;
  #description: BackendDescription | undefined;
  #state = 'not initialised';
  /** kv models only. */
  #cache: KvCache | undefined;
  #lastCost: StepCost | undefined;

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
      ...(this.#options.intraOpSpinning === undefined
        ? {}
        : {
            extra: {
              session: { intra_op: { allow_spinning: this.#options.intraOpSpinning ? '1' : '0' } },
            },
          }),
    });
    const batch = this.#options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
    this.#signature = signature;
    this.#session = session;
    if (signature.variant === 'kv') {
      const { nHead, headDim, layers } = signature.kv;
      this.#cache = new KvCache({ nHead, headDim, pastCount: 2 * layers.length });
    }
    this.#description = {
      kind: 'embedded',
      modelName,
      variant: signature.variant,
      contextLength: this.#options.contextLength ?? GPT2_CONTEXT_LENGTH,
      vocabSize: signature.vocabSize ?? GPT2_VOCAB_SIZE,
      maxBatchSize: signature.batchDimension ? batch : 1,
      // A kv cache can be extended chunk by chunk; a stateless model reruns the whole sequence.
      chunkedPrefill: signature.variant === 'kv',
      details: {
        runtime: `onnxruntime-node ${ort.env.versions.common}`,
        modelFile,
        inputs: session.inputNames,
        outputs: session.outputNames,
        batchDecode: signature.variant === 'kv' && this.#batchTogether,
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

  async step(batch: readonly StepRequest[]): Promise<(StepResult | undefined)[]> {
    const session = this.#session;
    const signature = this.#signature;
    if (session === undefined || signature === undefined) {
      throw new BackendError('BACKEND_NOT_READY', `the embedded model is ${this.#state}`);
    }
    try {
      if (signature.variant === 'kv' && this.#cache !== undefined) {
        const { results, cost } = await stepKv(
          session,
          signature,
          this.#cache,
          batch,
          this.#batchTogether,
        );
        this.#lastCost = cost;
        return results;
      }
      return (await this.#stepStateless(session, signature, batch)).map((result, b) =>
        batch[b]?.wantToken === false ? undefined : result,
      );
    } catch (err) {
      if (err instanceof BackendError) throw err;
      throw new BackendError('BACKEND_ERROR', `onnxruntime failed: ${String(err)}`, { cause: err });
    }
  }

  /** kv models only: a stateless model takes no prefill chunks. */
  lastStepCost(): StepCost | undefined {
    return this.#lastCost;
  }

  async release(sequenceId: number): Promise<void> {
    this.#cache?.delete(sequenceId);
  }

  async close(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    this.#state = 'closed';
    this.#cache?.clear();
    await session?.release();
  }

  /** kv only: prefills and decodes of several sequences run as one batch each. */
  get #batchTogether(): boolean {
    return this.#options.batchDecode ?? true;
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
    if (sig.variant === 'next-token') {
      const { nextToken, logprob } = sig.outputs;
      const out = await session.run(feeds, [nextToken.name, logprob.name]);
      const tokens = out[nextToken.name]?.data as IdArray | undefined;
      const logprobs = floatData(out[logprob.name], logprob.name);
      if (tokens === undefined) throw new BackendError('BACKEND_BAD_RESPONSE', 'no next_token');
      return batch.map((_, b) => ({ tokenId: Number(tokens[b]), logprob: logprobs[b] as number }));
    }
    if (sig.variant === 'last') {
      const { lastLogits } = sig.outputs;
      const out = await session.run(feeds, [lastLogits.name]);
      const data = floatData(out[lastLogits.name], lastLogits.name);
      return batch.map((_, b) => greedyFromLogits(data, b * vocab, vocab));
    }
    // Only logits: never fetch the seed signature's past_key_values (megabytes per step).
    const { logits } = sig.outputs;
    const out = await session.run(feeds, [logits.name]);
    const data = floatData(out[logits.name], logits.name);
    return batch.map((r, b) =>
      greedyFromLogits(data, (b * width + r.tokens.length - 1) * vocab, vocab),
    );
  }
}
