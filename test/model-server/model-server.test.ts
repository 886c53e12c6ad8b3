import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ModelServer } from '../../src/model-server/model-server.js';
import { MODELS, tinyRepository } from './tiny-repository.js';

let repo: Awaited<ReturnType<typeof tinyRepository>>;
let server: ModelServer;
let legacy: ModelServer;
let base: string;
let legacyBase: string;
let clock = 0;

before(async () => {
  repo = await tinyRepository();
  server = await ModelServer.create({ repository: repo.dir, now: () => clock });
  base = `http://127.0.0.1:${await server.listen(0, '127.0.0.1')}`;
  legacy = await ModelServer.create({
    repository: repo.dir,
    models: ['logits'],
    legacyStatusCodes: true,
  });
  legacyBase = `http://127.0.0.1:${await legacy.listen(0, '127.0.0.1')}`;
});
after(async () => {
  await server.close();
  await legacy.close();
  await repo.remove();
});

const PROMPT = [40, 1842, 35941, 9345];
const VOCAB = 50257;

async function call(path: string, init?: RequestInit, at = base) {
  const res = await fetch(`${at}${path}`, init);
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, text: body.toString() };
}

function jsonInfer(model: string, payload: object, at = base) {
  return call(`/v2/models/${model}/infer`, { method: 'POST', body: JSON.stringify(payload) }, at);
}

const ids = (name: string, datatype: string, values: number[]) => ({
  name,
  datatype,
  shape: [1, values.length],
  data: values,
});

describe('model-server: health, metadata, config', () => {
  it('answers health with 200 and an empty body, and server metadata with the Triton API level it follows', async () => {
    for (const p of [
      '/v2/health/live',
      '/v2/health/ready',
      '/v2/models/kv/ready',
      '/v2/models/kv/versions/1/ready',
    ]) {
      const r = await call(p);
      assert.deepEqual([r.status, r.text], [200, ''], p);
    }
    const v2 = await call('/v2');
    assert.deepEqual(JSON.parse(v2.text), {
      name: 'gpt2-gateway-model-server',
      version: '2.42.0',
      extensions: [
        'classification',
        'sequence',
        'model_configuration',
        'binary_tensor_data',
        'parameters',
      ],
    });
  });

  it('reports each model’s metadata as Triton does: [-1] + dims when batching, states hidden', async () => {
    const kv = await call('/v2/models/kv');
    assert.deepEqual(JSON.parse(kv.text), {
      name: 'kv',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [
        { name: 'input_ids', datatype: 'INT64', shape: [-1, -1] },
        { name: 'attention_mask', datatype: 'INT64', shape: [-1, -1] },
        { name: 'position_ids', datatype: 'INT64', shape: [-1, -1] },
      ],
      outputs: [
        { name: 'logits', datatype: 'FP32', shape: [-1, 1, VOCAB] },
        { name: 'next_token', datatype: 'INT64', shape: [-1, 1] },
        { name: 'logprob', datatype: 'FP32', shape: [-1, 1] },
      ],
    });
    const seed = await call('/v2/models/seed');
    assert.equal(
      seed.text,
      '{"name":"seed","versions":["1"],"platform":"onnxruntime_onnx","inputs":[{"name":"input_ids:0","datatype":"INT32","shape":[-1,-1]},{"name":"attention_mask:0","datatype":"INT32","shape":[-1,-1]}],"outputs":[{"name":"past_key_values","datatype":"FP32","shape":[2,2,-1,4,-1,8]},{"name":"logits","datatype":"FP32","shape":[-1,-1,50257]}]}',
    );
    const config = JSON.parse((await call('/v2/models/kv/config')).text);
    assert.equal(config.max_batch_size, 1);
    assert.equal(config.sequence_batching.max_sequence_idle_microseconds, 60000000);
    assert.deepEqual(config.sequence_batching.state[0], {
      input_name: 'past_key_values.0.key',
      output_name: 'present.0.key',
      data_type: 'TYPE_FP32',
      dims: [4, -1, 8],
      initial_state: {
        name: 'empty_past_0_key',
        data_type: 'TYPE_FP32',
        dims: [4, 1, 8],
        zero_data: true,
      },
    });
    assert.equal(MODELS.length, server.models.size);
  });

  it('answers an unknown model and path with Triton 24.01 statuses, and 400 for all in 21.08 mode', async () => {
    assert.deepEqual(
      [(await call('/v2/models/nope')).status, (await call('/v2/models/nope')).text],
      [404, '{"error":"Request for unknown model: \'nope\' is not found"}'],
    );
    assert.deepEqual([(await call('/v2/models/kv/versions/2')).status], [404]);
    assert.deepEqual(
      [(await call('/v3')).status, (await call('/v3')).text],
      [404, '{"error":"Not Found"}'],
    );
    assert.equal((await call('/v2/health/ready', { method: 'POST' })).status, 405);
    const old = await call('/v2/models/nope', undefined, legacyBase);
    assert.deepEqual(
      [old.status, old.text],
      [400, '{"error":"Request for unknown model: \'nope\' is not found"}'],
    );
    assert.deepEqual(
      [
        (await call('/v3', undefined, legacyBase)).status,
        (await call('/v3', undefined, legacyBase)).text,
      ],
      [400, ''],
    );
  });
});

