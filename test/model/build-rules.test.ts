import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type BuildFlags, BuildRuleError, planBuild } from '../../src/model/build-rules.js';
import { NAMED_CONFIGS } from '../../src/model/configs.js';

const RANDOM: BuildFlags = { random: true, config: 'tiny' };

function refused(flags: BuildFlags): string {
  try {
    planBuild(flags);
  } catch (err) {
    assert.ok(err instanceof BuildRuleError, String(err));
    return err.message;
  }
  assert.fail(`planBuild accepted ${JSON.stringify(flags)}`);
}

describe('planBuild', () => {
  test('defaults: a next-token repository entry for the chart’s Triton', () => {
    assert.deepEqual(planBuild(RANDOM), {
      weights: { kind: 'random', config: NAMED_CONFIGS.tiny, seed: 0 },
      model: {
        variant: 'next-token',
        seedSignature: false,
        fused: false,
        quantize: undefined,
        fullLogits: false,
      },
      output: {
        kind: 'repository',
        repository: 'models',
        name: 'gpt2',
        instanceKind: 'gpu',
        maxBatchSize: undefined,
        triton: '24.01',
      },
    });
  });

  test('no flag is dropped silently: each one that does not apply is refused, saying why', () => {
    const cases: [BuildFlags, string][] = [
      [{}, 'give exactly one of --weights DIR or --random'],
      [{ random: true, weights: 'w' }, 'give exactly one of --weights DIR or --random'],
      [
        { weights: 'w', seed: '1' },
        '--config and --seed go with --random; --weights reads DIR/config.json',
      ],
      [{ ...RANDOM, seed: '-1' }, "--seed must be an integer >= 0 (got '-1')"],
      [
        { ...RANDOM, variant: 'chat' },
        "--variant must be one of logits, last, next-token, kv (got 'chat')",
      ],
      [{ ...RANDOM, seedSignature: true }, '--seed-signature needs --variant logits'],
      [
        { ...RANDOM, variant: 'logits', seedSignature: true, fused: true },
        '--seed-signature and --fused do not combine',
      ],
      [
        { ...RANDOM, variant: 'logits', seedSignature: true, maxBatchSize: '4' },
        "--max-batch-size does not go with --seed-signature: the notebook's interface has no batch dimension (max_batch_size is 0)",
      ],
      [{ ...RANDOM, quantize: 'int4' }, "--quantize must be int8 (got 'int4')"],
      [
        { ...RANDOM, fullLogits: true },
        '--full-logits needs --variant kv (the logits variant always has them)',
      ],
      [{ ...RANDOM, maxBatchSize: '0' }, "--max-batch-size must be an integer >= 1 (got '0')"],
      [{ ...RANDOM, maxBatchSize: '' }, "--max-batch-size must be an integer >= 1 (got '')"],
      [{ ...RANDOM, instance: 'tpu' }, "--instance must be gpu or cpu (got 'tpu')"],
      [
        { ...RANDOM, out: 'm.onnx', maxBatchSize: '4' },
        '--max-batch-size shapes a model repository entry (config.pbtxt); it does not go with --out',
      ],
      [
        { ...RANDOM, out: 'm.onnx', triton: '24.01' },
        '--triton checks a model repository entry against a Triton release; it does not go with --out',
      ],
      [{ ...RANDOM, layout: 'onnx' }, "--layout must be triton or transformers-js (got 'onnx')"],
      [
        { ...RANDOM, layout: 'transformers-js', variant: 'kv' },
        '--layout transformers-js needs --out DIR',
      ],
      [
        { ...RANDOM, layout: 'transformers-js', out: 'd' },
        '--layout transformers-js needs --variant kv (transformers.js drives past/present)',
      ],
      [
        { ...RANDOM, triton: 'latest' },
        "--triton: 'latest' is not a Triton release (YY.MM, e.g. 24.01)",
      ],
      [
        { ...RANDOM, triton: '20.12' },
        '--triton 20.12 is older than any release this builder knows (21.08 on)',
      ],
    ];
    for (const [flags, message] of cases)
      assert.equal(refused(flags), message, JSON.stringify(flags));
  });

  test('a model the target Triton cannot load is refused, naming the first release that can', () => {
    assert.equal(
      refused({ ...RANDOM, quantize: 'int8' }),
      "Triton 24.01 (onnxruntime 1.16.3) cannot load a next-token model with --quantize int8: --quantize int8 needs onnxruntime 1.22 (8-bit MatMulNBits); use Triton 25.05 or later (--triton defaults to 24.01, the chart's image; pass --triton <release> for the one you run, or --out to write only the .onnx file)",
    );
    assert.equal(
      refused({ ...RANDOM, variant: 'kv', triton: '21.08-py3' }),
      "Triton 21.08 (onnxruntime 1.8.1) cannot load a kv model: a kv model's implicit state needs initial_state; use Triton 22.01 or later",
    );
    assert.match(
      refused({ ...RANDOM, fused: true, triton: '23.04' }),
      /use Triton 23\.05 or later$/,
    );
    assert.equal(planBuild({ ...RANDOM, fused: true, triton: '23.05' }).model.fused, true);
  });

  test('what a target can load is planned for it; --out files are not checked against a Triton', () => {
    const plan = planBuild({ ...RANDOM, variant: 'kv', quantize: 'int8', triton: '25.05' });
    assert.equal(plan.output.kind === 'repository' && plan.output.triton, '25.05');
    assert.deepEqual(planBuild({ ...RANDOM, quantize: 'int8', out: 'm.onnx' }).output, {
      kind: 'file',
      file: 'm.onnx',
    });
    const seed = planBuild({ ...RANDOM, variant: 'logits', seedSignature: true, triton: '21.08' });
    assert.equal(seed.model.seedSignature, true);
    assert.equal(seed.output.kind === 'repository' && seed.output.maxBatchSize, undefined);
  });
});
