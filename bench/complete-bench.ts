/**
 * `npm run bench`: the gateway on the embedded backend versus the floor (a bare onnxruntime-node
 * greedy loop on the same model file, same process, same run), on the full-size gpt2
 * architecture (random weights; speed does not depend on their values).
 *
 * Reports per-token latency at batch 1, tokens/s at concurrency 1, 4 and 16 (with batched KV
 * decoding on and off), the ratio of each to the floor, and the gateway's own overhead per token
 * (request time minus backend time). Results also go to bench/results/<time>.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { Pool } from 'undici';
import { buildApp } from '../src/app.js';
import { DEFAULT_MODEL_NAME, ensureDefaultModel } from '../src/backends/embedded/default-model.js';
import { EmbeddedBackend } from '../src/backends/embedded/embedded-backend.js';
import { loadConfig } from '../src/config.js';
import { NAMED_CONFIGS } from '../src/model/configs.js';
import { loadGpt2Tokenizer } from '../src/tokenizer/gpt2-tokenizer.js';
import { plainGreedyLoop } from './plain-loop.js';

const PROMPT = 'I love Artificial Intelligence';
const DEFAULT_NEW_TOKENS = 32;
const CONCURRENCY = [1, 4, 16];

const HELP = `Usage: npm run bench -- [--tokens N] [--repo DIR]

Benchmarks POST /complete on the embedded backend against a bare onnxruntime-node greedy loop on
the same model (<repo>/${DEFAULT_MODEL_NAME}, built once if missing).
  --tokens N   tokens generated per request (default ${DEFAULT_NEW_TOKENS})
  --repo DIR   model repository (default ./models)
`;

interface Completion {
  tokens: { id: number; since_previous_ms: number }[];
  timings: { backend_ms: number; total_ms: number };
}

interface GatewayRow {
  batchDecode: boolean;
  concurrency: number;
  perTokenMs: number;
  tokensPerSecond: number;
  vsFloorSameBatch: number;
  vsFloorBatch1: number;
  overheadPerTokenMs: number;
  serverOverheadPerTokenMs: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const r2 = (x: number) => Math.round(x * 100) / 100;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      tokens: { type: 'string', default: String(DEFAULT_NEW_TOKENS) },
      repo: { type: 'string', default: './models' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const newTokens = Number(values.tokens);
  if (!Number.isInteger(newTokens) || newTokens < 2 || newTokens > 512) {
    process.stderr.write('bench: --tokens must be an integer from 2 to 512\n');
    return 2;
  }
  const log = pino({ level: 'info' });
  const modelFile = join(values.repo, DEFAULT_MODEL_NAME, '1', 'model.onnx');
  await ensureDefaultModel(values.repo, modelFile, log);
  const prompt = loadGpt2Tokenizer().encode(PROMPT);
  const g = NAMED_CONFIGS.gpt2;
  const shape = {
    nLayer: g.nLayer,
    nHead: g.nHead,
    headDim: g.nEmbd / g.nHead,
    vocab: g.vocabSize,
  };

  // The floor, batch 1, 4 and 16.
  const session = await ort.InferenceSession.create(modelFile, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
  });
  await plainGreedyLoop(session, shape, prompt, 3, 1);
  const floor: Record<number, { stepMs: number; tokensPerSecond: number }> = {};
  let floorTokens: number[] = [];
  for (const batch of CONCURRENCY) {
    const started = performance.now();
    const run = await plainGreedyLoop(session, shape, prompt, newTokens, batch);
    const seconds = (performance.now() - started) / 1000;
    floor[batch] = {
      stepMs: r2(median(run.stepMs)),
      tokensPerSecond: r2((batch * newTokens) / seconds),
    };
    if (batch === 1) floorTokens = run.tokens[0]!;
    log.info({ batch, ...floor[batch] }, 'floor');
  }
  await session.release();

  const gateway: GatewayRow[] = [];
  let gatewayTokens: number[] = [];
  for (const batchDecode of [true, false]) {
    const backend = new EmbeddedBackend({ modelFile, modelName: DEFAULT_MODEL_NAME, batchDecode });
    await backend.init();
    const config = loadConfig({
      RATE_LIMIT_MAX: '0',
      MAX_BATCH_SIZE: '16',
      MAX_QUEUE: '64',
      LOG_LEVEL: 'warn',
    });
    const app = await buildApp(config, { backend });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 32 });
    const ask = async () => {
      const started = performance.now();
      const res = await pool.request({
        method: 'POST',
        path: '/complete',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: PROMPT, max_new_tokens: newTokens }),
      });
      const body = (await res.body.json()) as Completion;
      if (res.statusCode !== 200)
        throw new Error(`HTTP ${res.statusCode}: ${JSON.stringify(body)}`);
      return { body, clientMs: performance.now() - started };
    };
    gatewayTokens = (await ask()).body.tokens.map((t) => t.id);
    for (const concurrency of batchDecode ? CONCURRENCY : CONCURRENCY.slice(1)) {
      const rounds = concurrency === 1 ? 3 : 1;
      const started = performance.now();
      const answers = (
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            const mine = [];
            for (let i = 0; i < rounds; i++) mine.push(await ask());
            return mine;
          }),
        )
      ).flat();
      const seconds = (performance.now() - started) / 1000;
      const generated = answers.reduce((n, a) => n + a.body.tokens.length, 0);
      const gaps = answers.flatMap((a) => a.body.tokens.slice(1).map((t) => t.since_previous_ms));
      const tokensPerSecond = generated / seconds;
      const row: GatewayRow = {
        batchDecode,
        concurrency,
        perTokenMs: r2(median(gaps)),
        tokensPerSecond: r2(tokensPerSecond),
        vsFloorSameBatch: r2(tokensPerSecond / floor[concurrency]!.tokensPerSecond),
        vsFloorBatch1: r2(tokensPerSecond / floor[1]!.tokensPerSecond),
        // Request time (as the client saw it) minus the backend steps, per generated token.
        overheadPerTokenMs: r2(
          mean(answers.map((a) => (a.clientMs - a.body.timings.backend_ms) / a.body.tokens.length)),
        ),
        serverOverheadPerTokenMs: r2(
          mean(
            answers.map(
              (a) => (a.body.timings.total_ms - a.body.timings.backend_ms) / a.body.tokens.length,
            ),
          ),
        ),
      };
      gateway.push(row);
      log.info(row, 'gateway');
    }
    await pool.close();
    await app.close();
    await backend.close();
  }

  const result = {
    when: new Date().toISOString(),
    machine: `${cpus().length} CPUs, ${cpus()[0]?.model ?? 'unknown'}`,
    runtime: `node ${process.version}, onnxruntime-node ${ort.env.versions.common}`,
    model: `${DEFAULT_MODEL_NAME} (gpt2 architecture, 124M, random weights, fp32, kv)`,
    prompt: PROMPT,
    newTokens,
    sameTokensAsFloor: JSON.stringify(floorTokens) === JSON.stringify(gatewayTokens),
    floor,
    gateway,
  };
  await mkdir('bench/results', { recursive: true });
  const out = join('bench/results', `${result.when.replace(/[:.]/g, '-')}.json`);
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\n${formatTable(result)}\nwritten to ${out}\n`);
  return result.sameTokensAsFloor ? 0 : 1;
}

function formatTable(r: {
  floor: Record<number, { stepMs: number; tokensPerSecond: number }>;
  gateway: GatewayRow[];
  sameTokensAsFloor: boolean;
}): string {
  const pad = (v: unknown, n: number) => String(v).padStart(n);
  return [
    `gateway tokens identical to the floor's: ${r.sameTokensAsFloor}`,
    'floor (bare onnxruntime-node loop, B sequences per run):',
    ...Object.entries(r.floor).map(
      ([b, f]) =>
        `  B=${b.padEnd(3)} step ${pad(f.stepMs, 7)} ms  ${pad(f.tokensPerSecond, 7)} tok/s`,
    ),
    'gateway (POST /complete, c concurrent clients, closed loop):',
    '  batchDecode   c  per-token ms    tok/s  ÷floor(B=c)  ÷floor(B=1)  overhead ms/token client, server',
    ...r.gateway.map(
      (g) =>
        `  ${String(g.batchDecode).padEnd(11)} ${pad(g.concurrency, 3)} ${pad(g.perTokenMs, 13)} ${pad(g.tokensPerSecond, 8)} ${pad(g.vsFloorSameBatch, 12)} ${pad(g.vsFloorBatch1, 12)}  ${g.overheadPerTokenMs}, ${g.serverOverheadPerTokenMs}`,
    ),
  ].join('\n');
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