describe('model-server: infer', () => {
  it('gives the same numbers as JSON and as binary, framed per the binary extension', async () => {
    const json = await jsonInfer('last', {
      id: 'r-1',
      inputs: [ids('input_ids', 'INT64', PROMPT), ids('attention_mask', 'INT64', [1, 1, 1, 1])],
      outputs: [{ name: 'last_logits' }],
    });
    assert.equal(json.status, 200);
    assert.equal(json.headers.get('content-type'), 'application/json');
    const parsed = JSON.parse(json.text);
    assert.deepEqual(
      [parsed.id, parsed.model_name, parsed.model_version, parsed.outputs[0].shape],
      ['r-1', 'last', '1', [1, VOCAB]],
    );

    const header = JSON.stringify({
      inputs: [
        {
          name: 'input_ids',
          datatype: 'INT64',
          shape: [1, 4],
          parameters: { binary_data_size: 32 },
        },
        {
          name: 'attention_mask',
          datatype: 'INT64',
          shape: [1, 4],
          parameters: { binary_data_size: 32 },
        },
      ],
      outputs: [{ name: 'last_logits', parameters: { binary_data: true } }],
    });
    const data = Buffer.alloc(64);
    PROMPT.forEach((v, i) => {
      data.writeBigInt64LE(BigInt(v), i * 8);
      data.writeBigInt64LE(1n, 32 + i * 8);
    });
    const bin = await call('/v2/models/last/infer', {
      method: 'POST',
      headers: { 'inference-header-content-length': String(Buffer.byteLength(header)) },
      body: Buffer.concat([Buffer.from(header), data]),
    });
    assert.equal(bin.status, 200);
    assert.equal(bin.headers.get('content-type'), 'application/octet-stream');
    const h = Number(bin.headers.get('inference-header-content-length'));
    assert.deepEqual(JSON.parse(bin.body.subarray(0, h).toString()), {
      model_name: 'last',
      model_version: '1',
      outputs: [
        {
          name: 'last_logits',
          datatype: 'FP32',
          shape: [1, VOCAB],
          parameters: { binary_data_size: VOCAB * 4 },
        },
      ],
    });
    assert.equal(bin.body.byteLength, h + VOCAB * 4);
    const fromBinary = Array.from({ length: VOCAB }, (_, i) => bin.body.readFloatLE(h + i * 4));
    assert.deepEqual(
      fromBinary,
      parsed.outputs[0].data.map((x: number) => Math.fround(x)),
    );
  });

  it('returns only the outputs asked for, and follows Triton (not its docs) on binary_data vs binary_data_output', async () => {
    const inputs = [
      ids('input_ids:0', 'INT32', [15496, 11]),
      ids('attention_mask:0', 'INT32', [1, 1]),
    ];
    const onlyLogits = JSON.parse(
      (await jsonInfer('seed', { inputs, outputs: [{ name: 'logits' }] })).text,
    );
    assert.deepEqual(
      onlyLogits.outputs.map((o: { name: string }) => o.name),
      ['logits'],
    );
    const all = JSON.parse((await jsonInfer('seed', { inputs })).text);
    assert.deepEqual(
      all.outputs.map((o: { name: string; shape: number[] }) => [o.name, o.shape]),
      [
        ['past_key_values', [2, 2, 1, 4, 2, 8]],
        ['logits', [1, 2, VOCAB]],
      ],
    );
    const allBinary = await jsonInfer('seed', { inputs, parameters: { binary_data_output: true } });
    const h = Number(allBinary.headers.get('inference-header-content-length'));
    assert.deepEqual(
      JSON.parse(allBinary.body.subarray(0, h).toString()).outputs.map(
        (o: { parameters: object }) => o.parameters,
      ),
      [{ binary_data_size: 2 * 2 * 4 * 2 * 8 * 4 }, { binary_data_size: 2 * VOCAB * 4 }],
    );
    const listedNoFlag = await jsonInfer('seed', {
      inputs,
      parameters: { binary_data_output: true },
      outputs: [{ name: 'logits' }],
    });
    assert.equal(
      listedNoFlag.headers.get('inference-header-content-length'),
      null,
      'a listed output without binary_data is JSON',
    );
  });

  const bad: [string, string, object, number, string][] = [
    [
      'a wrong datatype',
      'logits',
      { inputs: [ids('input_ids', 'INT32', [1]), ids('attention_mask', 'INT64', [1])] },
      400,
      "inference input 'input_ids' data-type is 'INT32', but model 'logits' expects 'INT64'",
    ],
    [
      'an unknown input',
      'logits',
      { inputs: [ids('input_ids', 'INT64', [1]), ids('mask', 'INT64', [1])] },
      400,
      "unexpected inference input 'mask' for model 'logits'",
    ],
    [
      'a missing input',
      'logits',
      { inputs: [ids('input_ids', 'INT64', [1])] },
      400,
      "expected 2 inputs but got 1 inputs for model 'logits'",
    ],
    [
      'an unknown output',
      'logits',
      {
        inputs: [ids('input_ids', 'INT64', [1]), ids('attention_mask', 'INT64', [1])],
        outputs: [{ name: 'present.0.key' }],
      },
      400,
      "unexpected inference output 'present.0.key' for model 'logits'",
    ],
    [
      'a batch over max_batch_size',
      'logits',
      {
        inputs: [
          {
            name: 'input_ids',
            datatype: 'INT64',
            shape: [9, 1],
            data: [1, 1, 1, 1, 1, 1, 1, 1, 1],
          },
          {
            name: 'attention_mask',
            datatype: 'INT64',
            shape: [9, 1],
            data: [1, 1, 1, 1, 1, 1, 1, 1, 1],
          },
        ],
      },
      400,
      "inference request batch-size must be <= 8 for 'logits'",
    ],
    [
      'data that does not fill the shape',
      'logits',
      {
        inputs: [
          { name: 'input_ids', datatype: 'INT64', shape: [1, 2], data: [1] },
          ids('attention_mask', 'INT64', [1]),
        ],
      },
      400,
      "tensor 'input_ids' has 1 elements, but shape [1,2] needs 2",
    ],
  ];
  for (const [what, model, payload, status, error] of bad) {
    it(`rejects ${what} with ${status} and Triton's message`, async () => {
      const r = await jsonInfer(model, payload);
      assert.deepEqual([r.status, JSON.parse(r.text)], [status, { error }]);
    });
  }

  it('answers a body that is not JSON with 500 (INTERNAL, as Triton >= 24.01) or 400 in 21.08 mode', async () => {
    const r = await call('/v2/models/logits/infer', { method: 'POST', body: '{"inputs": [' });
    assert.equal(r.status, 500);
    assert.match(JSON.parse(r.text).error, /JSON header \(12 bytes\) does not parse/);
    const old = await call(
      '/v2/models/logits/infer',
      { method: 'POST', body: '{"inputs": [' },
      legacyBase,
    );
    assert.equal(old.status, 400);
  });

  it('rejects an Inference-Header-Content-Length beyond the body', async () => {
    const r = await call('/v2/models/logits/infer', {
      method: 'POST',
      headers: { 'inference-header-content-length': '999' },
      body: '{}',
    });
    assert.deepEqual(
      [r.status, JSON.parse(r.text)],
      [400, { error: 'Inference-Header-Content-Length 999 exceeds the body length 2' }],
    );
  });
});

