import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildOnnxModel } from '../../src/model/build.js';
import { NAMED_CONFIGS, parseHfConfig, toHfConfig } from '../../src/model/configs.js';
import { RandomWeights } from '../../src/model/random-weights.js';
import { openSafetensorsWeights } from '../../src/model/safetensors.js';
import { weightSpecs } from '../../src/model/weights.js';
import { maxAbsDiff, referenceLogits } from './gpt2-reference.js';
import { fromHalf, toHalf, writeGpt2Checkpoint, writeSafetensors } from './safetensors-fixture.js';

const config = NAMED_CONFIGS.tiny;
const SEED = 99;
const STD = 0.2;
const specs = weightSpecs(config);
const shapes = new Map(specs.map((s) => [s.name, s.shape]));
const provider = new RandomWeights(SEED, STD);
const weights = new Map(specs.map((s) => [s.name, provider.tensor(s)]));
const TOKENS = [464, 2068, 7586, 21831];

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gpt2-st-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function logitsOf(file: string): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
  try {
    const dims = [1, TOKENS.length];
    const out = await s.run({
      input_ids: new ort.Tensor('int64', BigInt64Array.from(TOKENS.map(BigInt)), dims),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(TOKENS.length).fill(1n), dims),
    });
    return out.last_logits!.data as Float32Array;
  } finally {
    await s.release();
  }
}

describe('building from Hugging Face safetensors', () => {
  test('F32 with transformer. prefix, attn buffers and lm_head: same model as the weights it holds', async () => {
    const st = join(dir, 'f32.safetensors');
    await writeGpt2Checkpoint(st, config, weights, shapes, {
      prefix: true,
      dtype: 'F32',
      buffers: true,
      lmHead: true,
    });
    const fromFile = join(dir, 'f32.onnx');
    await buildOnnxModel(
      { config, weights: { kind: 'safetensors', file: st }, variant: 'last' },
      fromFile,
    );
    const direct = join(dir, 'direct.onnx');
    await buildOnnxModel(
      { config, weights: { kind: 'random', seed: SEED, std: STD }, variant: 'last' },
      direct,
    );
    const a = await logitsOf(fromFile);
    assert.deepEqual(a, await logitsOf(direct));
    const ref = referenceLogits(config, weights, TOKENS);
    assert.ok(maxAbsDiff(ref[TOKENS.length - 1]!, a) < 1e-4);
  });

  test('F16 without prefix and without buffers, config from an HF config.json', async () => {
    const st = join(dir, 'f16.safetensors');
    await writeGpt2Checkpoint(st, config, weights, shapes, {
      prefix: false,
      dtype: 'F16',
      buffers: false,
      lmHead: false,
    });
    const hfConfig = parseHfConfig(JSON.parse(JSON.stringify(toHfConfig(config))));
    assert.deepEqual(hfConfig, config);
    const file = join(dir, 'f16.onnx');
    await buildOnnxModel(
      { config: hfConfig, weights: { kind: 'safetensors', file: st }, variant: 'last' },
      file,
    );
    const halved = new Map(
      [...weights].map(([k, v]) => [k, Float32Array.from(v, (x) => fromHalf(toHalf(x)))]),
    );
    const ref = referenceLogits(config, halved, TOKENS);
    const got = await logitsOf(file);
    assert.ok(maxAbsDiff(ref[TOKENS.length - 1]!, got) < 1e-4);
    // And the rounding is real: the F32 weights give measurably different logits.
    assert.ok(maxAbsDiff(referenceLogits(config, weights, TOKENS)[TOKENS.length - 1]!, got) > 1e-4);
  });

  test('half-precision decoding covers subnormals, signs and rounding', () => {
    assert.equal(fromHalf(toHalf(1)), 1);
    assert.equal(fromHalf(toHalf(-2.5)), -2.5);
    assert.equal(fromHalf(toHalf(2 ** -20)), 2 ** -20);
    assert.equal(toHalf(1 + 2 ** -11), 0x3c00); // tie → even
    assert.equal(toHalf(1 + 3 * 2 ** -11), 0x3c02);
  });
});

