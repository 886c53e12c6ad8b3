/**
 * How to drive a model on Triton, decided once at start-up from what the server told us: its
 * metadata (the signature), its config when readable (max_batch_size, sequence_batching) and its
 * version when readable. Pure: no I/O, so every rule here has a unit test of its own.
 *
 * - max_batch_size > 0: one call per step with the batch right-padded; otherwise (the notebook's
 *   model, or a kv model under the sequence batcher, which takes batch 1 only) one call per
 *   sequence, concurrently.
 * - kv models only through Triton's implicit state. Whether the server's release can load the
 *   model at all (implicit state with initial_state needs 22.01, --fused 23.05, int8 25.05) is
 *   src/model/triton-releases.ts's table, read with the build facts `model build` records in
 *   config.pbtxt's parameters (or the variant alone when the config cannot be read).
 * - FP16/BF16 outputs only on the binary wire: the KServe v2 JSON tensor format has no half-float
 *   encoding, so Triton refuses to send them as JSON.
 */

import { GPT2_CONTEXT_LENGTH, GPT2_VOCAB_SIZE } from '../../contract/model.js';
import {
  type ModelSignature,
  type TensorRef,
  understandSignature,
} from '../../contract/signature.js';
import type { ModelMetadataJson } from '../../kserve/messages.js';
import type { TritonModelConfig } from '../../kserve/model-config.js';
import { explainIncompatibility, modelFactsFromProperties } from '../../model/triton-releases.js';
import type { BackendDescription } from '../backend.js';

export type Wire = 'binary' | 'json';

export interface PlanInput {
  readonly metadata: ModelMetadataJson;
  /** GET .../config, undefined when not reachable (the Seldon executor does not route it). */
  readonly config: TritonModelConfig | undefined;
  /** GET /v2's version, undefined when not reachable. */
  readonly serverVersion: string | undefined;
  readonly wire: Wire;
  /** TRITON_MAX_BATCH_SIZE: the model's max_batch_size when its config cannot be read. */
  readonly maxBatchSize: number | undefined;
  /** Pool size: how many sequences one step may carry when the model does not batch. */
  readonly connections: number;
  /** Names the model and server in error messages, e.g. "model 'gpt2' on http://…". */
  readonly where: string;
}

export interface Plan {
  readonly signature: ModelSignature;
  readonly config: TritonModelConfig | undefined;
  readonly serverVersion: string | undefined;
  /** One infer call carries the whole step (max_batch_size > 0 and not a sequence model). */
  readonly batched: boolean;
  readonly maxBatchSize: number;
  /** Outputs requested on every call: only those a step reads. */
  readonly outputs: readonly TensorRef[];
}

/** The outputs a step of this signature reads; never the seed signature's past_key_values. */
function wantedOutputs(s: ModelSignature): TensorRef[] {
  switch (s.variant) {
    case 'next-token':
      return [s.outputs.nextToken, s.outputs.logprob];
    case 'last':
      return [s.outputs.lastLogits];
    case 'kv':
      // The graph's own greedy choice where it has one: 12 bytes a row instead of 201 KB.
      return s.outputs.greedy === undefined
        ? [s.outputs.logits]
        : [s.outputs.greedy.nextToken, s.outputs.greedy.logprob];
    case 'logits':
      return [s.outputs.logits];
  }
}

/** The plan for a model, or an Error saying why the gateway cannot drive it. */
export function planFromMetadata(input: PlanInput): Plan {
  const { config, serverVersion, where } = input;
  let s: ModelSignature;
  try {
    s = understandSignature(input.metadata);
  } catch (err) {
    throw new Error(`Triton backend: ${(err as Error).message}`);
  }
  if (s.variant === 'kv') {
    if (!s.kv.implicitState) {
      throw new Error(
        `Triton backend: ${where} is a kv model whose past_key_values are plain inputs; the gateway only drives kv models through Triton's implicit state (config.pbtxt sequence_batching.state, Triton >= 22.01)`,
      );
    }
    if (config !== undefined && config.sequence_batching === undefined) {
      throw new Error(
        `Triton backend: ${where} hides its past_key_values but its config has no sequence_batching block`,
      );
    }
  }
  const facts = modelFactsFromProperties(config?.parameters ?? {}) ?? { variant: s.variant };
  const why =
    serverVersion === undefined ? undefined : explainIncompatibility(serverVersion, facts);
  if (why !== undefined) throw new Error(`Triton backend: ${where}: ${why}`);
  const outputs = wantedOutputs(s);
  if (input.wire === 'json') {
    const half = outputs.find((t) => t.datatype === 'FP16' || t.datatype === 'BF16');
    if (half !== undefined) {
      throw new Error(
        `Triton backend: output ${half.name} is ${half.datatype}, which Triton cannot send as JSON; use TRITON_WIRE=binary directly to Triton`,
      );
    }
  }
  const tritonMax = config?.max_batch_size ?? input.maxBatchSize ?? 0;
  const batched = s.variant !== 'kv' && tritonMax > 0;
  return {
    signature: s,
    config,
    serverVersion,
    batched,
    maxBatchSize: batched ? tritonMax : input.connections,
    outputs,
  };
}

export interface DescribeInput {
  readonly plan: Plan;
  readonly modelName: string;
  readonly url: string;
  readonly wire: Wire;
  readonly platform: string;
  readonly contextLength: number | undefined;
  /** TRITON_MAX_BATCH_SIZE as configured, shown when the config was not reachable. */
  readonly maxBatchSize: number | undefined;
}

/** What /info and /readyz show about a Triton model. */
export function describePlan(d: DescribeInput): BackendDescription {
  const { plan: p } = d;
  const s = p.signature;
  return Object.freeze({
    kind: 'triton',
    modelName: d.modelName,
    variant: s.variant,
    contextLength: d.contextLength ?? GPT2_CONTEXT_LENGTH,
    vocabSize: s.vocabSize !== undefined && s.vocabSize > 0 ? s.vocabSize : GPT2_VOCAB_SIZE,
    maxBatchSize: p.maxBatchSize,
    details: Object.freeze({
      url: d.url,
      wire: d.wire,
      platform: d.platform,
      serverVersion: p.serverVersion ?? 'unknown (GET /v2 not reachable)',
      batching: p.batched ? 'one call per step' : 'one call per sequence',
      tritonMaxBatchSize:
        p.config?.max_batch_size ??
        (d.maxBatchSize === undefined
          ? 'unknown (config not reachable)'
          : `${d.maxBatchSize} (TRITON_MAX_BATCH_SIZE; config not reachable)`),
      inputs: [s.inputIds, s.attentionMask, ...(s.variant === 'kv' ? [s.positionIds] : [])].map(
        (t) => `${t.name} ${t.datatype}`,
      ),
      requestedOutputs: p.outputs.map((t) => t.name),
      implicitState: s.kv?.implicitState ?? false,
    }),
  });
}
