import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildOnnxModel } from '../../src/model/build.js';
import { NAMED_CONFIGS } from '../../src/model/configs.js';
import { readModelMetadata, readModelSummary } from '../../src/model/metadata.js';
import { writeModelRepository } from '../../src/model/model-repository.js';

test('external data: the same model with its weights in <file>_data, also in Triton’s directory layout', async () => {
  // Automatic above protobuf's 2 GB limit (gpt2-large, gpt2-xl); forced here on the tiny config.
  const dir = await mkdtemp(join(tmpdir(), 'gpt2-build-'));
  try {
    const base = {
      config: NAMED_CONFIGS.tiny,
      weights: { kind: 'random' as const, seed: 4 },
      variant: 'last' as const,
    };
    const inline = join(dir, 'inline.onnx');
    const external = join(dir, 'ext', 'model.onnx');
    const a = await buildOnnxModel(base, inline);
    const b = await buildOnnxModel({ ...base, externalData: true }, external);
    assert.equal(a.dataFile, undefined);
    assert.equal(b.dataFile, `${external}_data`);
    assert.deepEqual((await readdir(join(dir, 'ext'))).sort(), ['model.onnx', 'model.onnx_data']);
    assert.ok((await stat(external)).size < 100_000, 'the model file holds no weights');
    assert.equal((await stat(`${external}_data`)).size, 1_666_464 * 4);
    const run = async (file: string) => {
      const s = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
      const out = await s.run({
        input_ids: new ort.Tensor('int64', BigInt64Array.from([5n, 6n, 7n]), [1, 3]),
        attention_mask: new ort.Tensor('int64', BigInt64Array.from([1n, 1n, 1n]), [1, 3]),
      });
      await s.release();
      return out.last_logits!.data as Float32Array;
    };
    assert.deepEqual(await run(external), await run(inline));
    assert.deepEqual(await readModelMetadata(external, 'm'), await readModelMetadata(inline, 'm'));
    assert.equal((await readModelSummary(external, 'm')).parameters, 1_666_464);

    const { modelFile } = await writeModelRepository({
      ...base,
      externalData: true,
      repository: join(dir, 'repo'),
      name: 'big',
    });
    assert.equal(modelFile, join(dir, 'repo', 'big', '1', 'model.onnx', 'model.onnx'));
    assert.deepEqual((await readdir(join(dir, 'repo', 'big', '1', 'model.onnx'))).sort(), [
      'model.onnx',
      'model.onnx_data',
    ]);
    assert.deepEqual(await run(modelFile), await run(inline));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the output directory is created; a build whose weights cannot be opened writes nothing', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gpt2-build-'));
  try {
    const out = join(dir, 'a', 'b', 'm.onnx');
    const r = await buildOnnxModel(
      { config: NAMED_CONFIGS.tiny, weights: { kind: 'random', seed: 1 }, variant: 'last' },
      out,
    );
    assert.equal(r.file, out);
    assert.deepEqual(await readdir(join(dir, 'a', 'b')), ['m.onnx']);
    await assert.rejects(
      buildOnnxModel(
        {
          config: NAMED_CONFIGS.tiny,
          weights: { kind: 'safetensors', file: join(dir, 'nope.safetensors') },
          variant: 'last',
        },
        join(dir, 'x.onnx'),
      ),
      /cannot open weights .*nope\.safetensors: ENOENT/,
    );
    assert.deepEqual((await readdir(dir)).sort(), ['a']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
