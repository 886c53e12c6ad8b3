import assert from 'node:assert/strict';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ModelVariant } from '../../src/contract/model.js';
import { understandSignature } from '../../src/contract/signature.js';
import { buildOnnxModel } from '../../src/model/build.js';
import { NAMED_CONFIGS } from '../../src/model/configs.js';
import { buildGpt2Graph, IR_VERSION, OPSET_VERSION } from '../../src/model/gpt2-graph.js';
import {
  type ModelMetadata,
  readModelMetadata,
  readModelSummary,
} from '../../src/model/metadata.js';
import { modelProto } from '../../src/model/onnx-proto.js';
import { writeMessageToFile } from '../../src/model/protobuf.js';
import { parameterCount } from '../../src/model/weights.js';

const tiny = NAMED_CONFIGS.tiny;
/**
 * The notebook's model as Triton describes it (Seldon's examples/triton_gpt2; see
 * docs/triton-notes.md, 'Model metadata and config endpoints').
 */
const NOTEBOOK_METADATA = JSON.parse(
  '{"name":"gpt2","versions":["1"],"platform":"onnxruntime_onnx","inputs":[{"name":"input_ids:0","datatype":"INT32","shape":[-1,-1]},{"name":"attention_mask:0","datatype":"INT32","shape":[-1,-1]}],"outputs":[{"name":"past_key_values","datatype":"FP32","shape":[12,2,-1,12,-1,64]},{"name":"logits","datatype":"FP32","shape":[-1,-1,50257]}]}',
) as ModelMetadata;

let dir: string;
const files = new Map<string, string>();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gpt2-meta-'));
  for (const variant of ['logits', 'last', 'next-token', 'kv'] as ModelVariant[]) {
    const file = join(dir, `${variant}.onnx`);
    await buildOnnxModel({ config: tiny, weights: { kind: 'random', seed: 1 }, variant }, file);
    files.set(variant, file);
  }
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ids = (name = 'input_ids') => ({ name, datatype: 'INT64', shape: [-1, -1] });

describe('readModelMetadata', () => {
  test('logits, last and next-token report what Triton would', async () => {
    const inputs = [ids(), ids('attention_mask')];
    assert.deepEqual(await readModelMetadata(files.get('logits')!, 'gpt2'), {
      name: 'gpt2',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs,
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, -1, 50257] }],
    });
    assert.deepEqual((await readModelMetadata(files.get('last')!, 'm')).outputs, [
      { name: 'last_logits', datatype: 'FP32', shape: [-1, 50257] },
    ]);
    const nt = await readModelMetadata(files.get('next-token')!, 'm');
    assert.deepEqual(nt.inputs, inputs);
    assert.deepEqual(nt.outputs, [
      { name: 'next_token', datatype: 'INT64', shape: [-1, 1] },
      { name: 'logprob', datatype: 'FP32', shape: [-1, 1] },
    ]);
  });

  test('kv lists position_ids and the Optimum past/present names', async () => {
    const meta = await readModelMetadata(files.get('kv')!, 'm');
    const past = (i: number, kind: string) => ({
      name: `past_key_values.${i}.${kind}`,
      datatype: 'FP32',
      shape: [-1, 4, -1, 8],
    });
    assert.deepEqual(meta.inputs, [
      ids(),
      ids('attention_mask'),
      ids('position_ids'),
      past(0, 'key'),
      past(0, 'value'),
      past(1, 'key'),
      past(1, 'value'),
    ]);
    assert.deepEqual(
      meta.outputs.map((o) => o.name),
      [
        'logits',
        'next_token',
        'logprob',
        'present.0.key',
        'present.0.value',
        'present.1.key',
        'present.1.value',
      ],
    );
  });

  test('the summary counts the weights once (tied LM head) and skips scalar constants', async () => {
    const s = await readModelSummary(files.get('next-token')!, 'm');
    assert.equal(s.parameters, parameterCount(tiny));
    assert.equal(s.parameters, 1_666_464);
    assert.deepEqual(s.opsets, [{ domain: '', version: OPSET_VERSION }]);
    assert.equal(s.irVersion, IR_VERSION);
    assert.equal(s.properties['gpt2.variant'], 'next-token');
  });

  test('the gpt2 seed signature reproduces the notebook’s recorded metadata exactly', async () => {
    // Weights are zeros here: metadata does not depend on them, and random gpt2 weights take
    // seconds to generate (measured by bench:build instead).
    const file = join(dir, 'seed-gpt2.onnx');
    const zeros = new Uint8Array(1 << 24);
    const graph = buildGpt2Graph({
      config: NAMED_CONFIGS.gpt2,
      variant: 'logits',
      seedSignature: true,
      weightProducer: (spec) => async (emit) => {
        let left = spec.shape.reduce((a, b) => a * b, 1) * 4;
        while (left > 0) {
          const n = Math.min(left, zeros.length);
          await emit(zeros.subarray(0, n));
          left -= n;
        }
      },
    });
    const fh = await open(file, 'w');
    await writeMessageToFile(
      modelProto({
        irVersion: IR_VERSION,
        opsets: [{ domain: '', version: OPSET_VERSION }],
        producerName: 't',
        producerVersion: '0',
        graph,
        metadata: {},
      }),
      fh,
    );
    await fh.close();
    const summary = await readModelSummary(file, 'gpt2');
    await rm(file);
    assert.deepEqual(summary.metadata, NOTEBOOK_METADATA);
    assert.equal(summary.parameters, 124_439_808);
  });

  test('a file that is not ONNX gets a clear error', async () => {
    const file = join(dir, 'junk.onnx');
    await writeFile(file, 'hello, this is not protobuf at all');
    await assert.rejects(
      readModelMetadata(file, 'm'),
      /junk\.onnx: not (a readable ONNX model|an ONNX model)/,
    );
    await assert.rejects(
      readModelMetadata(join(dir, 'missing.onnx'), 'm'),
      /cannot open model .*missing\.onnx: ENOENT/,
    );
  });
});

