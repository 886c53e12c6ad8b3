/**
 * `npm run bench:floor`: the two figures the serving defaults are chosen from, on the full-size
 * gpt2 kv model (random weights) in-process:
 * - PREFILL_CHUNK_TOKENS: a ~1000-token prompt prefilled in chunks of C tokens — the time of one
 *   chunk step (what a running stream waits for, at worst, per step) and the whole prefill (what
 *   the long prompt pays for being chunked), against a batch-1 decode step;
 * - MAX_BATCH_SIZE: tokens/s of the bare greedy loop at batch B (where the curve flattens).
 *
 *   node dist/bench/serving-floor.js [--repo DIR] [--prompt 1000]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { DEFAULT_MODEL_NAME, ensureDefaultModel } from '../src/backends/embedded/default-model.js';
import { EmbeddedBackend } from '../src/backends/embedded/embedded-backend.js';
import { NAMED_CONFIGS } from '../src/model/configs.js';
import { plainGreedyLoop } from './plain-loop.js';

const CHUNKS = [32, 64, 96, 128, 256, 1000];
const BATCHES = [1, 4, 8, 16, 24, 32];
const DECODE_TOKENS = 16;

const { values } = parseArgs({
  options: {
    repo: { type: 'string', default: './models' },
    prompt: { type: 'string', default: '1000' },
  },
});
const promptLength = Number(values.prompt);
const modelFile = join(values.repo, DEFAULT_MODEL_NAME, '1', 'model.onnx');
await ensureDefaultModel(values.repo, modelFile, pino({ level: 'warn' }));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const r1 = (x: number) => Math.round(x * 10) / 10;

const backend = new EmbeddedBackend({ modelFile, modelName: DEFAULT_MODEL_NAME });
await backend.init();
const prompt = Array.from({ length: promptLength }, (_, i) => (i * 7919) % 50000);
let id = 1;
// A batch-1 decode step on a short sequence: the unloaded gap a running stream sees.
const decode: number[] = [];
{
  const seq = [464, 2068];
  const sequenceId = id++;
  for (let k = 0; k < DECODE_TOKENS; k++) {
    const t0 = performance.now();
    const [r] = await backend.step([{ sequenceId, tokens: seq }]);
    if (k > 1) decode.push(performance.now() - t0);
    seq.push(r!.tokenId);
  }
  await backend.release(sequenceId);
}
const decodeMs = median(decode);
process.stdout.write(`batch-1 decode step: ${r1(decodeMs)} ms\n`);
process.stdout.write(`prefill of ${promptLength} tokens in chunks of C:\n`);
for (const chunk of CHUNKS) {
  const sequenceId = id++;
  const steps: number[] = [];
  const t0 = performance.now();
  for (let fed = 0; fed < promptLength; ) {
    const end = Math.min(promptLength, fed + chunk);
    const s0 = performance.now();
    await backend.step([
      {
        sequenceId,
        tokens: prompt.slice(0, end),
        ...(end < promptLength ? { wantToken: false } : {}),
      },
    ]);
    steps.push(performance.now() - s0);
    fed = end;
  }
  const total = performance.now() - t0;
  await backend.release(sequenceId);
  const worst = Math.max(...steps);
  process.stdout.write(
    `  C=${String(chunk).padEnd(5)} worst chunk ${r1(worst)} ms (${r1(worst / decodeMs)}× a decode step), whole prefill ${r1(total)} ms (${r1(total / promptLength)} ms/token)\n`,
  );
}
await backend.close();

const g = NAMED_CONFIGS.gpt2;
const shape = { nLayer: g.nLayer, nHead: g.nHead, headDim: g.nEmbd / g.nHead, vocab: g.vocabSize };
const session = await ort.InferenceSession.create(modelFile, {
  executionProviders: ['cpu'],
  graphOptimizationLevel: 'all',
});
process.stdout.write('bare greedy loop, B sequences per step:\n');
for (const batch of BATCHES) {
  const run = await plainGreedyLoop(session, shape, [464, 2068, 7586], DECODE_TOKENS, batch);
  const step = median(run.stepMs);
  process.stdout.write(
    `  B=${String(batch).padEnd(3)} step ${r1(step)} ms, ${r1((1000 * batch) / step)} tok/s\n`,
  );
}
await session.release();
