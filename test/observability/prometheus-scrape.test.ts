/**
 * A real Prometheus (Debian's package; `npm test`'s pretest installs it) scrapes the gateway while
 * the load tester drives it: the key series appear with the numbers the load produced,
 * `promtool check metrics` finds nothing to report, and every query of the Grafana dashboard
 * parses and names only metrics the gateway exports.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { buildApp } from '../../src/app.js';
import type { Backend } from '../../src/backends/backend.js';
import { createBackend } from '../../src/backends/create-backend.js';
import { attack } from '../../src/loadtest/attack.js';
import { type Summary, summarize } from '../../src/loadtest/summary.js';
import { UpstreamMetrics } from '../../src/metrics/upstream-metrics.js';
import { tinyRepository } from '../model-server/tiny-repository.js';
import { testConfig } from '../support/app.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRAPE_INTERVAL = '250ms';
const WAIT_LIMIT_MS = 20_000;

let app: FastifyInstance;
let backend: Backend;
let repo: Awaited<ReturnType<typeof tinyRepository>>;
let gatewayUrl: string;
let prometheus: ChildProcess;
let prometheusUrl: string;
let dataDir: string;
let load: Summary;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function query(expr: string): Promise<{
  status: string;
  data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
  error?: string;
}> {
  const res = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await res.json()) as Awaited<ReturnType<typeof query>>;
}

/** Polls until fn returns a value, bounded; Prometheus needs a scrape or two to catch up. */
async function eventually<T>(what: string, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  for (;;) {
    const value = await fn().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`gave up after ${WAIT_LIMIT_MS} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function scalar(expr: string): Promise<number | undefined> {
  const r = await query(expr);
  const v = r.data?.result[0]?.value[1];
  return v === undefined ? undefined : Number(v);
}

before(async () => {
  // The real gateway on the embedded backend with the tiny GPT-2 from the issue-2 builder.
  repo = await tinyRepository(['kv']);
  const config = testConfig({ BACKEND: 'embedded', MODEL_REPOSITORY: repo.dir, MODEL_NAME: 'kv' });
  const created = await createBackend(config, pino({ level: 'silent' }));
  backend = created.backend;
  await backend.init();
  app = await buildApp(config, { backend, model: created.model });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  assert.ok(typeof address === 'object' && address !== null);
  gatewayUrl = `http://127.0.0.1:${address.port}`;

  dataDir = mkdtempSync(join(tmpdir(), 'prometheus-'));
  writeFileSync(
    join(dataDir, 'prometheus.yml'),
    `global:\n  scrape_interval: ${SCRAPE_INTERVAL}\n  scrape_timeout: ${SCRAPE_INTERVAL}\nscrape_configs:\n  - job_name: gateway\n    static_configs:\n      - targets: ['127.0.0.1:${address.port}']\n`,
  );
  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  prometheus = spawn(
    'prometheus',
    [
      `--config.file=${join(dataDir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dataDir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  prometheus.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const spawned = new Promise<void>((_, reject) => {
    prometheus.once('error', (err) =>
      reject(
        new Error(
          `cannot start prometheus (run 'npm test', its pretest installs it): ${err.message}`,
        ),
      ),
    );
    prometheus.once('exit', (code) =>
      reject(new Error(`prometheus exited with ${code}: ${stderr}`)),
    );
  });
  await Promise.race([
    spawned,
    eventually('prometheus to be ready', async () =>
      (await fetch(`${prometheusUrl}/-/ready`)).ok ? true : undefined,
    ),
  ]);

  // Load while Prometheus scrapes: 40 requests over 2 s, open loop.
  load = summarize(
    await attack({
      url: new URL('/complete', gatewayUrl),
      rate: 20,
      durationMs: 2000,
      maxRequests: 1000,
      concurrency: 1,
      maxInFlight: 100,
      timeoutMs: 10_000,
      bodies: [JSON.stringify({ prompt: 'I enjoy working in Seldon', max_new_tokens: 8 })],
      stream: false,
    }),
  );
});

after(async () => {
  prometheus?.kill('SIGTERM');
  await app?.close();
  await backend?.close();
  await repo?.remove();
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
});

test('the load ran clean', () => {
  assert.equal(load.requests, 40);
  assert.deepEqual(load.statusCodes, { '200': 40 });
  // Greedy on fixed random weights: every request generates the same tokens (8, or fewer at EOS).
  assert.ok(load.tokens.total > 0 && load.tokens.total % 40 === 0 && load.tokens.total <= 40 * 8);
});

test('Prometheus scrapes the gateway and sees the numbers the load produced', async () => {
  assert.equal(await eventually('up == 1', () => scalar('up{job="gateway"}')), 1);
  const requests = await eventually('all 40 requests', async () => {
    const v = await scalar(
      'sum(gpt2_gateway_http_requests_total{route="/complete",method="POST",status="200"})',
    );
    return v === 40 ? v : undefined;
  });
  assert.equal(requests, 40);
  const tokens = await eventually('the generated tokens', async () => {
    const v = await scalar('sum(gpt2_gateway_generated_tokens_total)');
    return v === load.tokens.total ? v : undefined;
  });
  assert.equal(tokens, load.tokens.total);
  assert.equal(await scalar('sum(gpt2_gateway_prompt_tokens_total)'), 40 * 6);
  assert.equal(await scalar('sum(gpt2_gateway_time_to_first_token_seconds_count)'), 40);
  // One gap per generated token after the first.
  assert.equal(
    await scalar('sum(gpt2_gateway_time_per_output_token_seconds_count)'),
    load.tokens.total - 40,
  );
  assert.equal(await scalar('sum(gpt2_gateway_generations_total)'), 40);
  assert.equal(await scalar('sum(gpt2_gateway_generations_in_flight)'), 0);
  assert.ok(((await scalar('sum(gpt2_gateway_backend_step_duration_seconds_count)')) ?? 0) >= 8);
  assert.ok(
    ((await scalar(
      'sum(gpt2_gateway_http_request_duration_seconds_bucket{route="/complete",le="+Inf"})',
    )) ?? 0) === 40,
  );
  assert.ok(((await scalar('process_resident_memory_bytes{job="gateway"}')) ?? 0) > 0);
});

test("promtool check metrics reports nothing on the gateway's /metrics", async () => {
  const exposition = await (await fetch(`${gatewayUrl}/metrics`)).text();
  const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
    const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) =>
      resolve({
        code: err === null ? 0 : Number((err as { code?: number }).code ?? -1),
        output: stdout + stderr,
      }),
    );
    child.stdin?.end(exposition);
  });
  assert.equal(output, '');
  assert.equal(code, 0);
});

test('every Grafana dashboard query parses, and names only metrics the gateway or Triton/Seldon export', async () => {
  const dashboard = JSON.parse(
    readFileSync(`${ROOT}chart/files/grafana-dashboard.json`, 'utf8'),
  ) as {
    panels: { targets?: { expr: string }[] }[];
  };
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  assert.ok(exprs.length >= 20);
  const exposition = await (await fetch(`${gatewayUrl}/metrics`)).text();
  // The gateway's own metrics, plus the Triton backend's (exported only with BACKEND=triton).
  const upstream = new Registry();
  new UpstreamMetrics(upstream);
  const exported = new Set([
    ...[...exposition.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]),
    ...(await upstream.getMetricsAsJSON()).map((m) => m.name),
  ]);
  for (const expr of exprs) {
    const concrete = expr.replaceAll('$__rate_interval', '1m').replaceAll('$namespace', '.*');
    const r = await query(concrete);
    assert.equal(r.status, 'success', `${expr}: ${r.error ?? ''}`);
    for (const [name] of concrete.matchAll(/\b(?:gpt2_gateway|nv|seldon)_[a-z_]+/g)) {
      if (name.startsWith('gpt2_gateway_')) {
        const base = name.replace(/_(bucket|sum|count)$/, '');
        assert.ok(
          exported.has(base) || exported.has(name),
          `${name} is not exported by the gateway`,
        );
      }
    }
  }
});
