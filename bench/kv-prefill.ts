/**
 * `npm run bench:prefill`: the kv prefill step of the embedded backend (the whole prompt, empty
 * past) on one model file: wall and process CPU time per prefill (CPU time is the steadier on a
 * shared machine: use --threads 1, as idle pool threads spin and bill CPU too) and the process's
 * peak RSS. Run one file per
 * process (peak RSS is a high-water mark), e.g. a default kv build against a --full-logits one.
 *
 *   node dist/bench/kv-prefill.js MODEL.onnx [--prompt 512] [--rows 1] [--runs 3] [--threads 2]
 */
import { parseArgs } from 'node:util';
import { EmbeddedBackend } from '../src/backends/embedded/embedded-backend.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    prompt: { type: 'string', default: '512' },
    rows: { type: 'string', default: '1' },
    runs: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
  },
});
const file = positionals[0];
if (file === undefined) throw new Error('give the kv model file to run');
const promptLen = Number(values.prompt);
const rows = Number(values.rows);
const runs = Number(values.runs);

const mb = (kb: number): string => `${Math.round(kb / 1024)} MB`;
const backend = new EmbeddedBackend({
  modelFile: file,
  modelName: 'bench',
  maxBatchSize: rows,
  intraOpNumThreads: Number(values.threads),
});
await backend.init();
const rssAfterInit = process.resourceUsage().maxRSS;
const ms: number[] = [];
const cpuMs: number[] = [];
let next = 1;
for (let run = 0; run <= runs; run++) {
  // Prompts of different content per row and run (fixed length: no padding).
  const batch = Array.from({ length: rows }, (_, r) => ({
    sequenceId: next++,
    tokens: Array.from({ length: promptLen }, (_, i) => (i * 7919 + r * 31 + run * 101) % 50000),
  }));
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await backend.step(batch);
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  if (run > 0) {
    // Run 0 warms the shapes up.
    ms.push(elapsed);
    cpuMs.push((cpu.user + cpu.system) / 1000);
  }
  for (const r of batch) await backend.release(r.sequenceId);
}
await backend.close();
const median = (xs: number[]): string => {
  const sorted = [...xs].sort((a, b) => a - b);
  return `${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} ms (min ${sorted[0]!.toFixed(0)})`;
};
console.log(
  `${file}: prefill ${rows} × ${promptLen} tokens, ${ms.length} runs: wall median ${median(ms)}, CPU median ${median(cpuMs)}; peak RSS ${mb(process.resourceUsage().maxRSS)} (after init ${mb(rssAfterInit)})`,
);
