/**
 * `npm run bench`: the gateway on the embedded backend (its inference worker, as `serve` runs it)
 * versus the floor (a bare onnxruntime-node greedy loop on the same model file, same process and
 * run, in a thread of its own as the inference worker is), on the full-size gpt2 architecture
 * (random weights; speed does not depend on their values).
 *
 * Reports per-token latency at batch 1, tokens/s at concurrency 1, 4 and 16, the ratio of each to
 * the floor at the same batch, and the gateway's own overhead per token (request time minus
 * backend time). Then, under load: GET /healthz latency while eight ~1000-token prompts are
 * served, a running stream's largest inter-token gap while four such prompts arrive (as a
 * multiple of its unloaded median gap), and an open-loop load test of short requests at
 * 10 requests/s. Results also go to bench/results/<time>.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { Pool } from 'undici';
import { buildApp } from '../src/app.js';
import { DEFAULT_MODEL_NAME, ensureDefaultModel } from '../src/backends/embedded/default-model.js';
import { WorkerBackend } from '../src/backends/embedded/worker-backend.js';
import { loadConfig } from '../src/config.js';
import { attack } from '../src/loadtest/attack.js';
import { summarize } from '../src/loadtest/summary.js';
import { NAMED_CONFIGS } from '../src/model/configs.js';
import { loadGpt2Tokenizer } from '../src/tokenizer/gpt2-tokenizer.js';
import { FloorWorker } from './floor-worker.js';

const PROMPT = 'I love Artificial Intelligence';
const DEFAULT_NEW_TOKENS = 32;
const CONCURRENCY = [1, 4, 16];
/** Interleaved floor/gateway rounds; figures are medians over them. */
const ROUNDS = 5;
/** Prompt length of the long prompts the load phase sends (n_positions is 1024). */
const LONG_PROMPT_TOKENS = 1000;
const LONG_PROMPT_NEW_TOKENS = 8;
/** Long prompts served at once while /healthz is probed, and arriving during a stream. */
const PROBE_LONG_PROMPTS = 8;
const GAP_LONG_PROMPTS = 4;
/** Stream tokens measured before the long prompts arrive (its unloaded gaps). */
const UNLOADED_STREAM_TOKENS = 24;
/** Long enough to outlast the long prompts' arrival (PROMPT is 5 tokens; n_positions 1024). */
const STREAM_NEW_TOKENS = 1000;
/** The origin notebook's load test, at ten times its rate. */
const LOADTEST_PROMPT = 'I enjoy working in Seldon';
const LOADTEST_NEW_TOKENS = 8;
const LOADTEST_RATE = 10;
const DEFAULT_LOADTEST_SECONDS = 30;

const HELP = `Usage: npm run bench -- [--tokens N] [--repo DIR] [--fused] [--prefill-chunk N] [--prefill-slowdown N] [--loadtest-seconds S]

Benchmarks POST /complete on the embedded backend against a bare onnxruntime-node greedy loop on
the same model (<repo>/${DEFAULT_MODEL_NAME}, built once if missing).
  --tokens N   tokens generated per request (default ${DEFAULT_NEW_TOKENS})
  --repo DIR   model repository (default ./models)
  --fused      use the graph with onnxruntime's fused operators (${DEFAULT_MODEL_NAME}-fused)
  --prefill-chunk N     PREFILL_CHUNK_TOKENS for the gateway (default: the config's)
  --prefill-slowdown N  PREFILL_STEP_SLOWDOWN for the gateway (default: the config's; 0: fixed chunks)
  --loadtest-seconds S  length of the ${LOADTEST_RATE} requests/s load test (default ${DEFAULT_LOADTEST_SECONDS}; 0 skips it)
`;

interface Completion {
  tokens: { id: number; since_previous_ms: number }[];
  timings: { backend_ms: number; total_ms: number; queue_ms: number };
}

