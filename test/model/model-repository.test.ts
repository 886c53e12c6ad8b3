import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NAMED_CONFIGS } from '../../src/model/configs.js';
import { GRAPH_VERSION } from '../../src/model/gpt2-graph.js';
import { readModelMetadata } from '../../src/model/metadata.js';
import { configPbtxt, writeModelRepository } from '../../src/model/model-repository.js';

const tiny = NAMED_CONFIGS.tiny;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gpt2-repo-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeModelRepository', () => {
  test('writes <repo>/<name>/1/model.onnx and a config.pbtxt for the variant', async () => {
    const { modelDir, modelFile } = await writeModelRepository({
      repository: dir,
      name: 'gpt2-next',
      config: tiny,
      weights: { kind: 'random', seed: 3 },
      variant: 'next-token',
      instanceKind: 'cpu',
      maxBatchSize: 4,
    });
    assert.equal(modelDir, join(dir, 'gpt2-next'));
    assert.equal(modelFile, join(dir, 'gpt2-next', '1', 'model.onnx'));
    assert.deepEqual((await readdir(modelDir)).sort(), ['1', 'config.pbtxt']);
    assert.deepEqual(await readdir(join(modelDir, '1')), ['model.onnx']);
    assert.equal(
      await readFile(join(modelDir, 'config.pbtxt'), 'utf8'),
      `name: "gpt2-next"
platform: "onnxruntime_onnx"
max_batch_size: 4
input [
  {
    name: "input_ids"
    data_type: TYPE_INT64
    dims: [ -1 ]
  },
  {
    name: "attention_mask"
    data_type: TYPE_INT64
    dims: [ -1 ]
  }
]
output [
  {
    name: "next_token"
    data_type: TYPE_INT64
    dims: [ 1 ]
  },
  {
    name: "logprob"
    data_type: TYPE_FP32
    dims: [ 1 ]
  }
]
dynamic_batching {
  max_queue_delay_microseconds: 500
  default_queue_policy {
    max_queue_size: 128
  }
}
instance_group [
  {
    kind: KIND_CPU
    count: 1
  }
]
parameters {
  key: "gpt2.variant"
  value: { string_value: "next-token" }
}
parameters {
  key: "gpt2.graph"
  value: { string_value: "standard" }
}
parameters {
  key: "gpt2.weights_dtype"
  value: { string_value: "float32" }
}
parameters {
  key: "gpt2.graph_version"
  value: { string_value: "${GRAPH_VERSION}" }
}
`,
    );
    // The config's [-1] + dims equals the file's shapes: Triton reports the same metadata.
    const meta = await readModelMetadata(modelFile, 'gpt2-next');
    assert.deepEqual(
      meta.outputs.map((o) => o.shape),
      [
        [-1, 1],
        [-1, 1],
      ],
    );
  });

  test('rejects a model name Triton could not serve', async () => {
    await assert.rejects(
      writeModelRepository({
        repository: dir,
        name: '../escape',
        config: tiny,
        weights: { kind: 'random', seed: 3 },
        variant: 'last',
      }),
      { message: `model name "../escape" must be letters, digits, '.', '_' or '-'` },
    );
  });
});

describe('configPbtxt', () => {
  const base = { name: 'm', config: tiny, seedSignature: false, instanceKind: 'gpu' as const };

  test('kv: sequence batching with implicit state for every layer, a one-position zero initial state and a 60 s idle timeout', () => {
    const text = configPbtxt({ ...base, variant: 'kv', maxBatchSize: 1 });
    assert.match(text, /^max_batch_size: 1$/m);
    assert.match(text, /name: "position_ids"\n {4}data_type: TYPE_INT64\n {4}dims: \[ -1 \]/);
    assert.match(
      text,
      /output \[\n {2}\{\n {4}name: "logits"\n {4}data_type: TYPE_FP32\n {4}dims: \[ 1, 50257 \]\n {2}\},\n {2}\{\n {4}name: "next_token"\n {4}data_type: TYPE_INT64\n {4}dims: \[ 1 \]\n {2}\},\n {2}\{\n {4}name: "logprob"\n {4}data_type: TYPE_FP32\n {4}dims: \[ 1 \]\n {2}\}\n\]/,
    );
    assert.match(text, /max_sequence_idle_microseconds: 60000000/);
    assert.doesNotMatch(text, /dynamic_batching/);
    assert.match(text, /kind: KIND_GPU/);
    const states = [
      ...text.matchAll(
        /input_name: "([^"]+)"\n\s+output_name: "([^"]+)"\n\s+data_type: TYPE_FP32\n\s+dims: \[ 4, -1, 8 \]\n\s+initial_state: \{\n\s+data_type: TYPE_FP32\n\s+dims: \[ 4, 1, 8 \]\n\s+zero_data: true/g,
      ),
    ];
    assert.deepEqual(
      states.map((m) => [m[1], m[2]]),
      [
        ['past_key_values.0.key', 'present.0.key'],
        ['past_key_values.0.value', 'present.0.value'],
        ['past_key_values.1.key', 'present.1.key'],
        ['past_key_values.1.value', 'present.1.value'],
      ],
    );
  });

  test('kv logits: the fixed 1 the graph declares for the last position; every position with fullLogits', () => {
    const logitsDims = (fullLogits: boolean) =>
      /name: "logits"\n {4}data_type: TYPE_FP32\n {4}dims: \[ ([^\]]+) \]/.exec(
        configPbtxt({ ...base, variant: 'kv', maxBatchSize: 1, fullLogits }),
      )?.[1];
    assert.equal(logitsDims(false), '1, 50257');
    assert.equal(logitsDims(true), '-1, 50257');
    // The greedy outputs are those of the last position: not in a --full-logits build.
    assert.doesNotMatch(
      configPbtxt({ ...base, variant: 'kv', maxBatchSize: 1, fullLogits: true }),
      /next_token/,
    );
  });

  test('seed signature: no batching, the notebook’s names and shapes', () => {
    const text = configPbtxt({
      ...base,
      config: NAMED_CONFIGS.gpt2,
      variant: 'logits',
      seedSignature: true,
      maxBatchSize: 8,
    });
    assert.match(text, /^max_batch_size: 0$/m);
    assert.match(text, /name: "input_ids:0"\n {4}data_type: TYPE_INT32\n {4}dims: \[ -1, -1 \]/);
    assert.match(
      text,
      /name: "past_key_values"\n {4}data_type: TYPE_FP32\n {4}dims: \[ 12, 2, -1, 12, -1, 64 \]/,
    );
    assert.match(text, /name: "logits"\n {4}data_type: TYPE_FP32\n {4}dims: \[ -1, -1, 50257 \]/);
    assert.doesNotMatch(text, /dynamic_batching|sequence_batching/);
  });

  test('logits and last: batch dim implicit, per-row dims only', () => {
    assert.match(
      configPbtxt({ ...base, variant: 'logits', maxBatchSize: 8 }),
      /name: "logits"\n {4}data_type: TYPE_FP32\n {4}dims: \[ -1, 50257 \]/,
    );
    assert.match(
      configPbtxt({ ...base, variant: 'last', maxBatchSize: 8 }),
      /name: "last_logits"\n {4}data_type: TYPE_FP32\n {4}dims: \[ 50257 \]/,
    );
    assert.throws(
      () => configPbtxt({ ...base, variant: 'last', maxBatchSize: 0 }),
      /max batch size must be >= 1 \(got 0\)/,
    );
  });
});
