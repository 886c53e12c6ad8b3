/** A model repository with the tiny GPT-2 in every serving variant, built once per test file. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelVariant } from '../../src/contract/model.js';
import { NAMED_CONFIGS } from '../../src/model/configs.js';
import { writeModelRepository } from '../../src/model/model-repository.js';

export const SEED = 7;
/** Model names in the repository: each variant, plus the notebook's seed signature. */
export const MODELS: readonly {
  name: string;
  variant: ModelVariant;
  seedSignature: boolean;
  fullLogits?: boolean;
}[] = [
  { name: 'logits', variant: 'logits', seedSignature: false },
  { name: 'last', variant: 'last', seedSignature: false },
  { name: 'next-token', variant: 'next-token', seedSignature: false },
  { name: 'kv', variant: 'kv', seedSignature: false },
  // kv with every position's logits (model build --full-logits): the prefill answer is [1, seq, V].
  { name: 'kv-full', variant: 'kv', seedSignature: false, fullLogits: true },
  { name: 'seed', variant: 'logits', seedSignature: true },
];

export async function tinyRepository(
  only?: readonly string[],
): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'gpt2-model-server-'));
  for (const m of MODELS) {
    if (only !== undefined && !only.includes(m.name)) continue;
    await writeModelRepository({
      repository: dir,
      name: m.name,
      config: NAMED_CONFIGS.tiny,
      weights: { kind: 'random', seed: SEED },
      variant: m.variant,
      seedSignature: m.seedSignature,
      fullLogits: m.fullLogits ?? false,
      instanceKind: 'cpu',
    });
  }
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
