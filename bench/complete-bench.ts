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
/** Interleaved floor/gateway rounds; figures are medians over them. */
const ROUNDS = 5;

const HELP = `Usage: npm run bench -- [--tokens N] [--repo DIR] [--fused]

Benchmarks POST /complete on the embedded backend against a bare onnxruntime-node greedy loop on
the same model (<repo>/${DEFAULT_MODEL_NAME}, built once if missing).
  --tokens N   tokens generated per request (default ${DEFAULT_NEW_TOKENS})
  --repo DIR   model repository (default ./models)
  --fused      use the graph with onnxruntime's fused operators (${DEFAULT_MODEL_NAME}-fused)
`;

interface Completion {
  tokens: { id: number; since_previous_ms: number }[];
  timings: { backend_ms: number; total_ms: number; queue_ms: number };
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
  serverOverheadExQueuePerTokenMs: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const r2 = (x: number) => Math.round(x * 100) / 100;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      tokens: { type: 'string', default: String(DEFAULT_NEW_TOKENS) },
      repo: { type: 'string', default: './models' },
      fused: { type: 'boolean', default: false },
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
  const modelName = values.fused ? `${DEFAULT_MODEL_NAME}-fused` : DEFAULT_MODEL_NAME;
  const modelFile = join(values.repo, modelName, '1', 'model.onnx');
  await ensureDefaultModel(values.repo, modelFile, log, { name: modelName, fused: values.fused });
  const prompt = loadGpt2Tokenizer().encode(PROMPT);
  const g = NAMED_CONFIGS.gpt2;
  const shape = {
    nLayer: g.nLayer,
    nHead: g.nHead,
    headDim: g.nEmbd / g.nHead,
    vocab: g.vocabSize,
  };

  // Floor and gateway run interleaved, round after round, so that background load (the build
  // machine is shared) hits both alike; each figure is the median over rounds.
  const session = await ort.InferenceSession.create(modelFile, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
  });
  await plainGreedyLoop(session, shape, prompt, 3, 1);
  const config = loadConfig({
    RATE_LIMIT_MAX: '0',
    MAX_BATCH_SIZE: '16',
    MAX_QUEUE: '64',
    LOG_LEVEL: 'warn',
  });
  const gateways = new Map<boolean, Gateway>();
  for (const batchDecode of [true, false]) {
    gateways.set(batchDecode, await startGateway(config, modelFile, modelName, batchDecode));
  }
  const floorRounds = new Map<number, { stepMs: number; tokensPerSecond: number }[]>();
  const gatewayRounds = new Map<string, GatewayRow[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const concurrency of CONCURRENCY) {
      const started = performance.now();
      const run = await plainGreedyLoop(session, shape, prompt, newTokens, concurrency);
      const seconds = (performance.now() - started) / 1000;
      const f = {
        stepMs: median(run.stepMs),
        tokensPerSecond: (concurrency * newTokens) / seconds,
      };
      floorRounds.set(concurrency, [...(floorRounds.get(concurrency) ?? []), f]);
      log.info({ round, concurrency, ...f }, 'floor');
      for (const batchDecode of concurrency === 1 ? [true] : [true, false]) {
        const row = await measure(
          gateways.get(batchDecode)!,
          batchDecode,
          concurrency,
          newTokens,
          f,
        );
        const key = `${batchDecode}/${concurrency}`;
        gatewayRounds.set(key, [...(gatewayRounds.get(key) ?? []), row]);
        log.info({ round, ...row }, 'gateway');
      }
    }
  }
  const floorTokens = (await plainGreedyLoop(session, shape, prompt, newTokens, 1)).tokens[0]!;
  const gatewayTokens = (await gateways.get(true)!.ask(newTokens)).body.tokens.map((t) => t.id);
  await session.release();
  for (const gateway of gateways.values()) await gateway.close();

  const floor: Record<number, { stepMs: number; tokensPerSecond: number }> = {};
  for (const [concurrency, rounds] of floorRounds) {
    floor[concurrency] = {
      stepMs: r2(median(rounds.map((f) => f.stepMs))),
      tokensPerSecond: r2(median(rounds.map((f) => f.tokensPerSecond))),
    };
  }
  const gateway: GatewayRow[] = [...gatewayRounds.values()].map((rows) => {
    const pick = (k: keyof GatewayRow) => r2(median(rows.map((r) => r[k] as number)));
    return {
      batchDecode: rows[0]!.batchDecode,
      concurrency: rows[0]!.concurrency,
      perTokenMs: pick('perTokenMs'),
      tokensPerSecond: pick('tokensPerSecond'),
      vsFloorSameBatch: pick('vsFloorSameBatch'),
      vsFloorBatch1: r2(median(rows.map((r) => r.tokensPerSecond)) / floor[1]!.tokensPerSecond),
      overheadPerTokenMs: pick('overheadPerTokenMs'),
      serverOverheadPerTokenMs: pick('serverOverheadPerTokenMs'),
      serverOverheadExQueuePerTokenMs: pick('serverOverheadExQueuePerTokenMs'),
    };
  });

  const result = {
    when: new Date().toISOString(),
    machine: `${cpus().length} CPUs, ${cpus()[0]?.model ?? 'unknown'}`,
    runtime: `node ${process.version}, onnxruntime-node ${ort.env.versions.common}`,
    model: `${modelName} (gpt2 architecture, 124M, random weights, fp32, kv${values.fused ? ', fused operators' : ''})`,
    prompt: PROMPT,
    newTokens,
    rounds: ROUNDS,
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

interface Gateway {
  ask(newTokens: number): Promise<{ body: Completion; clientMs: number }>;
  close(): Promise<void>;
}

async function startGateway(
  config: ReturnType<typeof loadConfig>,
  modelFile: string,
  modelName: string,
  batchDecode: boolean,
): Promise<Gateway> {
  const backend = new EmbeddedBackend({ modelFile, modelName, batchDecode });
  await backend.init();
  const app = await buildApp(config, { backend });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 32 });
  return {
    async ask(newTokens) {
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
      if (body.tokens.length !== newTokens) throw new Error('the gateway stopped early');
      return { body, clientMs: performance.now() - started };
    },
    async close() {
      await pool.close();
      await app.close();
      await backend.close();
    },
  };
}