describe('malformed checkpoints get one clear line naming the problem', () => {
  const good = async (name: string): Promise<string> => {
    const file = join(dir, name);
    await writeGpt2Checkpoint(file, config, weights, shapes, {
      prefix: true,
      dtype: 'F32',
      buffers: true,
      lmHead: false,
    });
    return file;
  };
  const open = (file: string) => openSafetensorsWeights(file, config);

  test('truncated download', async () => {
    const file = await good('trunc.safetensors');
    const { length } = await readFile(file);
    await truncate(file, length - 100);
    await assert.rejects(
      open(file),
      /trunc\.safetensors: tensor transformer\.wte\.weight: data ends at byte \d+ but the file has \d+ bytes \(truncated download\?\)$/,
    );
    await truncate(file, 4);
    await assert.rejects(open(file), /not a safetensors file \(4 bytes, too short\)$/);
  });

  test('bad JSON header', async () => {
    const file = join(dir, 'badjson.safetensors');
    const head = Buffer.alloc(8);
    head.writeBigUInt64LE(5n);
    await writeFile(file, Buffer.concat([head, Buffer.from('{"a":')]));
    await assert.rejects(open(file), /badjson\.safetensors: bad safetensors JSON header \(/);
  });

  test('missing tensor and wrong shape', async () => {
    const partial = join(dir, 'missing.safetensors');
    const without = new Map(weights);
    without.delete('h.1.mlp.c_fc.bias');
    await writeGpt2Checkpoint(partial, config, without, shapes, {
      prefix: true,
      dtype: 'F32',
      buffers: false,
      lmHead: false,
    });
    await assert.rejects(open(partial), {
      message: `${partial}: missing tensor h.1.mlp.c_fc.bias (expected shape [128])`,
    });
    const wrong = join(dir, 'wrong.safetensors');
    const wrongShapes = new Map(shapes);
    wrongShapes.set('h.0.attn.c_attn.weight', [96, 32]); // transposed (a Linear, not a Conv1D)
    await writeGpt2Checkpoint(wrong, config, weights, wrongShapes, {
      prefix: false,
      dtype: 'F32',
      buffers: false,
      lmHead: false,
    });
    await assert.rejects(open(wrong), {
      message: `${wrong}: tensor h.0.attn.c_attn.weight has shape [96, 32], expected [32, 96] (does config.json match the weights?)`,
    });
  });

  test('a deeper checkpoint than config.json says', async () => {
    const file = join(dir, 'deeper.safetensors');
    const more = new Map(weights);
    more.set('h.2.ln_1.weight', new Float32Array(32));
    const moreShapes = new Map(shapes);
    moreShapes.set('h.2.ln_1.weight', [32]);
    await writeGpt2Checkpoint(file, config, more, moreShapes, {
      prefix: false,
      dtype: 'F32',
      buffers: false,
      lmHead: false,
    });
    await assert.rejects(
      open(file),
      /unexpected tensors for a 2-layer GPT-2: h\.2\.ln_1\.weight \(does config\.json match the weights\?\)$/,
    );
  });

  test('unsupported dtype and inconsistent byte ranges', async () => {
    const file = join(dir, 'i8.safetensors');
    await writeSafetensors(
      file,
      [...weights].map(([name, data]) =>
        name === 'ln_f.bias'
          ? { name, dtype: 'I8', shape: [32], data: new Uint8Array(32) }
          : {
              name,
              dtype: 'F32',
              shape: [...shapes.get(name)!],
              data: new Uint8Array(data.buffer),
            },
      ),
    );
    await assert.rejects(
      open(file),
      /tensor ln_f\.bias has dtype I8; supported: F32, F16, BF16, F64$/,
    );
    const bad = join(dir, 'range.safetensors');
    await writeSafetensors(bad, [
      { name: 'wte.weight', dtype: 'F32', shape: [3], data: new Uint8Array(8) },
    ]);
    await assert.rejects(
      openSafetensorsWeights(bad, config),
      /tensor wte\.weight: holds 8 bytes, but F32 \[3\] needs 12$/,
    );
  });
});

describe('parseHfConfig', () => {
  test('the real gpt2 config.json', () => {
    const real = {
      activation_function: 'gelu_new',
      architectures: ['GPT2LMHeadModel'],
      attn_pdrop: 0.1,
      bos_token_id: 50256,
      embd_pdrop: 0.1,
      eos_token_id: 50256,
      initializer_range: 0.02,
      layer_norm_epsilon: 1e-5,
      model_type: 'gpt2',
      n_ctx: 1024,
      n_embd: 768,
      n_head: 12,
      n_layer: 12,
      n_positions: 1024,
      vocab_size: 50257,
    };
    assert.deepEqual(parseHfConfig(real), NAMED_CONFIGS.gpt2);
  });

  test('every problem listed at once', () => {
    assert.throws(
      () =>
        parseHfConfig({ model_type: 'llama', n_layer: 0, n_head: 5, n_embd: 768, vocab_size: 'x' }),
      {
        message:
          'invalid GPT-2 config.json: "model_type" is "llama", expected "gpt2"; "n_layer" must be a positive integer (got 0); "n_positions" must be a positive integer (got nothing); "vocab_size" must be a positive integer (got "x"); "n_embd" (768) must be divisible by "n_head" (5)',
      },
    );
    assert.throws(() => parseHfConfig([]), { message: 'config.json must be a JSON object' });
  });
});
