import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Tokenizer } from '@huggingface/tokenizers';
import * as ort from 'onnxruntime-node';
import { run } from '../../src/cli/model.js';
import { understandSignature } from '../../src/contract/signature.js';
import { NAMED_CONFIGS, parseHfConfig, toHfConfig } from '../../src/model/configs.js';
import type { ModelMetadata } from '../../src/model/metadata.js';
import { RandomWeights } from '../../src/model/random-weights.js';
import { weightSpecs } from '../../src/model/weights.js';
import { writeGpt2Checkpoint } from '../model/safetensors-fixture.js';

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, env, {
    out: (t) => {
      stdout += t;
    },
    err: (t) => {
      stderr += t;
    },
  });
  return { code, stdout, stderr };
}

/** `model build` of a tiny model with random weights, the model most cases build. */
const buildTiny = (flags: string[]): Promise<Outcome> =>
  cli(['build', '--random', '--config', 'tiny', ...flags]);

const tiny = NAMED_CONFIGS.tiny;
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gpt2-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('gpt2-gateway model', () => {
  test('--help everywhere', async () => {
    for (const argv of [['--help'], ['pull', '--help'], ['build', '-h'], ['inspect', '--help']]) {
      const r = await cli(argv);
      assert.equal(r.code, 0, argv.join(' '));
      assert.match(r.stdout, /^Usage: gpt2-gateway model /);
      assert.equal(r.stderr, '');
    }
    const none = await cli([]);
    assert.equal(none.code, 2);
    assert.match(none.stdout, /Commands:\n {2}pull .*\n {2}build .*\n {2}inspect /);
  });

  test('build --random into a Triton repository, then inspect prints Triton’s metadata and the parameter count', async () => {
    const repo = join(dir, 'models');
    const b = await buildTiny([
      '--seed',
      '5',
      '--variant',
      'last',
      '--repo',
      repo,
      '--name',
      'g',
      '--instance',
      'cpu',
    ]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(
      b.stdout,
      new RegExp(
        `^wrote ${join(repo, 'g', '1', 'model.onnx')} and ${join(repo, 'g', 'config.pbtxt')} \\(checked for Triton 24\\.01\\): variant last, 1,666,464 parameters, 6\\.7 MB, weights random \\(seed 5, std 0\\.02\\), [\\d.]+ s\\n$`,
      ),
    );
    assert.match(await readFile(join(repo, 'g', 'config.pbtxt'), 'utf8'), /kind: KIND_CPU/);
    const j = await cli(['inspect', join(repo, 'g'), '--json']);
    assert.equal(j.code, 0, j.stderr);
    const parsed = JSON.parse(j.stdout) as Record<string, unknown>;
    assert.deepEqual(parsed.metadata, {
      name: 'g',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [
        { name: 'input_ids', datatype: 'INT64', shape: [-1, -1] },
        { name: 'attention_mask', datatype: 'INT64', shape: [-1, -1] },
      ],
      outputs: [{ name: 'last_logits', datatype: 'FP32', shape: [-1, 50257] }],
    });
    assert.equal(parsed.parameters, 1_666_464);
    assert.equal(parsed.understood, 'last');
    const t = await cli(['inspect', join(repo, 'g', '1', 'model.onnx'), '--name', 'gpt2']);
    assert.equal(t.code, 0);
    assert.match(t.stdout, /^variant: {5}last\nparameters: {2}1,666,464\n/m);
    assert.ok(
      t.stdout.includes(
        `Triton GET /v2/models/gpt2:\n${JSON.stringify({ ...(parsed.metadata as object), name: 'gpt2' })}\n`,
      ),
    );
  });

  test('inspect of a kv repository entry shows Triton’s view: states held by the sequence batcher', async () => {
    const repo = join(dir, 'kvrepo');
    const b = await buildTiny(['--variant', 'kv', '--repo', repo, '--name', 'kv']);
    assert.equal(b.code, 0, b.stderr);
    const r = await cli(['inspect', join(repo, 'kv'), '--json']);
    const parsed = JSON.parse(r.stdout) as { metadata: ModelMetadata; fileMetadata: ModelMetadata };
    const ids = (name: string) => ({ name, datatype: 'INT64', shape: [-1, -1] });
    assert.deepEqual(parsed.metadata, {
      name: 'kv',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [ids('input_ids'), ids('attention_mask'), ids('position_ids')],
      outputs: [
        { name: 'logits', datatype: 'FP32', shape: [-1, 1, 50257] },
        { name: 'next_token', datatype: 'INT64', shape: [-1, 1] },
        { name: 'logprob', datatype: 'FP32', shape: [-1, 1] },
      ],
    });
    assert.equal(parsed.fileMetadata.inputs.length, 7);
    assert.equal(understandSignature(parsed.metadata).kv?.implicitState, true);
    const text = await cli(['inspect', join(repo, 'kv')]);
    assert.match(
      text.stdout,
      /Triton GET \/v2\/models\/kv \(implicit state kept by Triton, per config\.pbtxt\):\n/,
    );
  });

  test('inspect names each variant and the seed signature', async () => {
    for (const [variant, extra, expected] of [
      ['logits', [], 'logits'],
      ['logits', ['--seed-signature'], 'logits (seed signature)'],
      ['next-token', [], 'next-token'],
      ['kv', [], 'kv'],
    ] as const) {
      const file = join(dir, `${variant}${extra.length}.onnx`);
      const b = await buildTiny(['--variant', variant, ...extra, '--out', file]);
      assert.equal(b.code, 0, b.stderr);
      const r = await cli(['inspect', file, '--json']);
      assert.equal((JSON.parse(r.stdout) as { understood: string }).understood, expected);
    }
  });

  test('build --weights DIR from a pulled checkpoint (config.json + model.safetensors)', async () => {
    const w = join(dir, 'weights');
    await mkdir(w, { recursive: true });
    const specs = weightSpecs(tiny);
    const rnd = new RandomWeights(1);
    await writeGpt2Checkpoint(
      join(w, 'model.safetensors'),
      tiny,
      new Map(specs.map((s) => [s.name, rnd.tensor(s)])),
      new Map(specs.map((s) => [s.name, s.shape])),
      { prefix: true, dtype: 'F32', buffers: true, lmHead: true },
    );
    await writeFile(join(w, 'config.json'), JSON.stringify(toHfConfig(tiny)));
    const r = await cli(['build', '--weights', w, '--variant', 'kv', '--out', join(dir, 'w.onnx')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /variant kv, 1,666,464 parameters, .* weights safetensors .*model\.safetensors/,
    );

    // Malformed inputs: one line each, naming the problem.
    const full = (await readFile(join(w, 'model.safetensors'))).length;
    await truncate(join(w, 'model.safetensors'), full - 1000);
    const trunc = await cli(['build', '--weights', w, '--out', join(dir, 'x.onnx')]);
    assert.equal(trunc.code, 1);
    assert.match(
      trunc.stderr,
      /^gpt2-gateway model: .*model\.safetensors: tensor [\w.]+: data ends at byte \d+ but the file has \d+ bytes \(truncated download\?\)\n$/,
    );
    await writeFile(join(w, 'config.json'), '{"n_layer": 2,');
    const badJson = await cli(['build', '--weights', w]);
    assert.equal(badJson.code, 1);
    assert.match(badJson.stderr, /^gpt2-gateway model: .*config\.json is not valid JSON \(.*\)\n$/);
    const missing = await cli(['build', '--weights', join(dir, 'nope')]);
    assert.equal(
      missing.stderr,
      `gpt2-gateway model: cannot read ${join(dir, 'nope', 'config.json')}: ENOENT\n`,
    );
  });

  test('usage errors exit 2 with a pointer to --help', async () => {
    const cases: [string[], string][] = [
      [['build'], 'give exactly one of --weights DIR or --random'],
      [
        ['build', '--random', '--config', 'huge'],
        "--config must be one of tiny, gpt2 (got 'huge')",
      ],
      [
        ['build', '--random', '--seed-signature', '--variant', 'kv'],
        '--seed-signature needs --variant logits',
      ],
      [
        ['build', '--random', '--full-logits', '--variant', 'last'],
        '--full-logits needs --variant kv (the logits variant always has them)',
      ],
      [['build', '--random', '--seed', '1.5'], "--seed must be an integer >= 0 (got '1.5')"],
      [['build', '--random', '--frobnicate'], "Unknown option '--frobnicate'"],
      [['inspect'], 'give the model file or model directory to inspect'],
    ];
    for (const [argv, message] of cases) {
      const r = await cli(argv);
      assert.equal(r.code, 2, argv.join(' '));
      assert.ok(r.stderr.startsWith(`gpt2-gateway model: ${message}`), r.stderr);
      assert.match(r.stderr, /\(see 'gpt2-gateway model (build|inspect) --help'\)\n$/);
    }
  });

  test('build --variant kv: logits of the last position by default, every position with --full-logits', async () => {
    const prompt = [464, 2068, 7586];
    const logitsOf = async (extra: string[]): Promise<ort.Tensor> => {
      const file = join(dir, `kv${extra.join('')}.onnx`);
      const r = await buildTiny(['--variant', 'kv', '--out', file, ...extra]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, extra.length > 0 ? /variant kv \(full logits\),/ : /variant kv,/);
      const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
      try {
        const i64 = (v: number[]) =>
          new ort.Tensor('int64', BigInt64Array.from(v, BigInt), [1, v.length]);
        const feeds: Record<string, ort.Tensor> = {
          input_ids: i64(prompt),
          attention_mask: i64(prompt.map(() => 1)),
          position_ids: i64(prompt.map((_, k) => k)),
        };
        const headDim = tiny.nEmbd / tiny.nHead;
        for (let i = 0; i < tiny.nLayer; i++) {
          for (const kind of ['key', 'value']) {
            feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [
              1,
              tiny.nHead,
              0,
              headDim,
            ]);
          }
        }
        return (await session.run(feeds, ['logits'])).logits!;
      } finally {
        await session.release();
      }
    };
    const last = await logitsOf([]);
    const full = await logitsOf(['--full-logits']);
    const V = tiny.vocabSize;
    assert.deepEqual(last.dims, [1, 1, V]);
    assert.deepEqual(full.dims, [1, prompt.length, V]);
    const fullLast = (full.data as Float32Array).subarray((prompt.length - 1) * V);
    const lastData = last.data as Float32Array;
    let diff = 0;
    for (let v = 0; v < V; v++) diff = Math.max(diff, Math.abs(fullLast[v]! - lastData[v]!));
    assert.ok(diff < 1e-4, `max |diff| ${diff}`);
    // The earlier positions really differ from the last one (the comparison above is not vacuous).
    const first = (full.data as Float32Array).subarray(0, V);
    assert.ok(first.some((x, v) => Math.abs(x - lastData[v]!) > 1e-3));
  });

  test('config.pbtxt flags with --out are refused, not silently ignored (--max-batch-size abc built and exited 0)', async () => {
    const out = join(dir, 'never-written.onnx');
    const cases: [string[], string][] = [
      [['--max-batch-size', 'abc'], '--max-batch-size'],
      [['--max-batch-size', '4'], '--max-batch-size'],
      [['--instance', 'cpu'], '--instance'],
      [['--repo', dir], '--repo'],
      [['--name', 'x'], '--name'],
    ];
    for (const [extra, flag] of cases) {
      const r = await buildTiny(['--out', out, ...extra]);
      assert.equal(r.code, 2, extra.join(' '));
      assert.equal(
        r.stderr,
        `gpt2-gateway model: ${flag} shapes a model repository entry (config.pbtxt); it does not go with --out (see 'gpt2-gateway model build --help')\n`,
      );
      assert.equal(r.stdout, '');
    }
    await assert.rejects(readFile(out), { code: 'ENOENT' });
  });

  test('--seed-signature --max-batch-size 4 is refused, not written as max_batch_size 0', async () => {
    const repo = join(dir, 'seed-mbs');
    const r = await buildTiny([
      '--variant',
      'logits',
      '--seed-signature',
      '--max-batch-size',
      '4',
      '--repo',
      repo,
    ]);
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      "gpt2-gateway model: --max-batch-size does not go with --seed-signature: the notebook's interface has no batch dimension (max_batch_size is 0) (see 'gpt2-gateway model build --help')\n",
    );
    await assert.rejects(readFile(join(repo, 'gpt2', 'config.pbtxt')), { code: 'ENOENT' });
  });

  test('--triton: --quantize int8 is refused for the chart’s 24.01, naming 25.05, and built for 25.05', async () => {
    const repo = join(dir, 'triton-target');
    const base = ['--quantize', 'int8', '--repo', repo];
    const refused = await buildTiny(base);
    assert.equal(refused.code, 2);
    assert.match(
      refused.stderr,
      /^gpt2-gateway model: Triton 24\.01 \(onnxruntime 1\.16\.3\) cannot load a next-token model with --quantize int8: .*use Triton 25\.05 or later \(--triton defaults to 24\.01/,
    );
    await assert.rejects(readFile(join(repo, 'gpt2', 'config.pbtxt')), { code: 'ENOENT' });
    const explicit = await buildTiny([...base, '--triton', '24.04']);
    assert.equal(explicit.code, 2);
    assert.match(
      explicit.stderr,
      /^gpt2-gateway model: Triton 24\.04 \(onnxruntime 1\.17\.3\).*use Triton 25\.05 or later \(see/,
    );
    const built = await buildTiny([...base, '--triton', '25.05']);
    assert.equal(built.code, 0, built.stderr);
    assert.match(
      built.stdout,
      /config\.pbtxt \(checked for Triton 25\.05\): variant next-token \(int8\)/,
    );
  });

  test('--layout transformers-js writes a directory whose tokenizer.json is GPT-2’s', async () => {
    const out = join(dir, 'tjs');
    const r = await buildTiny(['--variant', 'kv', '--layout', 'transformers-js', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      parseHfConfig(JSON.parse(await readFile(join(out, 'config.json'), 'utf8'))),
      tiny,
    );
    const tokenizer = new Tokenizer(
      JSON.parse(await readFile(join(out, 'tokenizer.json'), 'utf8')),
      JSON.parse(await readFile(join(out, 'tokenizer_config.json'), 'utf8')),
    );
    // GPT-2 BPE ids of the notebook's prompt, as gpt-tokenizer's r50k_base also gives them.
    assert.deepEqual(
      tokenizer.encode('I enjoy working in Seldon', { add_special_tokens: false }).ids,
      [40, 2883, 1762, 287, 1001, 25900],
    );
    assert.deepEqual(tokenizer.encode('<|endoftext|>', { add_special_tokens: false }).ids, [50256]);
    const wrong = await buildTiny([
      '--variant',
      'last',
      '--layout',
      'transformers-js',
      '--out',
      out,
    ]);
    assert.equal(wrong.code, 2);
    assert.equal(
      wrong.stderr,
      "gpt2-gateway model: --layout transformers-js needs --variant kv (transformers.js drives past/present) (see 'gpt2-gateway model build --help')\n",
    );
  });

  test('pull uses HF_ENDPOINT and reports what it verified', async () => {
    const body = Buffer.from('{"n_layer":2}');
    const server = createServer((req, res) => {
      if (req.url !== '/distilgpt2/resolve/main/config.json') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-length': body.length, etag: '"abc"' });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const target = join(dir, 'pulled');
      const r = await cli(['pull', 'distilgpt2', '--dir', target, '--file', 'config.json'], {
        HF_ENDPOINT: endpoint,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        r.stdout,
        `downloaded ${join(target, 'config.json')} (0.0 MB, size verified)\nnext: gpt2-gateway model build --weights ${target}\n`,
      );
      assert.equal(
        createHash('sha256')
          .update(await readFile(join(target, 'config.json')))
          .digest('hex'),
        createHash('sha256').update(body).digest('hex'),
      );
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