/** `concurrency` clients, each sending its requests one after another (a closed loop). */
async function measure(
  gateway: Gateway,
  batchDecode: boolean,
  concurrency: number,
  newTokens: number,
  floor: { tokensPerSecond: number },
): Promise<GatewayRow> {
  const started = performance.now();
  const answers = await Promise.all(
    Array.from({ length: concurrency }, () => gateway.ask(newTokens)),
  );
  const seconds = (performance.now() - started) / 1000;
  const generated = answers.reduce((n, a) => n + a.body.tokens.length, 0);
  const gaps = answers.flatMap((a) => a.body.tokens.slice(1).map((t) => t.since_previous_ms));
  const perToken = (f: (a: (typeof answers)[number]) => number) =>
    mean(answers.map((a) => f(a) / a.body.tokens.length));
  const tokensPerSecond = generated / seconds;
  return {
    batchDecode,
    concurrency,
    perTokenMs: median(gaps),
    tokensPerSecond,
    vsFloorSameBatch: tokensPerSecond / floor.tokensPerSecond,
    vsFloorBatch1: 0,
    // Request time as the client saw it, minus the backend steps, per generated token.
    overheadPerTokenMs: perToken((a) => a.clientMs - a.body.timings.backend_ms),
    serverOverheadPerTokenMs: perToken((a) => a.body.timings.total_ms - a.body.timings.backend_ms),
    // The same without waiting for the step already in progress at arrival.
    serverOverheadExQueuePerTokenMs: perToken(
      (a) => a.body.timings.total_ms - a.body.timings.backend_ms - a.body.timings.queue_ms,
    ),
  };
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
    '  batchDecode   c  per-token ms    tok/s  ÷floor(B=c)  ÷floor(B=1)  overhead ms/token: client, server, server ex-queue',
    ...r.gateway.map(
      (g) =>
        `  ${String(g.batchDecode).padEnd(11)} ${pad(g.concurrency, 3)} ${pad(g.perTokenMs, 13)} ${pad(g.tokensPerSecond, 8)} ${pad(g.vsFloorSameBatch, 12)} ${pad(g.vsFloorBatch1, 12)}  ${g.overheadPerTokenMs}, ${g.serverOverheadPerTokenMs}, ${g.serverOverheadExQueuePerTokenMs}`,
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