describe('understandSignature', () => {
  test('each built variant', async () => {
    const logits = understandSignature(await readModelMetadata(files.get('logits')!, 'm'));
    assert.deepEqual(logits, {
      variant: 'logits',
      inputIds: { name: 'input_ids', datatype: 'INT64' },
      attentionMask: { name: 'attention_mask', datatype: 'INT64' },
      batchDimension: true,
      outputs: { logits: { name: 'logits', datatype: 'FP32' } },
      seedPastKeyValues: false,
      vocabSize: 50257,
    });
    const last = understandSignature(await readModelMetadata(files.get('last')!, 'm'));
    assert.equal(last.variant, 'last');
    assert.deepEqual(last.outputs, { lastLogits: { name: 'last_logits', datatype: 'FP32' } });
    const nt = understandSignature(await readModelMetadata(files.get('next-token')!, 'm'));
    assert.equal(nt.variant, 'next-token');
    assert.equal(nt.vocabSize, undefined);
    assert.deepEqual(nt.outputs, {
      nextToken: { name: 'next_token', datatype: 'INT64' },
      logprob: { name: 'logprob', datatype: 'FP32' },
    });
    const kvMeta = await readModelMetadata(files.get('kv')!, 'm');
    const kv = understandSignature(kvMeta);
    assert.equal(kv.variant, 'kv');
    assert.deepEqual(kv.outputs, {
      logits: { name: 'logits', datatype: 'FP32' },
      greedy: {
        nextToken: { name: 'next_token', datatype: 'INT64' },
        logprob: { name: 'logprob', datatype: 'FP32' },
      },
    });
    // An Optimum export has logits alone: a kv model all the same, read through its logits.
    const optimum = understandSignature({
      ...kvMeta,
      outputs: kvMeta.outputs.filter((o) => o.name !== 'next_token' && o.name !== 'logprob'),
    });
    assert.deepEqual(optimum.outputs, { logits: { name: 'logits', datatype: 'FP32' } });
    assert.deepEqual(kv.positionIds, { name: 'position_ids', datatype: 'INT64' });
    assert.deepEqual(kv.kv, {
      implicitState: false,
      nLayer: 2,
      nHead: 4,
      headDim: 8,
      layers: [0, 1].map((i) => ({
        pastKey: `past_key_values.${i}.key`,
        pastValue: `past_key_values.${i}.value`,
        presentKey: `present.${i}.key`,
        presentValue: `present.${i}.value`,
      })),
    });
  });

  test('the notebook’s model, with outputs in either order', () => {
    for (const outputs of [NOTEBOOK_METADATA.outputs, [...NOTEBOOK_METADATA.outputs].reverse()]) {
      const sig = understandSignature({ ...NOTEBOOK_METADATA, outputs });
      assert.deepEqual(sig, {
        variant: 'logits',
        inputIds: { name: 'input_ids:0', datatype: 'INT32' },
        attentionMask: { name: 'attention_mask:0', datatype: 'INT32' },
        batchDimension: false,
        outputs: {
          logits: { name: 'logits', datatype: 'FP32' },
          pastKeyValues: { name: 'past_key_values', datatype: 'FP32' },
        },
        seedPastKeyValues: true,
        vocabSize: 50257,
      });
    }
  });

  test('a kv model behind Triton implicit state (states hidden from metadata)', () => {
    const sig = understandSignature({
      name: 'gpt2-kv',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [ids(), ids('attention_mask'), ids('position_ids')],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, -1, 50257] }],
    });
    assert.equal(sig.variant, 'kv');
    assert.deepEqual(sig.kv, { implicitState: true, nLayer: 0, nHead: 0, headDim: 0, layers: [] });
  });

  test('models it cannot drive are refused with what is missing', () => {
    const base = { name: 'x', versions: ['1'], platform: 'onnxruntime_onnx' };
    assert.throws(() => understandSignature({ ...base, inputs: [ids('tokens')], outputs: [] }), {
      message:
        'cannot drive model x (inputs: tokens INT64 [-1,-1]; outputs: (none)): no input named input_ids',
    });
    assert.throws(
      () =>
        understandSignature({
          ...base,
          inputs: [ids(), ids('attention_mask')],
          outputs: [{ name: 'probs', datatype: 'FP32', shape: [-1, 5] }],
        }),
      /no output named logits, last_logits or next_token$/,
    );
    assert.throws(
      () =>
        understandSignature({
          ...base,
          inputs: [{ name: 'input_ids', datatype: 'FP32', shape: [-1, -1] }, ids('attention_mask')],
          outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, -1, 7] }],
        }),
      /input_ids must be INT32 or INT64, not FP32$/,
    );
    assert.throws(
      () =>
        understandSignature({
          ...base,
          inputs: [ids(), ids('attention_mask')],
          outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, -1, -1] }],
        }),
      /logits must have a fixed vocabulary size as its last dim$/,
    );
  });
});
