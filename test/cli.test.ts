import assert from 'node:assert/strict';
import { test } from 'node:test';
import { main, usage } from '../src/cli.js';

test('usage lists every command', () => {
  for (const name of [
    'serve',
    'model',
    'model-server',
    'deploy',
    'status',
    'undeploy',
    'loadtest',
  ]) {
    assert.match(usage(), new RegExp(`^  ${name} `, 'm'));
  }
});

test('an unknown command exits 2', async () => {
  const write = process.stderr.write;
  let printed = '';
  process.stderr.write = ((chunk: string) => {
    printed += chunk;
    return true;
  }) as typeof process.stderr.write;
  try {
    assert.equal(await main(['frobnicate']), 2);
  } finally {
    process.stderr.write = write;
  }
  assert.match(printed, /unknown command 'frobnicate'/);
});
