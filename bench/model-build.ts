/**
 * `npm run bench:build`: builds the full-size gpt2 architecture from random weights and reports
 * wall time, peak RSS (the builder streams weights, so it should stay far below the 498 MB of
 * weights) and the parameter count read back from the file (124,439,808: wte stored once).
 *
 *   node dist/bench/model-build.js [--variant kv] [--fused] [--keep FILE]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildOnnxModel, isVariant } from '../src/model/build.js';
import { NAMED_CONFIGS } from '../src/model/configs.js';
import { readModelSummary } from '../src/model/metadata.js';

const { values } = parseArgs({
  options: {
    variant: { type: 'string', default: 'kv' },
    fused: { type: 'boolean', default: false },
    keep: { type: 'string' },
  },
});
const variant = values.variant;
if (!isVariant(variant)) throw new Error(`unknown variant ${variant}`);
const dir = await mkdtemp(join(tmpdir(), 'bench-build-'));
const file = values.keep ?? join(dir, 'model.onnx');
try {
  const started = performance.now();
  const report = await buildOnnxModel(
    {
      config: NAMED_CONFIGS.gpt2,
      weights: { kind: 'random', seed: 0 },
      variant,
      fused: values.fused,
    },
    file,
  );
  const seconds = (performance.now() - started) / 1000;
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  const summary = await readModelSummary(file, 'gpt2');
  process.stdout.write(
    `${JSON.stringify({
      variant,
      fused: values.fused,
      seconds: Number(seconds.toFixed(2)),
      peak_rss_mb: Number(peakRssMb.toFixed(1)),
      weights_mb: Number(((summary.parameters * 4) / 1e6).toFixed(1)),
      file_mb: Number((report.bytes / 1e6).toFixed(1)),
      parameters_in_file: summary.parameters,
    })}\n`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