describe('model-server: sequences with implicit state', () => {
  const kvInputs = (tokens: number[], seen: number) => [
    ids('input_ids', 'INT64', tokens),
    ids('attention_mask', 'INT64', [0, ...new Array(seen + tokens.length).fill(1)]),
    ids(
      'position_ids',
      'INT64',
      tokens.map((_, i) => seen + i),
    ),
  ];
  const lastRow = (text: string, n: number) =>
    JSON.parse(text).outputs[0].data.slice((n - 1) * VOCAB, n * VOCAB) as number[];

  it('keeps the KV state between requests: prompt then one token equals the full forward pass', async () => {
    const full = await jsonInfer('logits', {
      inputs: [
        ids('input_ids', 'INT64', [...PROMPT, 262]),
        ids('attention_mask', 'INT64', [1, 1, 1, 1, 1]),
      ],
    });
    const want = lastRow(full.text, 5);
    const first = await jsonInfer('kv', {
      parameters: { sequence_id: 77, sequence_start: true, sequence_end: false },
      inputs: kvInputs(PROMPT, 0),
    });
    assert.equal(first.status, 200, first.text);
    // The prefill answer carries the last position only, equal to the full pass's.
    assert.deepEqual(JSON.parse(first.text).outputs[0].shape, [1, 1, VOCAB]);
    const wantPrefill = lastRow(full.text, 4);
    assert.ok(lastRow(first.text, 1).every((v, i) => Math.abs(v - (wantPrefill[i] ?? 0)) < 1e-4));
    assert.equal(server.models.get('kv')?.openSequences, 1);
    // --full-logits: every prompt position comes back, the last one the same.
    const fullFirst = await jsonInfer('kv-full', {
      parameters: { sequence_id: 78, sequence_start: true, sequence_end: true },
      inputs: kvInputs(PROMPT, 0),
    });
    assert.equal(fullFirst.status, 200, fullFirst.text);
    assert.deepEqual(JSON.parse(fullFirst.text).outputs[0].shape, [1, PROMPT.length, VOCAB]);
    assert.ok(
      lastRow(fullFirst.text, PROMPT.length).every(
        (v, i) => Math.abs(v - (wantPrefill[i] ?? 0)) < 1e-4,
      ),
    );
    const second = await jsonInfer('kv', {
      parameters: { sequence_id: 77, sequence_start: false, sequence_end: true },
      inputs: kvInputs([262], 4),
    });
    assert.equal(second.status, 200, second.text);
    const got = lastRow(second.text, 1);
    assert.ok(
      got.every((v, i) => Math.abs(v - (want[i] ?? 0)) < 1e-4),
      'kv step logits match the full forward pass',
    );
    assert.equal(server.models.get('kv')?.openSequences, 0, 'END frees the state');
  });

  it('refuses a continuation without START, a missing sequence id, and a batch of 2', async () => {
    const r = await jsonInfer('kv', { parameters: { sequence_id: 5 }, inputs: kvInputs([1], 0) });
    assert.deepEqual(
      [r.status, JSON.parse(r.text)],
      [
        400,
        {
          error:
            "inference request for sequence 5 to model 'kv' must specify the START flag on the first request of the sequence",
        },
      ],
    );
    const none = await jsonInfer('kv', { inputs: kvInputs([1], 0) });
    assert.deepEqual(
      [none.status, JSON.parse(none.text)],
      [
        400,
        {
          error:
            "inference request to model 'kv' must specify a non-zero or non-empty correlation ID",
        },
      ],
    );
  });

  it('reaps a sequence idle longer than max_sequence_idle_microseconds', async () => {
    const kv = server.models.get('kv');
    const start = await jsonInfer('kv', {
      parameters: { sequence_id: 'abc', sequence_start: true },
      inputs: kvInputs([5], 0),
    });
    assert.equal(start.status, 200);
    clock += 59_000;
    kv?.reapIdle();
    assert.equal(kv?.openSequences, 1, 'not yet idle for 60 s');
    clock += 2_000;
    kv?.reapIdle();
    assert.equal(kv?.openSequences, 0);
    const next = await jsonInfer('kv', {
      parameters: { sequence_id: 'abc' },
      inputs: kvInputs([6], 1),
    });
    assert.equal(next.status, 400);
  });
});
