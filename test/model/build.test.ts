import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildOnnxModel } from '../../src/model/build.js';
import { NAMED_CONFIGS } from '../../src/model/configs.js';

test('a model over protobuf’s 2 GB single-file limit is refused before anything is written', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gpt2-build-'));
  try {
    // gpt2-large's shape: 774M parameters, 3.1 GB of float32.
    const large = { ...NAMED_CONFIGS.gpt2, nLayer: 36, nHead: 20, nEmbd: 1280 };
    await assert.rejects(
      buildOnnxModel(
        { config: large, weights: { kind: 'random', seed: 0 }, variant: 'kv' },
        join(dir, 'm.onnx'),
      ),
      {
        message:
          'the model would be 3.10 GB, over protobuf’s 2 GB limit for one ONNX file (external data is not supported yet; gpt2, distilgpt2 and gpt2-medium fit)',
      },
    );
    assert.deepEqual(await readdir(dir), []);
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
