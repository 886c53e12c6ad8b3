/**
 * src/contract/ is the bottom floor: every other layer may import it, so it imports nothing from
 * the rest of src/. And the variants it lists are exactly those a signature can have.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MODEL_VARIANTS, type ModelVariant } from '../../src/contract/model.js';
import type { ModelSignature } from '../../src/contract/signature.js';

const CONTRACT_DIR = fileURLToPath(new URL('../../../src/contract/', import.meta.url));

test('src/contract/ imports only itself and packages', () => {
  const files = readdirSync(CONTRACT_DIR).filter((f) => f.endsWith('.ts'));
  assert.ok(files.includes('model.ts') && files.includes('signature.ts'));
  for (const file of files) {
    const source = readFileSync(`${CONTRACT_DIR}${file}`, 'utf8');
    for (const [, from] of source.matchAll(/^(?:import|export)[^'"]*from\s+'([^']+)'/gm)) {
      assert.ok(!from?.startsWith('../'), `src/contract/${file} imports ${from}`);
    }
  }
});

test('MODEL_VARIANTS is the set of signature variants', () => {
  // Fails to compile when the union and the list drift apart.
  type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
  const same: Same<ModelSignature['variant'], ModelVariant> = true;
  assert.equal(same, true);
  assert.deepEqual([...MODEL_VARIANTS], ['logits', 'last', 'next-token', 'kv']);
});
