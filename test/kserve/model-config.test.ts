import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  modelConfigFromJson,
  modelConfigToJson,
  parseConfigPbtxt,
} from '../../src/kserve/model-config.js';

const PBTXT = `name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "input_ids" data_type: TYPE_INT64 dims: [ -1 ] } ]
output [ { name: "next_token" data_type: TYPE_INT64 dims: [ 1 ] } ]
parameters {
  key: "gpt2.variant"
  value: { string_value: "next-token" }
}
parameters { key: "gpt2.graph_version" value: { string_value: "3" } }
`;

describe('config parameters', () => {
  test('pbtxt map entries and Triton’s JSON object give the same string values', () => {
    const fromText = parseConfigPbtxt(PBTXT);
    assert.deepEqual(fromText.parameters, {
      'gpt2.variant': 'next-token',
      'gpt2.graph_version': '3',
    });
    const json = modelConfigToJson(fromText);
    assert.deepEqual(json.parameters, {
      'gpt2.variant': { string_value: 'next-token' },
      'gpt2.graph_version': { string_value: '3' },
    });
    // GET .../config's JSON, numbers-as-strings included (modelConfigFromJson turns them back).
    assert.deepEqual(modelConfigFromJson(json).parameters, fromText.parameters);
  });

  test('a config without parameters has none', () => {
    assert.deepEqual(parseConfigPbtxt('name: "m"\nmax_batch_size: 0\n').parameters, {});
  });
});
