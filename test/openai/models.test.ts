import assert from 'node:assert/strict';
import { test } from 'node:test';
import { modelNotFound } from '../../src/openai/errors.js';
import { modelList, retrieveModel } from '../../src/openai/models.js';

test("the model list and one model have OpenAI's shapes", () => {
  assert.deepEqual(modelList(['gpt2'], 1_764_547_200), {
    object: 'list',
    data: [{ id: 'gpt2', object: 'model', created: 1_764_547_200, owned_by: 'gpt2-gateway' }],
  });
  assert.deepEqual(retrieveModel('gpt2', ['gpt2'], 5), {
    ok: true,
    model: { id: 'gpt2', object: 'model', created: 5, owned_by: 'gpt2-gateway' },
  });
});

test('an unknown model id is the 404 model_not_found', () => {
  assert.deepEqual(retrieveModel('gpt-4o', ['gpt2'], 5), {
    ok: false,
    error: modelNotFound('gpt-4o'),
  });
});
