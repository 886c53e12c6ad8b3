/**
 * The embedded backend on real ONNX files from `model build`'s builder (tiny config, built in a temp
 * dir): every variant, driven through the whole gateway, produces the same greedy tokens; batched
 * KV decoding agrees with one-at-a-time decoding; and the backend reports what it loaded.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildApp } from '../../../src/app.js';
import type { StepRequest } from '../../../src/backends/backend.js';
import { EmbeddedBackend } from '../../../src/backends/embedded/embedded-backend.js';
import type { ModelVariant } from '../../../src/contract/model.js';
import { buildOnnxModel } from '../../../src/model/build.js';
import { NAMED_CONFIGS } from '../../../src/model/configs.js';
import { completeConcurrently, testConfig } from '../../support/app.js';

/** Wide weights make logits far from uniform, so no argmax is a near-tie. */
const WEIGHTS = { kind: 'random', seed: 7, std: 0.2 } as const;
const BUILDS: [
  string,
  ModelVariant,
  { seedSignature?: boolean; fused?: boolean; fullLogits?: boolean }?,
][] = [
  ['kv', 'kv'],
  ['kv-fused', 'kv', { fused: true }],
  // Logits for every prompt position: the backend must find each row's last one in them too.
  ['kv-full', 'kv', { fullLogits: true }],
  ['logits', 'logits'],
  ['last', 'last'],
  ['next-token', 'next-token'],
  ['seed', 'logits', { seedSignature: true }],
];
const PROMPTS = [
  'I love Artificial Intelligence',
  'Hello world',
  'I enjoy working in Seldon and more',
];
const NEW_TOKENS = 10;

let dir: string;
const files = new Map<string, string>();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'embedded-backend-'));
  for (const [name, variant, options] of BUILDS) {
    const file = join(dir, `${name}.onnx`);
    await buildOnnxModel(
      { config: NAMED_CONFIGS.tiny, weights: WEIGHTS, variant, ...options },
      file,
    );
    files.set(name, file);
  }
});
after(() => rm(dir, { recursive: true, force: true }));

async function completions(
  name: string,
  options: {
    batchDecode?: boolean;
    maxBatchSize?: string;
    prefillChunkTokens?: string;
    prompts?: readonly string[];
    /** Sees every step's requests. */
    onStep?: (batch: readonly StepRequest[]) => void;
  } = {},
): Promise<number[][]> {
  const backend = new EmbeddedBackend({
    modelFile: files.get(name)!,
    modelName: name,
    intraOpNumThreads: 1,
    ...(options.batchDecode === undefined ? {} : { batchDecode: options.batchDecode }),
  });
  await backend.init();
  const step = backend.step.bind(backend);
  backend.step = (batch) => {
    options.onStep?.(batch);
    return step(batch);
  };
  const app = await buildApp(
    testConfig({
      MAX_BATCH_SIZE: options.maxBatchSize ?? '8',
      PREFILL_CHUNK_TOKENS: options.prefillChunkTokens ?? '0',
    }),
    { backend },
  );
  try {
    // Concurrent requests: they are stepped together in one batch.
    return (await completeConcurrently(app, options.prompts ?? PROMPTS, NEW_TOKENS)).map((body) => {
      for (const t of body.tokens) assert.ok(t.logprob <= 0 && Number.isFinite(t.logprob));
      return body.tokens.map((t) => t.id);
    });
  } finally {
    await app.close();
    await backend.close();
  }
}

test('every variant produces the same greedy tokens', async () => {
  const reference = await completions('logits', { maxBatchSize: '1' });
  for (const ids of reference) {
    assert.ok(ids.length > 0 && ids.length <= NEW_TOKENS);
  }
  assert.notDeepEqual(reference[0], reference[1], 'different prompts, different continuations');
  for (const [name] of BUILDS) {
    assert.deepEqual(await completions(name), reference, `variant ${name}`);
  }
});

test('batched KV decoding gives the same tokens as one sequence at a time', async () => {
  assert.deepEqual(
    await completions('kv', { batchDecode: true }),
    await completions('kv', { batchDecode: false }),
  );
});

test('chunked prefill gives the same tokens as whole prompts, with decodes between the chunks', async () => {
  // Prompts of 2 to about 40 tokens: under small budgets the short ones decode while the long
  // ones are still being fed, chunks split them unevenly and batched prefills are left-padded.
  const prompts = [
    'Hello world',
    'I love Artificial Intelligence because it reads every word of a long prompt',
    'I enjoy working in Seldon and more',
    'A much longer prompt, one that takes many chunks to feed: the quick brown fox jumps over the lazy dog, twice over, and then some',
  ];
  const reference = await completions('kv', { prompts });
  for (const name of ['kv', 'kv-fused', 'kv-full']) {
    for (const chunk of ['1', '3', '7', '16']) {
      let chunks = 0;
      let decodesBesideChunks = 0;
      const ids = await completions(name, {
        prompts,
        prefillChunkTokens: chunk,
        onStep: (batch) => {
          const partial = batch.filter((r) => r.wantToken === false).length;
          chunks += partial;
          if (partial > 0 && partial < batch.length) decodesBesideChunks++;
        },
      });
      assert.deepEqual(ids, reference, `${name}, PREFILL_CHUNK_TOKENS ${chunk}`);
      assert.ok(chunks > 0, `${name}, ${chunk}: some prompt was fed in chunks`);
      assert.ok(decodesBesideChunks > 0, `${name}, ${chunk}: other sequences stepped beside them`);
    }
  }
});

