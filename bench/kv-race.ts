/**
 * `npm run bench:kv`: per-token latency of the kv variant, standard graph vs --fused, on the full
 * gpt2 architecture (random weights), with a bare onnxruntime-node greedy loop — the embedded
 * backend's hot path (the README records ≈13–16 ms/token for the plain graph on 2 cores).
 * Rounds alternate between the two files so background load hits both alike; ratios are
 * first ÷ second, of medians. Given two files (e.g. a standard and an --quantize int8 build),
 * races those instead.
 *
 *   node dist/bench/kv-race.js [--threads 2] [--prompt 8] [--tokens 32] [--rounds 3] [A.onnx B.onnx]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { understandSignature } from '../src/contract/signature.js';
import { buildOnnxModel } from '../src/model/build.js';
import { NAMED_CONFIGS } from '../src/model/configs.js';
import { readModelMetadata } from '../src/model/metadata.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    threads: { type: 'string', default: '2' },
    prompt: { type: 'string', default: '8' },
    tokens: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '3' },
  },
});

interface Contender {
  label: string;
  session: ort.InferenceSession;
  layers: { pastKey: string; pastValue: string; presentKey: string; presentValue: string }[];
  nHead: number;
  headDim: number;
  stepMs: number[];
  /** Process CPU time per step: steadier than wall time on a shared machine (use --threads 1,
   * since idle pool threads spin and bill CPU time too). */
  cpuMs: number[];
  tokens: number[];
}

async function load(label: string, file: string): Promise<Contender> {
  const sig = understandSignature(await readModelMetadata(file, label));
  if (sig.kv === undefined || sig.kv.implicitState) throw new Error(`${file} is not a kv model`);
  const session = await ort.InferenceSession.create(file, {
    intraOpNumThreads: Number(values.threads),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  return {
    label,
    session,
    layers: [...sig.kv.layers],
    nHead: sig.kv.nHead,
    headDim: sig.kv.headDim,
    stepMs: [],
    cpuMs: [],
    tokens: [],
  };
}

/** Prefill a fixed prompt, then `steps` greedy steps; returns ms per step (prefill excluded). */
async function decode(
  c: Contender,
  promptLen: number,
  steps: number,
): Promise<{ ms: number[]; cpu: number[]; tokens: number[] }> {
  let ids = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % 50000);
  let past: Record<string, ort.Tensor> = {};
  for (const l of c.layers) {
    for (const n of [l.pastKey, l.pastValue]) {
      past[n] = new ort.Tensor('float32', new Float32Array(0), [1, c.nHead, 0, c.headDim]);
    }
  }
  let seen = 0;
  const ms: number[] = [];
  const cpu: number[] = [];
  const tokens: number[] = [];
  for (let s = 0; s <= steps; s++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const total = seen + ids.length;
    const out = await c.session.run({
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
      position_ids: new ort.Tensor(
        'int64',
        BigInt64Array.from(ids.map((_, k) => BigInt(seen + k))),
        [1, ids.length],
      ),
      ...past,
    });
    const logits = out.logits!;
    const v = logits.dims[2]!;
    // Seq dim 1 (default kv build: last position only) or ids.length (--full-logits).
    const last = (logits.data as Float32Array).subarray((logits.dims[1]! - 1) * v);
    let best = 0;
    for (let i = 1; i < v; i++) if (last[i]! > last[best]!) best = i;
    const next: Record<string, ort.Tensor> = {};
    for (const l of c.layers) {
      next[l.pastKey] = out[l.presentKey]!;
      next[l.pastValue] = out[l.presentValue]!;
    }
    past = next;
    seen = total;
    ids = [best];
    tokens.push(best);
    if (s > 0) {
      ms.push(performance.now() - t0);
      const used = process.cpuUsage(c0);
      cpu.push((used.user + used.system) / 1000);
    }
  }
  return { ms, cpu, tokens };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

const dir = await mkdtemp(join(tmpdir(), 'bench-kv-'));
try {
  let files = positionals;
  if (files.length === 0) {
    files = [join(dir, 'standard.onnx'), join(dir, 'fused.onnx')];
    for (const [i, fused] of [false, true].entries()) {
      await buildOnnxModel(
        { config: NAMED_CONFIGS.gpt2, weights: { kind: 'random', seed: 0 }, variant: 'kv', fused },
        files[i]!,
      );
    }
  }
  const labels =
    positionals.length === 0 ? ['standard', 'fused'] : files.map((f) => basename(f, '.onnx'));
  const contenders = await Promise.all(files.map((f, i) => load(labels[i]!, f)));
  const prompt = Number(values.prompt);
  const tokens = Number(values.tokens);
  for (const c of contenders) await decode(c, prompt, 4); // warm-up
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const c of contenders) {
      const { ms, cpu, tokens: t } = await decode(c, prompt, tokens);
      c.stepMs.push(...ms);
      c.cpuMs.push(...cpu);
      c.tokens = t;
    }
  }
  const result: Record<string, unknown> = {
    threads: Number(values.threads),
    prompt,
    tokens_per_round: tokens,
    rounds: Number(values.rounds),
  };
  for (const c of contenders) {
    result[c.label] = {
      ms_per_token_median: Number(median(c.stepMs).toFixed(2)),
      ms_per_token_min: Number(Math.min(...c.stepMs).toFixed(2)),
      cpu_ms_per_token_median: Number(median(c.cpuMs).toFixed(2)),
    };
  }
  if (contenders.length === 2) {
    result.ratio_median = Number(
      (median(contenders[0]!.stepMs) / median(contenders[1]!.stepMs)).toFixed(3),
    );
    result.cpu_ratio_median = Number(
      (median(contenders[0]!.cpuMs) / median(contenders[1]!.cpuMs)).toFixed(3),
    );
    result.same_tokens = contenders[0]!.tokens.join() === contenders[1]!.tokens.join();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  for (const c of contenders) await c.session.release();
} finally {
  await rm(dir, { recursive: true, force: true });
}
