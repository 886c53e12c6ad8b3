/**
 * `npm run bench:wire [-- --config tiny|gpt2 --tokens N --runs N]`: bytes on the wire and the
 * gateway's overhead per generated token, for every variant and wire mode, gateway → model-server
 * over loopback, beside the notebook's way measured in the same run.
 *
 * - The model server runs in a child process (`gpt2-gateway model-server`), so it does not share
 *   the gateway's event loop.
 * - Bytes are counted by a TCP proxy between the gateway and the model server: both directions,
 *   HTTP headers included — what really crosses the wire.
 * - Gateway overhead per token = (request total_ms − time spent waiting for upstream calls) /
 *   tokens, the wait being the gateway's own gpt2_gateway_upstream_request_duration_seconds.
 * - The notebook's way (Seldon's GPT-2 example): the seed-signature model, no `outputs` in the
 *   request (every output as JSON: logits of every position plus past_key_values), and the whole
 *   text re-encoded by the tokenizer at each step.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { Pool } from 'undici';
import { buildApp } from '../src/app.js';
import { TritonBackend } from '../src/backends/triton/triton-backend.js';
import { loadConfig } from '../src/config.js';
import type { ModelVariant } from '../src/contract/model.js';
import { isNamedConfig, NAMED_CONFIGS } from '../src/model/configs.js';
import { writeModelRepository } from '../src/model/model-repository.js';
import { loadGpt2Tokenizer } from '../src/tokenizer/gpt2-tokenizer.js';

const PROMPT = 'I love Artificial Intelligence';
const MODELS: { name: string; variant: ModelVariant; seed: boolean; fullLogits?: boolean }[] = [
  { name: 'logits', variant: 'logits', seed: false },
  { name: 'last', variant: 'last', seed: false },
  { name: 'next-token', variant: 'next-token', seed: false },
  { name: 'kv', variant: 'kv', seed: false },
  // The kv graph before it gathered the last position: the prompt's logits come back in full.
  { name: 'kv-full-logits', variant: 'kv', seed: false, fullLogits: true },
  { name: 'notebook', variant: 'logits', seed: true },
];

const { values: args } = parseArgs({
  options: {
    config: { type: 'string', default: 'tiny' },
    tokens: { type: 'string', default: '16' },
    runs: { type: 'string', default: '3' },
  },
});
const configName = args.config ?? 'tiny';
if (!isNamedConfig(configName)) throw new Error(`--config must be tiny or gpt2, not ${configName}`);
const NEW_TOKENS = Number(args.tokens);
const RUNS = Number(args.runs);

/** A byte-counting TCP proxy in front of the model server. */
class CountingProxy {
  up = 0;
  down = 0;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  constructor(target: number) {
    this.#server = createServer((client) => {
      const upstream = createConnection(target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.on('data', (b: Buffer) => {
        this.up += b.byteLength;
        upstream.write(b);
      });
      upstream.on('data', (b: Buffer) => {
        this.down += b.byteLength;
        client.write(b);
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }
  async listen(): Promise<number> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    return (this.#server.address() as { port: number }).port;
  }
  reset(): void {
    this.up = 0;
    this.down = 0;
  }
  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    this.#server.close();
  }
}

async function startModelServer(repo: string): Promise<{ port: number; stop(): Promise<void> }> {
  const cli = resolve(import.meta.dirname, '../src/cli.js');
  const child = spawn(
    process.execPath,
    [cli, 'model-server', '--repo', repo, '--port', '0', '--host', '127.0.0.1'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  for await (const chunk of child.stdout) {
    out += String(chunk);
    const m = /on http:\/\/[^:]+:(\d+)/.exec(out);
    if (m) {
      return {
        port: Number(m[1]),
        stop: async () => {
          child.kill('SIGTERM');
          await once(child, 'exit');
        },
      };
    }
  }
  throw new Error(`model-server exited: ${out}`);
}

interface Row {
  readonly way: string;
  readonly msPerToken: number;
  readonly bytesPerToken: number;
  readonly upBytesPerToken: number;
  readonly overheadMsPerToken: number | undefined;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

async function upstreamSeconds(registry: Registry): Promise<number> {
  const text = await registry.getSingleMetricAsString(
    'gpt2_gateway_upstream_request_duration_seconds',
  );
  const m =
    /gpt2_gateway_upstream_request_duration_seconds_sum\{endpoint="infer"\} ([\d.e+-]+)/.exec(text);
  return m ? Number(m[1]) : 0;
}

async function gatewayWay(
  proxy: CountingProxy,
  proxyPort: number,
  model: string,
  wire: 'binary' | 'json',
): Promise<Row> {
  const tokenizer = loadGpt2Tokenizer();
  const registry = new Registry();
  const backend = new TritonBackend({
    url: `http://127.0.0.1:${proxyPort}`,
    modelName: model,
    wire,
    timeoutMs: 600_000,
    connections: 4,
    healthIntervalMs: 0,
    startupTimeoutMs: 0,
  });
  backend.registerMetrics(registry);
  const app = await buildApp(loadConfig({ RATE_LIMIT_MAX: '0', MAX_NEW_TOKENS_LIMIT: '1000' }), {
    backend,
    tokenizer,
  });
  await backend.init();
  const request = () =>
    app.inject({
      method: 'POST',
      url: '/complete',
      payload: { prompt: PROMPT, max_new_tokens: NEW_TOKENS, stop: [] },
    });
  await request(); // warm-up
  const perToken: number[] = [];
  const overheads: number[] = [];
  let bytes = 0;
  let upBytes = 0;
  let tokens = 0;
  for (let r = 0; r < RUNS; r++) {
    await sleep(20); // let the previous request's sequence END settle before counting
    proxy.reset();
    const before = await upstreamSeconds(registry);
    const res = await request();
    const body = res.json<{ tokens: unknown[]; timings: { total_ms: number } }>();
    const waited = ((await upstreamSeconds(registry)) - before) * 1000;
    await sleep(20);
    const n = body.tokens.length;
    tokens += n;
    bytes += proxy.up + proxy.down;
    upBytes += proxy.up;
    perToken.push(body.timings.total_ms / n);
    overheads.push((body.timings.total_ms - waited) / n);
  }
  await app.close();
  await backend.close();
  return {
    way: `${model === 'notebook' ? "notebook's model via the gateway" : model} / ${wire}`,
    msPerToken: median(perToken),
    bytesPerToken: bytes / tokens,
    upBytesPerToken: upBytes / tokens,
    overheadMsPerToken: median(overheads),
  };
}

/** Seldon's notebook loop: re-encode the whole text, ask for every output as JSON, argmax. */
async function notebookWay(proxy: CountingProxy, proxyPort: number): Promise<Row> {
  const tokenizer = loadGpt2Tokenizer();
  const pool = new Pool(`http://127.0.0.1:${proxyPort}`, { connections: 1 });
  const generate = async (): Promise<number> => {
    let text = PROMPT;
    for (let i = 0; i < NEW_TOKENS; i++) {
      const ids = tokenizer.encode(text);
      const body = JSON.stringify({
        inputs: [
          { name: 'input_ids:0', datatype: 'INT32', shape: [1, ids.length], data: [ids] },
          {
            name: 'attention_mask:0',
            datatype: 'INT32',
            shape: [1, ids.length],
            data: [ids.map(() => 1)],
          },
        ],
      });
      const res = await pool.request({
        path: '/v2/models/notebook/infer',
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      });
      const json = (await res.body.json()) as {
        outputs: { name: string; shape: number[]; data: number[] }[];
      };
      const logits = json.outputs.find((o) => o.name === 'logits');
      if (logits === undefined) throw new Error('no logits');
      const vocab = logits.shape[2] ?? 0;
      const off = (ids.length - 1) * vocab;
      let best = 0;
      for (let v = 1; v < vocab; v++)
        if ((logits.data[off + v] ?? 0) > (logits.data[off + best] ?? 0)) best = v;
      text += tokenizer.decode([best]);
    }
    return NEW_TOKENS;
  };
  await generate();
  const perToken: number[] = [];
  let bytes = 0;
  let upBytes = 0;
  let tokens = 0;
  for (let r = 0; r < RUNS; r++) {
    proxy.reset();
    const t0 = performance.now();
    const n = await generate();
    perToken.push((performance.now() - t0) / n);
    tokens += n;
    bytes += proxy.up + proxy.down;
    upBytes += proxy.up;
  }
  await pool.close();
  return {
    way: 'notebook (seed signature, all outputs JSON, text re-encoded)',
    msPerToken: median(perToken),
    bytesPerToken: bytes / tokens,
    upBytesPerToken: upBytes / tokens,
    overheadMsPerToken: undefined,
  };
}

const fmtBytes = (b: number) =>
  b >= 1e6
    ? `${(b / 1e6).toFixed(2)} MB`
    : b >= 1e3
      ? `${(b / 1e3).toFixed(1)} kB`
      : `${b.toFixed(0)} B`;

async function main(): Promise<void> {
  const config = NAMED_CONFIGS[configName as 'tiny' | 'gpt2'];
  const repo = await mkdtemp(join(tmpdir(), 'gpt2-bench-wire-'));
  try {
    for (const m of MODELS) {
      await writeModelRepository({
        repository: repo,
        name: m.name,
        config,
        weights: { kind: 'random', seed: 1 },
        variant: m.variant,
        seedSignature: m.seed,
        fullLogits: m.fullLogits ?? false,
        instanceKind: 'cpu',
      });
    }
    const ms = await startModelServer(repo);
    const proxy = new CountingProxy(ms.port);
    const proxyPort = await proxy.listen();
    try {
      const rows: Row[] = [await notebookWay(proxy, proxyPort)];
      for (const m of MODELS) {
        for (const wire of ['binary', 'json'] as const)
          rows.push(await gatewayWay(proxy, proxyPort, m.name, wire));
      }
      const nb = rows[0] as Row;
      process.stdout.write(
        `\nbench:wire — ${configName} architecture (${config.nLayer} layers, d=${config.nEmbd}), random weights, prompt "${PROMPT}" (4 tokens), ${NEW_TOKENS} new tokens, median of ${RUNS} runs, concurrency 1, loopback; model server in a child process\n\n`,
      );
      process.stdout.write(
        '| way (model / wire) | bytes/token (both ways) | of which sent | vs notebook | ms/token end to end | vs notebook | gateway overhead ms/token |\n|---|---:|---:|---:|---:|---:|---:|\n',
      );
      for (const r of rows) {
        const base = r === nb;
        const smaller = base
          ? 'baseline'
          : `${(nb.bytesPerToken / r.bytesPerToken).toFixed(1)}x smaller`;
        const faster = base ? 'baseline' : `${(nb.msPerToken / r.msPerToken).toFixed(1)}x faster`;
        const overhead =
          r.overheadMsPerToken === undefined ? 'n/a' : r.overheadMsPerToken.toFixed(3);
        process.stdout.write(
          `| ${r.way} | ${fmtBytes(r.bytesPerToken)} | ${fmtBytes(r.upBytesPerToken)} | ${smaller} | ${r.msPerToken.toFixed(2)} | ${faster} | ${overhead} |\n`,
        );
      }
    } finally {
      await proxy.close();
      await ms.stop();
    }
  } finally {
    await rm(repo, { recursive: true, force: true });
  }
}

await main();
