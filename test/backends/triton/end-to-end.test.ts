/**
 * The whole path over real HTTP: POST /complete → gateway → TritonBackend → KServe v2 →
 * model-server → onnxruntime, for every variant and both wire modes. The tokens must be exactly
 * those of the embedded backend on the same weights, which in turn must equal a plain
 * greedy loop written here.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { buildApp } from '../../../src/app.js';
import { EmbeddedBackend } from '../../../src/backends/embedded/embedded-backend.js';
import { TritonBackend } from '../../../src/backends/triton/triton-backend.js';
import { ModelServer } from '../../../src/model-server/model-server.js';
import { loadGpt2Tokenizer } from '../../../src/tokenizer/gpt2-tokenizer.js';
import { MODELS, tinyRepository } from '../../model-server/tiny-repository.js';
import { completeConcurrently, testConfig } from '../../support/app.js';

const PROMPTS = ['I love Artificial Intelligence', 'Hello world'];
const NEW_TOKENS = 4;
const tokenizer = loadGpt2Tokenizer();

let repo: Awaited<ReturnType<typeof tinyRepository>>;
let server: ModelServer;
let url: string;
const expected = new Map<string, number[]>();

/** The reference: a plain greedy loop, full forward pass each step, unpadded, in-process. */
async function plainGreedy(
  session: ort.InferenceSession,
  prompt: number[],
  n: number,
): Promise<number[]> {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    const t = seq.length;
    const ids = new ort.Tensor('int64', BigInt64Array.from(seq.map(BigInt)), [1, t]);
    const mask = new ort.Tensor('int64', new BigInt64Array(t).fill(1n), [1, t]);
    const out = await session.run({ input_ids: ids, attention_mask: mask });
    const logits = out.logits?.data as Float32Array;
    const vocab = logits.length / t;
    let best = 0;
    for (let v = 1; v < vocab; v++)
      if ((logits[(t - 1) * vocab + v] ?? 0) > (logits[(t - 1) * vocab + best] ?? 0)) best = v;
    seq.push(best);
  }
  return seq.slice(prompt.length);
}

before(async () => {
  repo = await tinyRepository();
  server = await ModelServer.create({ repository: repo.dir });
  url = `http://127.0.0.1:${await server.listen(0, '127.0.0.1')}`;
  const session = await ort.InferenceSession.create(join(repo.dir, 'logits', '1', 'model.onnx'));
  for (const p of PROMPTS)
    expected.set(p, await plainGreedy(session, tokenizer.encode(p), NEW_TOKENS));
  await session.release();
  // The embedded backend (the gateway's default, kv variant) must agree with the plain loop.
  const embedded = new EmbeddedBackend({
    modelFile: join(repo.dir, 'kv', '1', 'model.onnx'),
    modelName: 'kv',
  });
  const app = await buildApp(testConfig(), { backend: embedded, tokenizer });
  await embedded.init();
  const answers = await completeConcurrently(app, PROMPTS, NEW_TOKENS);
  for (const [i, body] of answers.entries()) {
    const ids = body.tokens.map((t) => t.id);
    assert.deepEqual(ids, expected.get(PROMPTS[i] ?? ''), `embedded backend: ${PROMPTS[i]}`);
  }
  await app.close();
  await embedded.close();
});
after(async () => {
  await server.close();
  await repo.remove();
});

describe('gateway → model-server over real HTTP', () => {
  for (const model of MODELS) {
    for (const wire of ['binary', 'json'] as const) {
      it(`${model.name} (${model.variant}${model.seedSignature ? ', notebook signature' : ''}) over ${wire}: exactly the in-process greedy tokens`, async () => {
        const backend = new TritonBackend({
          url,
          modelName: model.name,
          wire,
          timeoutMs: 10_000,
          connections: 4,
          healthIntervalMs: 0,
          startupTimeoutMs: 0,
        });
        const app = await buildApp(testConfig({ MAX_BATCH_SIZE: '4' }), { backend, tokenizer });
        try {
          await backend.init();
          assert.equal(backend.description.variant, model.variant);
          const answers = await completeConcurrently(app, PROMPTS, NEW_TOKENS);
          for (const [i, body] of answers.entries()) {
            assert.deepEqual(
              body.tokens.map((t) => t.id),
              expected.get(PROMPTS[i] ?? ''),
              PROMPTS[i],
            );
          }
          if (model.variant === 'kv') {
            // Every sequence was ended (sequence_end), none left to idle reaping.
            await backend.settled();
            assert.equal(server.models.get(model.name)?.openSequences, 0);
          }
        } finally {
          await app.close();
          await backend.close();
        }
      });
    }
  }
});
