/** planFromMetadata and describePlan: how the Triton backend decides to drive a model. Pure. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  describePlan,
  type PlanInput,
  planFromMetadata,
} from '../../../src/backends/triton/plan.js';
import type { ModelMetadataJson } from '../../../src/kserve/messages.js';
import type { TritonModelConfig } from '../../../src/kserve/model-config.js';

const ids = (name: string, datatype = 'INT64') => ({ name, datatype, shape: [-1, -1] });
const logits = (datatype = 'FP32') => ({ name: 'logits', datatype, shape: [-1, -1, 50257] });

function metadata(
  inputs: ModelMetadataJson['inputs'],
  outputs: ModelMetadataJson['outputs'],
): ModelMetadataJson {
  return { name: 'gpt2', versions: ['1'], platform: 'onnxruntime_onnx', inputs, outputs };
}

const LOGITS = metadata([ids('input_ids'), ids('attention_mask')], [logits()]);
const NOTEBOOK = metadata(
  [ids('input_ids:0', 'INT32'), ids('attention_mask:0', 'INT32')],
  [{ name: 'past_key_values', datatype: 'FP32', shape: [12, 2, -1, 12, -1, 64] }, logits()],
);
const NEXT_TOKEN = metadata(
  [ids('input_ids'), ids('attention_mask')],
  [
    { name: 'next_token', datatype: 'INT64', shape: [-1, 1] },
    { name: 'logprob', datatype: 'FP32', shape: [-1, 1] },
  ],
);
const KV_IMPLICIT = metadata(
  [ids('input_ids'), ids('attention_mask'), ids('position_ids')],
  [logits()],
);

function config(extra: Partial<TritonModelConfig> = {}): TritonModelConfig {
  return {
    name: 'gpt2',
    platform: 'onnxruntime_onnx',
    backend: 'onnxruntime',
    max_batch_size: 8,
    input: [],
    output: [],
    instance_group: [],
    ...extra,
  };
}

const SEQUENCE_BATCHING = { max_sequence_idle_microseconds: 0, state: [] };

function input(extra: Partial<PlanInput>): PlanInput {
  return {
    metadata: LOGITS,
    config: undefined,
    serverVersion: undefined,
    wire: 'binary',
    maxBatchSize: undefined,
    connections: 4,
    where: "model 'gpt2' on http://triton:8000",
    ...extra,
  };
}

describe('planFromMetadata', () => {
  it('batches a step into one call when the config says max_batch_size > 0', () => {
    const plan = planFromMetadata(input({ config: config({ max_batch_size: 8 }) }));
    assert.equal(plan.batched, true);
    assert.equal(plan.maxBatchSize, 8);
    assert.deepEqual(plan.outputs, [{ name: 'logits', datatype: 'FP32' }]);
  });

  it('without a readable config, TRITON_MAX_BATCH_SIZE decides; the config wins when readable', () => {
    assert.equal(planFromMetadata(input({ maxBatchSize: 16 })).maxBatchSize, 16);
    const both = planFromMetadata(
      input({ maxBatchSize: 16, config: config({ max_batch_size: 2 }) }),
    );
    assert.equal(both.maxBatchSize, 2);
  });

  it('knowing neither, one call per sequence, as many at once as the pool has connections', () => {
    const plan = planFromMetadata(input({}));
    assert.equal(plan.batched, false);
    assert.equal(plan.maxBatchSize, 4);
  });

  it("never requests the notebook model's past_key_values output", () => {
    const plan = planFromMetadata(
      input({ metadata: NOTEBOOK, config: config({ max_batch_size: 0 }) }),
    );
    assert.equal(plan.signature.variant, 'logits');
    assert.deepEqual(
      plan.outputs.map((t) => t.name),
      ['logits'],
    );
    assert.equal(plan.batched, false);
  });

  it('next-token asks for both of its outputs', () => {
    const plan = planFromMetadata(input({ metadata: NEXT_TOKEN }));
    assert.deepEqual(
      plan.outputs.map((t) => t.name),
      ['next_token', 'logprob'],
    );
  });

  it('a kv model under implicit state goes one call per sequence, whatever max_batch_size says', () => {
    const plan = planFromMetadata(
      input({
        metadata: KV_IMPLICIT,
        config: config({ max_batch_size: 8, sequence_batching: SEQUENCE_BATCHING }),
        serverVersion: '2.41.0',
      }),
    );
    assert.equal(plan.signature.variant, 'kv');
    assert.equal(plan.batched, false);
    assert.equal(plan.maxBatchSize, 4);
    assert.deepEqual(
      plan.outputs.map((t) => t.name),
      ['logits'],
    );
  });

  it('a kv model with the greedy outputs is asked for those instead of its logits', () => {
    const plan = planFromMetadata(
      input({
        metadata: { ...KV_IMPLICIT, outputs: [...KV_IMPLICIT.outputs, ...NEXT_TOKEN.outputs] },
        config: config({ max_batch_size: 8, sequence_batching: SEQUENCE_BATCHING }),
        serverVersion: '2.41.0',
      }),
    );
    assert.equal(plan.signature.variant, 'kv');
    assert.deepEqual(
      plan.outputs.map((t) => t.name),
      ['next_token', 'logprob'],
    );
  });

  it('refuses a kv model whose past_key_values are plain inputs', () => {
    const visible = metadata(
      [
        ids('input_ids'),
        ids('attention_mask'),
        ids('position_ids'),
        { name: 'past_key_values.0.key', datatype: 'FP32', shape: [-1, 4, -1, 8] },
        { name: 'past_key_values.0.value', datatype: 'FP32', shape: [-1, 4, -1, 8] },
      ],
      [
        logits(),
        { name: 'present.0.key', datatype: 'FP32', shape: [-1, 4, -1, 8] },
        { name: 'present.0.value', datatype: 'FP32', shape: [-1, 4, -1, 8] },
      ],
    );
    assert.throws(
      () => planFromMetadata(input({ metadata: visible })),
      /past_key_values are plain inputs/,
    );
  });

  it('refuses hidden states without a sequence_batching block in the config', () => {
    assert.throws(
      () => planFromMetadata(input({ metadata: KV_IMPLICIT, config: config() })),
      /its config has no sequence_batching block/,
    );
  });

  it('refuses a model the server release cannot load, naming the first release that can', () => {
    assert.throws(
      () => planFromMetadata(input({ metadata: KV_IMPLICIT, serverVersion: '2.13.0' })),
      /Triton server 2\.13\.0 \(release 21\.08.*needs initial_state; use Triton 22\.01 or later$/,
    );
    assert.equal(
      planFromMetadata(input({ metadata: KV_IMPLICIT, serverVersion: '2.18.0' })).signature.variant,
      'kv',
    );
    // An unknown version is let through: the model's own load decides.
    assert.equal(planFromMetadata(input({ metadata: KV_IMPLICIT })).signature.variant, 'kv');
    // The build facts model build records in config.pbtxt count too: int8 needs 25.05.
    const int8 = config({
      max_batch_size: 1,
      sequence_batching: SEQUENCE_BATCHING,
      parameters: { 'gpt2.variant': 'kv', 'gpt2.graph': 'standard', 'gpt2.weights_dtype': 'int8' },
    });
    assert.throws(
      () =>
        planFromMetadata(input({ metadata: KV_IMPLICIT, config: int8, serverVersion: '2.42.0' })),
      /release 24\.01.*--quantize int8.*use Triton 25\.05 or later$/,
    );
  });

  it('refuses half-float outputs on the JSON wire, accepts them on the binary wire', () => {
    const half = metadata([ids('input_ids'), ids('attention_mask')], [logits('FP16')]);
    assert.throws(
      () => planFromMetadata(input({ metadata: half, wire: 'json' })),
      /output logits is FP16, which Triton cannot send as JSON/,
    );
    assert.equal(planFromMetadata(input({ metadata: half, wire: 'binary' })).outputs.length, 1);
  });

  it('a model it cannot drive fails with what is missing', () => {
    const bad = metadata([ids('tokens')], []);
    assert.throws(
      () => planFromMetadata(input({ metadata: bad })),
      /^Error: Triton backend: cannot drive model gpt2 .*no input named input_ids$/,
    );
  });
});

describe('describePlan', () => {
  const common = {
    modelName: 'gpt2',
    url: 'http://triton:8000',
    wire: 'binary' as const,
    platform: 'onnxruntime_onnx',
    contextLength: undefined,
    maxBatchSize: undefined,
  };

  it("falls back to GPT-2's vocabulary and context when the interface does not show them", () => {
    const d = describePlan({ ...common, plan: planFromMetadata(input({ metadata: NEXT_TOKEN })) });
    assert.equal(d.vocabSize, 50257);
    assert.equal(d.contextLength, 1024);
    assert.equal(d.details.tritonMaxBatchSize, 'unknown (config not reachable)');
    assert.equal(d.details.serverVersion, 'unknown (GET /v2 not reachable)');
  });

  it('shows the inputs it sends, the outputs it asks for, and where max_batch_size came from', () => {
    const plan = planFromMetadata(
      input({ metadata: KV_IMPLICIT, maxBatchSize: 3, serverVersion: '2.41.0' }),
    );
    const d = describePlan({ ...common, plan, maxBatchSize: 3 });
    assert.equal(d.variant, 'kv');
    assert.deepEqual(d.details.inputs, [
      'input_ids INT64',
      'attention_mask INT64',
      'position_ids INT64',
    ]);
    assert.deepEqual(d.details.requestedOutputs, ['logits']);
    assert.equal(d.details.implicitState, true);
    assert.equal(d.details.batching, 'one call per sequence');
    assert.equal(d.details.tritonMaxBatchSize, '3 (TRITON_MAX_BATCH_SIZE; config not reachable)');
  });
});
