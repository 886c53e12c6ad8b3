import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeInferRequest,
  decodeInferResponse,
  encodeInferRequest,
  encodeInferResponse,
} from '../../src/kserve/infer-body.js';
import { parseConfigPbtxt } from '../../src/kserve/model-config.js';
import {
  type TensorArray,
  tensorFromValues,
  WireFormatError,
} from '../../src/kserve/tensor-codec.js';

/**
 * A response body exactly as Triton frames it (docs/triton-notes.md, 'Binary tensor extension'),
 * built by hand, not by our encoder.
 */
function tritonBinaryResponse(
  outputs: { name: string; datatype: string; shape: number[]; bytes: Buffer }[],
) {
  const header = JSON.stringify({
    model_name: 'gpt2',
    model_version: '1',
    outputs: outputs.map((o) => ({
      name: o.name,
      datatype: o.datatype,
      shape: o.shape,
      parameters: { binary_data_size: o.bytes.byteLength },
    })),
  });
  return {
    body: Buffer.concat([Buffer.from(header), ...outputs.map((o) => o.bytes)]),
    headerLength: String(Buffer.byteLength(header)),
  };
}

function nums(data: TensorArray | undefined): number[] {
  const out: number[] = [];
  for (let i = 0; i < (data?.length ?? 0); i++) out.push(Number(data?.[i]));
  return out;
}

function f32(values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  for (const [i, v] of values.entries()) b.writeFloatLE(v, i * 4);
  return b;
}

describe('binary request framing', () => {
  it('puts the JSON header first, then each binary input in JSON order, and reports the header length', () => {
    const ids = tensorFromValues('input_ids:0', 'INT32', [1, 3], [15496, 11, 616]);
    const mask = tensorFromValues('attention_mask:0', 'INT32', [1, 3], [1, 1, 1]);
    const { body, headerLength } = encodeInferRequest({
      inputs: [
        { tensor: ids, binary: true },
        { tensor: mask, binary: true },
      ],
      outputs: [{ name: 'logits', binary: true }],
    });
    const expectedHeader =
      '{"inputs":[{"name":"input_ids:0","datatype":"INT32","shape":[1,3],"parameters":{"binary_data_size":12}},' +
      '{"name":"attention_mask:0","datatype":"INT32","shape":[1,3],"parameters":{"binary_data_size":12}}],' +
      '"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}';
    assert.equal(headerLength, Buffer.byteLength(expectedHeader));
    assert.equal(body.subarray(0, headerLength).toString(), expectedHeader);
    const rest = body.subarray(headerLength);
    assert.equal(rest.byteLength, 24);
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5].map((i) => rest.readInt32LE(i * 4)),
      [15496, 11, 616, 1, 1, 1],
    );
  });

  it('writes INT64 as 8 little-endian bytes and JSON mode as flat data with no header length', () => {
    const ids = tensorFromValues('input_ids', 'INT64', [1, 2], [50256, 7]);
    const bin = encodeInferRequest({ inputs: [{ tensor: ids, binary: true }], outputs: [] });
    const tail = bin.body.subarray(bin.headerLength);
    assert.deepEqual([tail.readBigInt64LE(0), tail.readBigInt64LE(8)], [50256n, 7n]);
    const json = encodeInferRequest({
      parameters: { sequence_id: 42, sequence_start: true, sequence_end: false },
      inputs: [{ tensor: ids, binary: false }],
      outputs: [{ name: 'logits', binary: false }],
    });
    assert.equal(json.headerLength, undefined);
    assert.deepEqual(JSON.parse(json.body.toString()), {
      parameters: { sequence_id: 42, sequence_start: true, sequence_end: false },
      inputs: [{ name: 'input_ids', datatype: 'INT64', shape: [1, 2], data: [50256, 7] }],
      outputs: [{ name: 'logits' }],
    });
  });

  it('round-trips through the server-side decoder, nested JSON data included', () => {
    const body = Buffer.from(
      JSON.stringify({
        id: 'r1',
        inputs: [
          {
            name: 'input_ids',
            datatype: 'INT32',
            shape: [2, 2],
            data: [
              [1, 2],
              [3, 4],
            ],
          },
        ],
      }),
    );
    const req = decodeInferRequest(body, undefined);
    assert.equal(req.json.id, 'r1');
    assert.deepEqual(nums(req.inputs[0]?.data), [1, 2, 3, 4]);
  });
});