interface GatewayRow {
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
      'loadtest-seconds': { type: 'string', default: String(DEFAULT_LOADTEST_SECONDS) },
      'prefill-chunk': { type: 'string' },
      'prefill-slowdown': { type: 'string' },
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
  const loadtestSeconds = Number(values['loadtest-seconds']);
  if (!Number.isInteger(loadtestSeconds) || loadtestSeconds < 0) {
    process.stderr.write('bench: --loadtest-seconds must be a whole number\n');
    return 2;
  }
  const log = pino({ level: 'info' });
  const modelName = values.fused ? `${DEFAULT_MODEL_NAME}-fused` : DEFAULT_MODEL_NAME;
  const modelFile = join(values.repo, modelName, '1', 'model.onnx');
  await ensureDefaultModel(values.repo, modelFile, log, { name: modelName, fused: values.fused });
  const tokenizer = loadGpt2Tokenizer();
  const prompt = tokenizer.encode(PROMPT);
  const g = NAMED_CONFIGS.gpt2;
  const shape = {
    nLayer: g.nLayer,
    nHead: g.nHead,
    headDim: g.nEmbd / g.nHead,
    vocab: g.vocabSize,
  };

  // Floor and gateway run interleaved, round after round, so that background load (the build
  // machine is shared) hits both alike; each figure is the median over rounds.
  // The floor runs in a thread of its own, as the gateway's inference does (floor-worker.ts).
  const floorLoop = new FloorWorker(modelFile, shape);
  await floorLoop.run(prompt, 3, 1);
  const config = loadConfig({
    RATE_LIMIT_MAX: '0',
    MAX_BATCH_SIZE: '16',
    MAX_QUEUE: '64',
    ...(values['prefill-chunk'] === undefined
      ? {}
      : { PREFILL_CHUNK_TOKENS: values['prefill-chunk'] }),
    ...(values['prefill-slowdown'] === undefined
      ? {}
      : { PREFILL_STEP_SLOWDOWN: values['prefill-slowdown'] }),
    // The stream under load runs up to the context length.
    MAX_NEW_TOKENS_LIMIT: String(STREAM_NEW_TOKENS),
    LOG_LEVEL: 'warn',
  });
  const gateway = await startGateway(config, modelFile, modelName);
  const floorRounds = new Map<number, { stepMs: number; tokensPerSecond: number }[]>();
  const gatewayRounds = new Map<number, GatewayRow[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const concurrency of CONCURRENCY) {
      const started = performance.now();
      const run = await floorLoop.run(prompt, newTokens, concurrency);
      const seconds = (performance.now() - started) / 1000;
      const f = {
        stepMs: median(run.stepMs),
        tokensPerSecond: (concurrency * newTokens) / seconds,
      };
      floorRounds.set(concurrency, [...(floorRounds.get(concurrency) ?? []), f]);
      log.info({ round, concurrency, ...f }, 'floor');
      const row = await measure(gateway, concurrency, newTokens, f);
      gatewayRounds.set(concurrency, [...(gatewayRounds.get(concurrency) ?? []), row]);
      log.info({ round, ...row }, 'gateway');
    }
  }
  const floorTokens = (await floorLoop.run(prompt, newTokens, 1)).tokens[0]!;
  const gatewayTokens = (await gateway.ask(newTokens)).body.tokens.map((t) => t.id);
  await floorLoop.close();
  const longPrompts = Array.from({ length: PROBE_LONG_PROMPTS }, (_, i) =>
    longPrompt(tokenizer, i),
  );
  const probe = await healthzDuringLongPrompts(gateway, longPrompts);
  log.info(probe, 'healthz during long prompts');
  const gap = await streamGapDuringLongPrompts(gateway, longPrompts.slice(0, GAP_LONG_PROMPTS));
  log.info(gap, 'stream gap during long prompts');
  const loadtest = loadtestSeconds === 0 ? undefined : await loadTest(gateway, loadtestSeconds);
  if (loadtest !== undefined) log.info(loadtest, 'load test');
  await gateway.close();

  const floor: Record<number, { stepMs: number; tokensPerSecond: number }> = {};
  for (const [concurrency, rounds] of floorRounds) {
    floor[concurrency] = {
      stepMs: r2(median(rounds.map((f) => f.stepMs))),
      tokensPerSecond: r2(median(rounds.map((f) => f.tokensPerSecond))),
    };
  }
  const rows: GatewayRow[] = [...gatewayRounds.values()].map((rows) => {
    const pick = (k: keyof GatewayRow) => r2(median(rows.map((r) => r[k] as number)));
    return {
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
    prefillChunkTokens: config.prefillChunkTokens,
    prefillStepSlowdown: config.prefillStepSlowdown,
    rounds: ROUNDS,
    sameTokensAsFloor: JSON.stringify(floorTokens) === JSON.stringify(gatewayTokens),
    loadAverage: loadavg().map(r2),
    floor,
    gateway: rows,
    load: { healthz: probe, streamGap: gap, loadtest },
  };
  await mkdir('bench/results', { recursive: true });
  const out = join('bench/results', `${result.when.replace(/[:.]/g, '-')}.json`);
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\n${formatTable(result)}\nwritten to ${out}\n`);
  return result.sameTokensAsFloor ? 0 : 1;
}

interface Gateway {
  ask(newTokens: number): Promise<{ body: Completion; clientMs: number }>;
  /** POST /complete with any body; resolves with the status once the answer is read. */
  complete(body: object): Promise<number>;
  /** A streamed completion: calls onToken as each token event arrives, until it ends or aborts. */
  stream(body: object, onToken: () => void, signal: AbortSignal): Promise<void>;
  healthz(): Promise<number>;
  readonly url: URL;
  close(): Promise<void>;
}

async function startGateway(
  config: ReturnType<typeof loadConfig>,
  modelFile: string,
  modelName: string,
): Promise<Gateway> {
  // As `serve` runs it: inference in a worker thread, the config's prefill chunk and watchdog.
  const backend = new WorkerBackend({
    modelFile,
    modelName,
    maxBatchSize: config.maxBatchSize,
    stepTimeoutMs: config.embeddedStepTimeoutMs,
  });
  await backend.init();
  const app = await buildApp(config, { backend });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const url = new URL(`http://127.0.0.1:${port}`);
  const pool = new Pool(url, { connections: 32 });
  // Probes get their own connection, so they never queue behind a completion on the client side.
  const probes = new Pool(url, { connections: 1 });
  const complete = async (body: object) => {
    const res = await pool.request({
      method: 'POST',
      path: '/complete',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    await res.body.text();
    return res.statusCode;
  };
  return {
    url,
    complete,
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
    async stream(body, onToken, signal) {
      const res = await pool.request({
        method: 'POST',
        path: '/complete',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...body, stream: true }),
        signal,
      });
      if (res.statusCode !== 200) throw new Error(`stream: HTTP ${res.statusCode}`);
      let pending = '';
      try {
        for await (const chunk of res.body) {
          pending += String(chunk);
          const events = pending.split('\n\n');
          pending = events.pop() ?? '';
          for (const event of events) if (event.startsWith('event: token')) onToken();
        }
      } catch (err) {
        if (!signal.aborted) throw err;
      }
    },
    async healthz() {
      const res = await probes.request({ method: 'GET', path: '/healthz' });
      await res.body.text();
      return res.statusCode;
    },
    async close() {
      await pool.close();
      await probes.close();
      await app.close();
      await backend.close();
    },
  };
}

/** `concurrency` clients, each sending its requests one after another (a closed loop). */
async function measure(
  gateway: Gateway,
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

/** A prompt of about LONG_PROMPT_TOKENS tokens, different for each i (nothing can be shared). */
function longPrompt(tokenizer: ReturnType<typeof loadGpt2Tokenizer>, i: number): string {
  const sentence = `Request ${i} asks the gateway to read a long document about serving models. `;
  const ids = tokenizer.encode(sentence.repeat(Math.ceil(LONG_PROMPT_TOKENS / 8)));
  return tokenizer.decode(ids.slice(0, LONG_PROMPT_TOKENS));
}

interface HealthzProbe {
  probes: number;
  maxMs: number;
  p99Ms: number;
  /** Every long prompt answered 200. */
  allCompleted: boolean;
  seconds: number;
}

/** Back-to-back GET /healthz while the long prompts are served together. */
async function healthzDuringLongPrompts(
  gateway: Gateway,
  prompts: readonly string[],
): Promise<HealthzProbe> {
  const started = performance.now();
  let done = false;
  const served = Promise.all(
    prompts.map((prompt) => gateway.complete({ prompt, max_new_tokens: LONG_PROMPT_NEW_TOKENS })),
  ).finally(() => {
    done = true;
  });
  const latencies: number[] = [];
  while (!done) {
    const sent = performance.now();
    await gateway.healthz();
    latencies.push(performance.now() - sent);
  }
  const statuses = await served;
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    probes: latencies.length,
    maxMs: r2(sorted.at(-1) ?? 0),
    p99Ms: r2(sorted[Math.max(0, Math.ceil(0.99 * sorted.length) - 1)] ?? 0),
    allCompleted: statuses.every((s) => s === 200),
    seconds: r2((performance.now() - started) / 1000),
  };
}

interface StreamGap {
  unloadedMedianGapMs: number;
  loadedMaxGapMs: number;
  ratio: number;
  allCompleted: boolean;
  /** From the long prompts' arrival to the last one's answer. */
  longPromptsSeconds: number;
}

/**
 * A stream runs alone for UNLOADED_STREAM_TOKENS tokens (its unloaded gaps), then the long
 * prompts arrive; its largest gap between token events until they have all been answered.
 */
async function streamGapDuringLongPrompts(
  gateway: Gateway,
  prompts: readonly string[],
): Promise<StreamGap> {
  const abort = new AbortController();
  const arrivals: number[] = [];
  let startLoad: () => void = () => undefined;
  const loadDue = new Promise<void>((resolve) => {
    startLoad = resolve;
  });
  const stream = gateway.stream(
    { prompt: PROMPT, max_new_tokens: STREAM_NEW_TOKENS },
    () => {
      arrivals.push(performance.now());
      if (arrivals.length === UNLOADED_STREAM_TOKENS) startLoad();
    },
    abort.signal,
  );
  // A stream that ends (or fails) before its unloaded tokens must not leave the bench waiting.
  await Promise.race([
    loadDue,
    stream.then(() => {
      throw new Error(`the stream ended after ${arrivals.length} tokens, before the load`);
    }),
  ]);
  const loadedFrom = performance.now();
  const statuses = await Promise.all(
    prompts.map((prompt) => gateway.complete({ prompt, max_new_tokens: LONG_PROMPT_NEW_TOKENS })),
  );
  const loadedUntil = performance.now();
  abort.abort();
  await stream;
  // Unloaded: gaps that ended before the load; loaded: gaps that overlap it, including the one
  // still open when the last long prompt was answered.
  const unloaded = median(
    arrivals.flatMap((t, k) => (k >= 2 && t < loadedFrom ? [t - arrivals[k - 1]!] : [])),
  );
  const loaded = arrivals.flatMap((t, k) =>
    k >= 1 && t >= loadedFrom && arrivals[k - 1]! <= loadedUntil ? [t - arrivals[k - 1]!] : [],
  );
  const last = arrivals.at(-1) ?? loadedFrom;
  if (last < loadedUntil) loaded.push(loadedUntil - Math.max(last, loadedFrom));
  const maxGap = Math.max(0, ...loaded);
  return {
    unloadedMedianGapMs: r2(unloaded),
    loadedMaxGapMs: r2(maxGap),
    ratio: r2(maxGap / unloaded),
    allCompleted: statuses.every((s) => s === 200),
    longPromptsSeconds: r2((loadedUntil - loadedFrom) / 1000),
  };
}

/** The origin notebook's load test: open loop, short prompt, 8 new tokens. */
async function loadTest(gateway: Gateway, seconds: number) {
  const result = summarize(
    await attack({
      url: new URL('/complete', gateway.url),
      rate: LOADTEST_RATE,
      durationMs: seconds * 1000,
      maxRequests: LOADTEST_RATE * seconds,
      concurrency: 1,
      maxInFlight: 256,
      timeoutMs: 30_000,
      bodies: [JSON.stringify({ prompt: LOADTEST_PROMPT, max_new_tokens: LOADTEST_NEW_TOKENS })],
      stream: false,
    }),
  );
  return {
    ratePerSecond: LOADTEST_RATE,
    seconds,
    requests: result.requests,
    success: r2(result.success),
    p50Ms: r2(result.latencyMs.p50),
    p99Ms: r2(result.latencyMs.p99),
    ttftP50Ms: result.ttftMs === null ? null : r2(result.ttftMs.p50),
  };
}

function formatTable(r: {
  prefillChunkTokens: number;
  prefillStepSlowdown: number;
  floor: Record<number, { stepMs: number; tokensPerSecond: number }>;
  gateway: GatewayRow[];
  sameTokensAsFloor: boolean;
  loadAverage: number[];
  load: {
    healthz: HealthzProbe;
    streamGap: StreamGap;
    loadtest: Awaited<ReturnType<typeof loadTest>> | undefined;
  };
}): string {
  const pad = (v: unknown, n: number) => String(v).padStart(n);
  const { healthz, streamGap, loadtest } = r.load;
  return [
    `load average at the end (1, 5, 15 min): ${r.loadAverage.join(', ')}; PREFILL_CHUNK_TOKENS ${r.prefillChunkTokens}, PREFILL_STEP_SLOWDOWN ${r.prefillStepSlowdown}`,
    `gateway tokens identical to the floor's: ${r.sameTokensAsFloor}`,
    'floor (bare onnxruntime-node loop, B sequences per run):',
    ...Object.entries(r.floor).map(
      ([b, f]) =>
        `  B=${b.padEnd(3)} step ${pad(f.stepMs, 7)} ms  ${pad(f.tokensPerSecond, 7)} tok/s`,
    ),
    'gateway (POST /complete, MAX_BATCH_SIZE 16, c concurrent clients, closed loop):',
    '    c  per-token ms    tok/s  ÷floor(B=c)  ÷floor(B=1)  overhead ms/token: client, server, server ex-queue',
    ...r.gateway.map(
      (g) =>
        `  ${pad(g.concurrency, 3)} ${pad(g.perTokenMs, 13)} ${pad(g.tokensPerSecond, 8)} ${pad(g.vsFloorSameBatch, 12)} ${pad(g.vsFloorBatch1, 12)}  ${g.overheadPerTokenMs}, ${g.serverOverheadPerTokenMs}, ${g.serverOverheadExQueuePerTokenMs}`,
    ),
    `under load (${LONG_PROMPT_TOKENS}-token prompts, ${LONG_PROMPT_NEW_TOKENS} new tokens each):`,
    `  GET /healthz during ${PROBE_LONG_PROMPTS} of them: max ${healthz.maxMs} ms, p99 ${healthz.p99Ms} ms over ${healthz.probes} probes (${healthz.seconds} s); all answered 200: ${healthz.allCompleted}`,
    `  a stream's largest gap while ${GAP_LONG_PROMPTS} arrive: ${streamGap.loadedMaxGapMs} ms = ${streamGap.ratio}× its unloaded median ${streamGap.unloadedMedianGapMs} ms; the ${GAP_LONG_PROMPTS} answered in ${streamGap.longPromptsSeconds} s; all 200: ${streamGap.allCompleted}`,
    loadtest === undefined
      ? '  load test: skipped'
      : `  load test (${loadtest.ratePerSecond} req/s for ${loadtest.seconds} s, "${LOADTEST_PROMPT}", ${LOADTEST_NEW_TOKENS} new tokens): ${loadtest.requests} requests, success ${loadtest.success}, p50 ${loadtest.p50Ms} ms, p99 ${loadtest.p99Ms} ms, time to first token p50 ${loadtest.ttftP50Ms} ms`,
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
