import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import {
  compareReleases,
  DEFAULT_TRITON_RELEASE,
  explainIncompatibility,
  firstReleaseFor,
  incompatibility,
  modelFactsFromProperties,
  parseRelease,
  releaseInfo,
  releaseOfServer,
  TRITON_RELEASES,
} from '../../src/model/triton-releases.js';

describe('Triton releases', () => {
  test('parseRelease takes a release, an image tag or an image reference', () => {
    assert.equal(parseRelease('24.01'), '24.01');
    assert.equal(parseRelease('24.01-py3'), '24.01');
    assert.equal(parseRelease('nvcr.io/nvidia/tritonserver:25.05-py3-igpu'), '25.05');
    for (const bad of ['24.1', '24.13', 'latest', '2.42.0', '']) {
      assert.throws(() => parseRelease(bad), /is not a Triton release \(YY\.MM, e\.g\. 24\.01\)/);
    }
  });

  test('the table is monthly: one server minor version and never an older onnxruntime per month', () => {
    const version = (v: string) => v.split('.').map(Number);
    TRITON_RELEASES.slice(1).forEach((r, i) => {
      const prev = TRITON_RELEASES[i]!;
      assert.ok(compareReleases(r.release, prev.release) > 0, r.release);
      assert.equal(version(r.server)[1], version(prev.server)[1]! + 1, r.release);
      const [a, b] = [version(r.onnxruntime), version(prev.onnxruntime)];
      assert.ok(a[0]! * 1e6 + a[1]! * 1e3 + a[2]! >= b[0]! * 1e6 + b[1]! * 1e3 + b[2]!, r.release);
    });
  });

  test('GET /v2 server versions map to container releases, beyond the table too', () => {
    assert.equal(releaseOfServer('2.42.0'), '24.01');
    assert.equal(releaseOfServer('2.13.0'), '21.08');
    assert.equal(releaseOfServer('2.58.0'), '25.05');
    assert.equal(releaseOfServer('2.60.0'), '25.07');
    assert.equal(releaseOfServer('2.65.1'), '25.12');
    assert.equal(releaseOfServer('2.66.0'), '26.01');
    assert.equal(releaseOfServer('2.12.0'), undefined);
    assert.equal(releaseOfServer('1.14.0'), undefined);
    assert.equal(releaseOfServer('unknown'), undefined);
  });

  test('releaseInfo: known rows, newer releases take the newest runtime, older ones are unknown', () => {
    assert.deepEqual(releaseInfo('24.01-py3'), {
      release: '24.01',
      server: '2.42.0',
      onnxruntime: '1.16.3',
    });
    assert.equal(releaseInfo('26.03')?.onnxruntime, '>= 1.22.0');
    assert.equal(releaseInfo('21.07'), undefined);
  });

  test('the first release for each option', () => {
    assert.equal(firstReleaseFor({ variant: 'next-token' }).release, '21.08');
    assert.equal(firstReleaseFor({ variant: 'kv' }).release, '22.01');
    assert.equal(firstReleaseFor({ variant: 'last', fused: true }).release, '23.05');
    assert.equal(firstReleaseFor({ variant: 'kv', fused: true }).release, '23.05');
    assert.equal(firstReleaseFor({ variant: 'logits', quantize: 'int8' }).release, '25.05');
    assert.equal(
      firstReleaseFor({ variant: 'kv', fused: true, quantize: 'int8' }).release,
      '25.05',
    );
  });

  test('incompatibility names every missing capability and the first release that has them all', () => {
    assert.equal(incompatibility('24.01', { variant: 'kv' }), undefined);
    assert.equal(incompatibility('25.05', { variant: 'kv', quantize: 'int8' }), undefined);
    assert.equal(incompatibility('26.02', { variant: 'kv', quantize: 'int8' }), undefined);
    assert.equal(
      incompatibility('24.01', { variant: 'next-token', quantize: 'int8' }),
      'Triton 24.01 (onnxruntime 1.16.3) cannot load a next-token model with --quantize int8: --quantize int8 needs onnxruntime 1.22 (8-bit MatMulNBits); use Triton 25.05 or later',
    );
    assert.equal(
      incompatibility('21.08', { variant: 'kv', fused: true }),
      "Triton 21.08 (onnxruntime 1.8.1) cannot load a kv model with --fused: a kv model's implicit state needs initial_state; --fused needs onnxruntime 1.15 (MultiHeadAttention); use Triton 23.05 or later",
    );
    assert.match(
      incompatibility('20.12', { variant: 'logits' }) ?? '',
      /^Triton 20\.12 \(an unknown onnxruntime\) cannot load a logits model: releases before 21\.08 are unknown to this builder; use Triton 21\.08 or later$/,
    );
  });

  test('explainIncompatibility reads GET /v2’s server version (for the Triton backend at start-up)', () => {
    assert.equal(
      explainIncompatibility('2.42.0', { variant: 'kv', quantize: 'int8' }),
      'Triton server 2.42.0 (release 24.01, onnxruntime 1.16.3) cannot load a kv model with --quantize int8: --quantize int8 needs onnxruntime 1.22 (8-bit MatMulNBits); use Triton 25.05 or later',
    );
    assert.match(
      explainIncompatibility('2.13.0', { variant: 'kv' }) ?? '',
      /release 21\.08, onnxruntime 1\.8\.1\) cannot load a kv model: .*use Triton 22\.01 or later$/,
    );
    assert.equal(explainIncompatibility('2.58.0', { variant: 'kv', quantize: 'int8' }), undefined);
    assert.equal(explainIncompatibility('2.42.0', { variant: 'kv' }), undefined);
    // A version we cannot place claims nothing.
    assert.equal(explainIncompatibility('custom-build', { variant: 'kv', fused: true }), undefined);
  });

  test('model facts from the gpt2.* metadata model build writes', () => {
    assert.deepEqual(
      modelFactsFromProperties({
        'gpt2.variant': 'kv',
        'gpt2.graph': 'fused',
        'gpt2.weights_dtype': 'int8',
      }),
      { variant: 'kv', fused: true, quantize: 'int8' },
    );
    assert.deepEqual(
      modelFactsFromProperties({
        'gpt2.variant': 'last',
        'gpt2.graph': 'standard',
        'gpt2.weights_dtype': 'float32',
      }),
      { variant: 'last', fused: false },
    );
    assert.equal(modelFactsFromProperties({ producer: 'optimum' }), undefined);
  });

  test('the default release is the chart’s default Triton image', async () => {
    const values = parse(await readFile('chart/values.yaml', 'utf8')) as {
      seldon: { triton: { image: string } };
    };
    assert.equal(parseRelease(values.seldon.triton.image), DEFAULT_TRITON_RELEASE);
  });
});