describe('binary response parsing', () => {
  it('slices outputs in JSON order whatever that order is, and decodes FP32 little-endian', () => {
    const logits = f32([0.5, -1, 2.25, 3]);
    const pkv = f32([9, 8]);
    for (const order of [
      ['past_key_values', 'logits'],
      ['logits', 'past_key_values'],
    ]) {
      const outs = order.map((n) =>
        n === 'logits'
          ? { name: n, datatype: 'FP32', shape: [1, 2, 2], bytes: logits }
          : { name: n, datatype: 'FP32', shape: [2], bytes: pkv },
      );
      const { body, headerLength } = tritonBinaryResponse(outs);
      const res = decodeInferResponse(body, headerLength);
      assert.deepEqual(nums(res.outputs.get('logits')?.data), [0.5, -1, 2.25, 3]);
      assert.deepEqual(nums(res.outputs.get('past_key_values')?.data), [9, 8]);
      assert.equal(res.json.model_name, 'gpt2');
    }
  });

  it('mixes JSON and binary outputs, and decodes a zero-sized binary output with no bytes', () => {
    const header = JSON.stringify({
      model_name: 'm',
      model_version: '1',
      outputs: [
        { name: 'next_token', datatype: 'INT64', shape: [1, 1], data: [262] },
        { name: 'empty', datatype: 'FP32', shape: [1, 0], parameters: { binary_data_size: 0 } },
        { name: 'logprob', datatype: 'FP32', shape: [1, 1], parameters: { binary_data_size: 4 } },
      ],
    });
    const body = Buffer.concat([Buffer.from(header), f32([-0.25])]);
    const res = decodeInferResponse(body, String(Buffer.byteLength(header)));
    assert.deepEqual(nums(res.outputs.get('next_token')?.data), [262]);
    assert.deepEqual(nums(res.outputs.get('logprob')?.data), [-0.25]);
    assert.equal(res.outputs.get('empty')?.data.length, 0);
  });

  const good = tritonBinaryResponse([
    { name: 'logits', datatype: 'FP32', shape: [1, 1, 2], bytes: f32([1, 2]) },
  ]);
  const cases: [string, Buffer, string | undefined, RegExp][] = [
    [
      'a header length beyond the body',
      good.body,
      String(good.body.byteLength + 1),
      /exceeds the body length/,
    ],
    ['a header length that is not a number', good.body, '12abc', /is not a number/],
    [
      'a header length that cuts the JSON',
      good.body,
      String(Number(good.headerLength) - 3),
      /does not parse/,
    ],
    [
      'a header length that leaves binary bytes in the JSON',
      good.body,
      String(Number(good.headerLength) + 4),
      /does not parse/,
    ],
    ['a missing header length with binary data', good.body, undefined, /does not parse/],
    [
      'binary bytes short of binary_data_size',
      good.body.subarray(0, good.body.byteLength - 1),
      good.headerLength,
      /only 7 remain/,
    ],
    [
      'extra bytes after the last tensor',
      Buffer.concat([good.body, Buffer.from([0])]),
      good.headerLength,
      /1 bytes follow the last binary tensor/,
    ],
  ];
  for (const [name, body, h, re] of cases) {
    it(`rejects ${name}`, () => {
      assert.throws(
        () => decodeInferResponse(body, h),
        (e: unknown) => e instanceof WireFormatError && re.test(e.message),
      );
    });
  }

  it('rejects a binary_data_size that does not match datatype and shape', () => {
    const r = tritonBinaryResponse([
      { name: 'logits', datatype: 'FP32', shape: [1, 1, 3], bytes: f32([1, 2]) },
    ]);
    assert.throws(
      () => decodeInferResponse(r.body, r.headerLength),
      /binary_data_size 8 does not match FP32 \[1,1,3\] \(12 bytes\)/,
    );
  });

  it('rejects JSON data whose element count differs from the shape', () => {
    const body = Buffer.from(
      JSON.stringify({
        model_name: 'm',
        outputs: [{ name: 'x', datatype: 'FP32', shape: [3], data: [1, 2] }],
      }),
    );
    assert.throws(
      () => decodeInferResponse(body, undefined),
      /has 2 elements, but shape \[3\] needs 3/,
    );
  });

  it('server side: encodes binary outputs with their sizes and JSON ones with flat data', () => {
    const enc = encodeInferResponse({
      modelName: 'gpt2',
      modelVersion: '1',
      outputs: [
        { tensor: tensorFromValues('logits', 'FP32', [1, 2], [1.5, 2]), binary: true },
        { tensor: tensorFromValues('next_token', 'INT64', [1, 1], [13]), binary: false },
      ],
    });
    assert.equal(
      enc.body.subarray(0, enc.headerLength).toString(),
      '{"model_name":"gpt2","model_version":"1","outputs":[{"name":"logits","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}},{"name":"next_token","datatype":"INT64","shape":[1,1],"data":[13]}]}',
    );
    assert.deepEqual(
      [
        enc.body.readFloatLE(enc.headerLength ?? 0),
        enc.body.readFloatLE((enc.headerLength ?? 0) + 4),
      ],
      [1.5, 2],
    );
  });
});