test('a decode row far longer than the others runs outside the group, with the same tokens', async () => {
  // About 400 tokens beside prompts of 2 to 8: more than 4× the median and over 256 positions,
  // so the long one decodes alone while the short ones decode as a group.
  const prompts = [
    'Hello world',
    'The weather today is fine. '.repeat(70),
    'I love Artificial Intelligence',
    'I enjoy working in Seldon',
  ];
  assert.deepEqual(
    await completions('kv', { prompts, batchDecode: true }),
    await completions('kv', { prompts, batchDecode: false }),
  );
});

test('batched prefill and KV caches that survive sequences joining and leaving the group', async () => {
  const prompts = [
    [40, 1842, 35941, 9345],
    [15496, 995],
    [40, 2883, 1762, 287, 1001, 25900],
  ];
  // Alone, one sequence at a time: the reference.
  const alone = new EmbeddedBackend({
    modelFile: files.get('kv')!,
    modelName: 'kv',
    intraOpNumThreads: 1,
  });
  await alone.init();
  const expected: number[][] = [];
  for (const [i, prompt] of prompts.entries()) {
    const seq = [...prompt];
    for (let k = 0; k < 8; k++)
      seq.push((await alone.step([{ sequenceId: i, tokens: seq }]))[0]!.tokenId);
    expected.push(seq);
    await alone.release(i);
  }
  await alone.close();
  // Together, with membership changing: A and B prefilled in one run (prompts of 4 and 2
  // tokens, left-padded), C joining, A leaving, C alone, then whoever is left.
  const backend = new EmbeddedBackend({
    modelFile: files.get('kv')!,
    modelName: 'kv',
    intraOpNumThreads: 1,
  });
  await backend.init();
  const seqs = prompts.map((p) => [...p]);
  const schedule = [[0, 1], [0, 1], [0, 1, 2], [0, 1, 2], [2], [1, 2], [0, 1, 2], [1, 2]];
  const steps = new Map<number, number>();
  const step = async (members: number[]) => {
    const live = members.filter((m) => (steps.get(m) ?? 0) < 8);
    if (live.length === 0) return 0;
    const results = await backend.step(live.map((m) => ({ sequenceId: m, tokens: seqs[m]! })));
    live.forEach((m, i) => {
      seqs[m]!.push(results[i]!.tokenId);
      steps.set(m, (steps.get(m) ?? 0) + 1);
      if (steps.get(m) === 8) void backend.release(m);
    });
    return live.length;
  };
  for (const members of schedule) await step(members);
  while ((await step([0, 1, 2])) > 0) {
    // until every sequence has its 8 tokens
  }
  assert.deepEqual(seqs, expected);
  await backend.close();
});

test('a kv step reports the time of its prompt runs apart from its decodes', async () => {
  const backend = new EmbeddedBackend({
    modelFile: files.get('kv')!,
    modelName: 'kv',
    intraOpNumThreads: 1,
  });
  await backend.init();
  const prompt = [40, 1842, 35941, 9345];
  const first = (await backend.step([{ sequenceId: 1, tokens: prompt }]))[0]!.tokenId;
  const prefillOnly = backend.lastStepCost();
  assert.equal(prefillOnly?.decodeMs, 0, 'a new prompt is no decode');
  assert.ok(prefillOnly.prefillMs > 0);
  // A decode of sequence 1 beside a chunk of sequence 2: one part each.
  await backend.step([
    { sequenceId: 1, tokens: [...prompt, first] },
    { sequenceId: 2, tokens: [15496, 995], wantToken: false },
  ]);
  const mixed = backend.lastStepCost();
  assert.ok(mixed !== undefined && mixed.decodeMs > 0 && mixed.prefillMs > 0);
  await backend.step([{ sequenceId: 1, tokens: [...prompt, first, 11] }]);
  assert.equal(backend.lastStepCost()?.prefillMs, 0, 'a decode alone feeds no prompt');
  await backend.close();
});

test('the backend describes the model it loaded', async () => {
  const backend = new EmbeddedBackend({
    modelFile: files.get('kv')!,
    modelName: 'tiny-kv',
    intraOpNumThreads: 1,
  });
  assert.deepEqual(backend.readiness(), { ready: false, reason: 'not initialised' });
  await assert.rejects(backend.step([{ sequenceId: 1, tokens: [1] }]), {
    code: 'BACKEND_NOT_READY',
  });
  await backend.init();
  const { details, ...description } = backend.description;
  assert.deepEqual(description, {
    kind: 'embedded',
    modelName: 'tiny-kv',
    variant: 'kv',
    contextLength: 1024,
    vocabSize: 50257,
    maxBatchSize: 64,
    chunkedPrefill: true,
  });
  assert.equal(details.batchDecode, true);
  assert.deepEqual(backend.readiness(), { ready: true });
  await backend.close();
  await assert.rejects(backend.step([{ sequenceId: 1, tokens: [1] }]), {
    code: 'BACKEND_NOT_READY',
  });
});

test('the seed signature has no batch dimension, so its steps carry one sequence', async () => {
  const backend = new EmbeddedBackend({
    modelFile: files.get('seed')!,
    modelName: 'seed',
    intraOpNumThreads: 1,
  });
  await backend.init();
  assert.equal(backend.description.maxBatchSize, 1);
  await backend.close();
});

test('a model file that is not there fails init with the path in the message', async () => {
  const backend = new EmbeddedBackend({
    modelFile: join(dir, 'missing.onnx'),
    modelName: 'missing',
  });
  await assert.rejects(backend.init(), /missing\.onnx/);
});
