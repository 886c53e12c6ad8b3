/**
 * Per-token latency of a kv model file with a bare onnxruntime-node greedy loop (the embedded
 * backend's hot path, DESIGN.md: ~15 ms/token for the plain graph on a 2-core machine).
 *
 *   node dist/bench/kv-decode.js MODEL.onnx [--threads 2] [--prompt 8] [--tokens 64]
 */
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { readModelMetadata } from '../src/model/metadata.js';
import { understandSignature } from '../src/model/signature.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    threads: { type: 'string', default: '2' },
    prompt: { type: 'string', default: '8' },
    tokens: { type: 'string', default: '64' },
    warmup: { type: 'string', default: '8' },
  },
});
const file = positionals[0];
if (file === undefined) {
  process.stderr.write('usage: kv-decode MODEL.onnx [--threads N] [--prompt N] [--tokens N]\n');
  process.exit(2);
}
const sig = understandSignature(await readModelMetadata(file, 'bench'));
if (sig.kv === undefined || sig.kv.implicitState) throw new Error(`${file} is not a kv model file`);
const kv = sig.kv;
const session = await ort.InferenceSession.create(file, {
  intraOpNumThreads: Number(values.threads),
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
});

async function decode(
  promptLen: number,
  steps: number,
): Promise<{ prefillMs: number; stepMs: number[]; tokens: number[] }> {
  const prompt = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % 50000);
  let ids = prompt;
  let past: Record<string, ort.Tensor> = {};
  for (const l of kv.layers) {
    for (const n of [l.pastKey, l.pastValue]) {
      past[n] = new ort.Tensor('float32', new Float32Array(0), [1, kv.nHead, 0, kv.headDim]);
    }
  }
  let seen = 0;
  const stepMs: number[] = [];
  const tokens: number[] = [];
  let prefillMs = 0;
  for (let s = 0; s <= steps; s++) {
    const t0 = performance.now();
    const total = seen + ids.length;
    const out = await session.run({
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
      position_ids: new ort.Tensor(
        'int64',
        BigInt64Array.from(ids.map((_, k) => BigInt(seen + k))),
        [1, ids.length],
      ),
      ...past,
    });
    const logits = out.logits!.data as Float32Array;
    const v = out.logits!.dims[2]!;
    const last = logits.subarray((ids.length - 1) * v);
    let best = 0;
    for (let i = 1; i < v; i++) if (last[i]! > last[best]!) best = i;
    const next: Record<string, ort.Tensor> = {};
    for (const l of kv.layers) {
      next[l.pastKey] = out[l.presentKey]!;
      next[l.pastValue] = out[l.presentValue]!;
    }
    past = next;
    seen = total;
    ids = [best];
    tokens.push(best);
    const ms = performance.now() - t0;
    if (s === 0) prefillMs = ms;
    else stepMs.push(ms);
  }
  return { prefillMs, stepMs, tokens };
}

await decode(Number(values.prompt), Number(values.warmup));
const r = await decode(Number(values.prompt), Number(values.tokens));
const sorted = [...r.stepMs].sort((a, b) => a - b);
const mean = r.stepMs.reduce((a, b) => a + b, 0) / r.stepMs.length;
const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
process.stdout.write(
  `${JSON.stringify({
    file,
    threads: Number(values.threads),
    prompt: Number(values.prompt),
    tokens: r.stepMs.length,
    prefill_ms: Number(r.prefillMs.toFixed(2)),
    ms_per_token_mean: Number(mean.toFixed(2)),
    ms_per_token_p50: Number(pct(0.5).toFixed(2)),
    ms_per_token_p90: Number(pct(0.9).toFixed(2)),
    first_tokens: r.tokens.slice(0, 8),
  })}\n`,
);
await session.release();