describe('config.pbtxt', () => {
  it('reads the fields a GPT-2 deployment uses, comments and both list syntaxes included', () => {
    const c = parseConfigPbtxt(`
      name: "gpt2"   # the model
      platform: "onnxruntime_onnx"
      max_batch_size: 0
      input [
        { name: "input_ids" data_type: TYPE_INT64 dims: [ 1, -1 ] },
        { name: "attention_mask" data_type: TYPE_INT64 dims: [ 1, -1 ] }
      ]
      output { name: "logits" data_type: TYPE_FP32 dims: [ 1, -1, 50257 ] }
      sequence_batching {
        max_sequence_idle_microseconds: 60000000
        state [ { input_name: "past_key_values.0.key" output_name: "present.0.key" data_type: TYPE_FP32 dims: [ 1, 2, -1, 4 ]
                  initial_state: { name: "zero" data_type: TYPE_FP32 dims: [1, 2, 1, 4] zero_data: true } } ]
      }
      instance_group [ { kind: KIND_CPU count: 2 } ]
      dynamic_batching { default_queue_policy { max_queue_size: 64 } }
    `);
    assert.deepEqual(
      c.input.map((t) => [t.name, t.data_type, t.dims]),
      [
        ['input_ids', 'TYPE_INT64', [1, -1]],
        ['attention_mask', 'TYPE_INT64', [1, -1]],
      ],
    );
    assert.deepEqual(c.output, [{ name: 'logits', data_type: 'TYPE_FP32', dims: [1, -1, 50257] }]);
    assert.equal(c.sequence_batching?.max_sequence_idle_microseconds, 60000000);
    assert.deepEqual(c.sequence_batching?.state[0]?.initial_state, {
      name: 'zero',
      data_type: 'TYPE_FP32',
      dims: [1, 2, 1, 4],
      zero_data: true,
    });
    assert.deepEqual(c.instance_group, [{ kind: 'KIND_CPU', count: 2 }]);
    assert.deepEqual(c.dynamic_batching, { max_queue_size: 64 });
  });
});
