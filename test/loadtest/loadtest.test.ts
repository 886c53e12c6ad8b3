import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type AttackOptions, attack } from '../../src/loadtest/attack.js';
import { htmlReport } from '../../src/loadtest/html-report.js';
import { summarize } from '../../src/loadtest/summary.js';
import { formatDuration, textReport } from '../../src/loadtest/text-report.js';
import { runCli } from '../helpers/run-cli.js';
import { BUSY_BODY, OK_BODY, STREAM_BODY, startFakeGateway } from './fake-gateway.js';

const BODY = JSON.stringify({ prompt: 'I enjoy working in Seldon', max_new_tokens: 8 });

function options(url: string, overrides: Partial<AttackOptions>): AttackOptions {
  return {
    url: new URL('/complete', url),
    rate: 100,
    durationMs: 100,
    maxRequests: 1000,
    concurrency: 2,
    maxInFlight: 100,
    timeoutMs: 5000,
    bodies: [BODY],
    stream: false,
    ...overrides,
  };
}

test('open loop: rate × duration requests, every answer counted into the report', async () => {
  const gateway = await startFakeGateway({ busyEvery: 4 });
  try {
    const result = await attack(options(gateway.url, { rate: 100, durationMs: 100 }));
    const s = summarize(result);
    assert.equal(s.requests, 10);
    assert.deepEqual(
      gateway.bodies,
      Array.from({ length: 10 }, () => JSON.parse(BODY)),
    );
    assert.deepEqual(s.statusCodes, { '200': 8, '503': 2 });
    assert.equal(s.success, 0.8);
    assert.deepEqual(s.bytesIn, {
      total: 8 * OK_BODY.length + 2 * BUSY_BODY.length,
      mean: (8 * OK_BODY.length + 2 * BUSY_BODY.length) / 10,
    });
    assert.deepEqual(s.bytesOut, { total: 10 * BODY.length, mean: BODY.length });
    assert.equal(s.tokens.total, 64);
    assert.equal(s.tokens.meanPerRequest, 8);
    assert.deepEqual(s.ttftMs, {
      min: 12.5,
      mean: 12.5,
      p50: 12.5,
      p90: 12.5,
      p95: 12.5,
      p99: 12.5,
      max: 12.5,
    });
    assert.deepEqual(s.errors, ['QUEUE_FULL']);
    // Sent on schedule, never early: request i no sooner than i × 10 ms after the start (the
    // regression: a timer firing a fraction of a millisecond early sent the last one at 88.9 ms).
    const starts = result.results.map((r) => r.startMs).sort((a, b) => a - b);
    for (const [i, start] of starts.entries()) {
      assert.ok(start >= i * 10, `request ${i} sent at ${start} ms`);
    }
  } finally {
    await gateway.close();
  }
});

test('rate max: exactly max-requests, never more than concurrency in flight', async () => {
  const gateway = await startFakeGateway({ delayMs: 5 });
  try {
    const s = summarize(
      await attack(
        options(gateway.url, { rate: 'max', concurrency: 2, maxRequests: 6, durationMs: 60_000 }),
      ),
    );
    assert.equal(s.requests, 6);
    assert.deepEqual(s.statusCodes, { '200': 6 });
    assert.equal(gateway.maxConcurrent, 2);
  } finally {
    await gateway.close();
  }
});

test('streaming: tokens from the done event, time to first token measured at the client', async () => {
  const gateway = await startFakeGateway();
  try {
    const bodies = [JSON.stringify({ prompt: 'x', max_new_tokens: 3, stream: true })];
    const result = await attack(
      options(gateway.url, { rate: 50, durationMs: 60, bodies, stream: true }),
    );
    const s = summarize(result);
    assert.equal(s.requests, 3);
    assert.equal(s.bytesIn.total, 3 * STREAM_BODY.length);
    assert.equal(s.tokens.total, 9);
    assert.ok(s.ttftMs !== null);
    for (const r of result.results) assert.ok(r.ttftMs !== undefined && r.ttftMs <= r.latencyMs);
  } finally {
    await gateway.close();
  }
});

test('a request that gets no answer is an error with status 0, never a hang', async () => {
  const gateway = await startFakeGateway({ hang: true });
  try {
    const s = summarize(
      await attack(options(gateway.url, { rate: 20, durationMs: 100, timeoutMs: 50 })),
    );
    assert.deepEqual(s.statusCodes, { '0': 2 });
    assert.deepEqual(s.errors, ['timeout after 50 ms']);
    assert.equal(s.success, 0);
  } finally {
    await gateway.close();
  }
  const closed = gateway.url; // nothing listens there any more
  const s = summarize(await attack(options(closed, { rate: 20, durationMs: 50 })));
  assert.deepEqual(s.statusCodes, { '0': 1 });
  assert.match(s.errors[0] ?? '', /^ECONNREFUSED: /);
});

test('open loop: requests due while max-in-flight are outstanding are counted, not silently skipped', async () => {
  const gateway = await startFakeGateway({ hang: true });
  try {
    const s = summarize(
      await attack(
        options(gateway.url, { rate: 100, durationMs: 50, maxInFlight: 2, timeoutMs: 200 }),
      ),
    );
    assert.equal(s.requests, 5);
    assert.deepEqual(s.statusCodes, { '0': 5 });
    assert.deepEqual(s.errors, ['not sent: 2 requests already in flight', 'timeout after 200 ms']);
  } finally {
    await gateway.close();
  }
});

test("the text report has vegeta's layout and our token rows, with numbers worked out by hand", () => {
  const r = (latencyMs: number, status: number, bytesIn: number, ttftMs?: number) => ({
    startMs: 0,
    latencyMs,
    status,
    bytesIn,
    bytesOut: 40,
    ...(status === 200 ? { completionTokens: 8, ttftMs } : { error: 'QUEUE_FULL' }),
  });
  const s = summarize({
    results: [r(100, 200, 1000, 10), r(200, 200, 1000, 20), r(300, 200, 1000, 30), r(400, 503, 50)],
    attackMs: 3000,
    waitMs: 400,
  });
  assert.equal(
    textReport(s),
    [
      'Requests      [total, rate, throughput]         4, 1.33, 0.88',
      'Duration      [total, attack, wait]             3.4s, 3s, 400ms',
      'Latencies     [min, mean, 50, 90, 95, 99, max]  100ms, 250ms, 200ms, 400ms, 400ms, 400ms, 400ms',
      'Bytes In      [total, mean]                     3050, 762.50',
      'Bytes Out     [total, mean]                     160, 40.00',
      'Success       [ratio]                           75.00%',
      'Status Codes  [code:count]                      200:3  503:1',
      'Tokens        [total, per second, per request]  24, 7.06, 8.00',
      'First token   [min, mean, 50, 90, 95, 99, max]  10ms, 20ms, 20ms, 30ms, 30ms, 30ms, 30ms',
      'Error Set:',
      'QUEUE_FULL',
      '',
    ].join('\n'),
  );
});

test("durations print like Go's time.Duration, as vegeta does", () => {
  assert.deepEqual([0, 0.5, 1.5, 1450.87, 4003.038, 63_200].map(formatDuration), [
    '0s',
    '500µs',
    '1.5ms',
    '1.45087s',
    '4.003038s',
    '1m3.2s',
  ]);
});

test('the HTML report plots one point per request and escapes what it prints', async () => {
  const results = [
    { startMs: 0, latencyMs: 10, status: 200, bytesIn: 1, bytesOut: 1 },
    { startMs: 1500, latencyMs: 30, status: 503, bytesIn: 1, bytesOut: 1, error: '<b>busy</b>' },
  ];
  const html = htmlReport({ results, attackMs: 1500, waitMs: 30 }, 'Requests <x>', 'run & see');
  assert.equal(html.match(/<circle /g)?.length, 2);
  assert.equal(html.match(/class="fail"/g)?.length, 1);
  assert.match(html, /<title>run &amp; see<\/title>/);
  assert.match(html, /<pre>Requests &lt;x&gt;<\/pre>/);
  assert.match(html, /status=503 &lt;b&gt;busy&lt;\/b&gt;/);
  assert.ok(!html.includes('<b>'));
});

test('loadtest CLI: --json summary and --html file from a real run', async () => {
  const gateway = await startFakeGateway();
  const dir = mkdtempSync(join(tmpdir(), 'loadtest-'));
  try {
    const r = await runCli([
      'loadtest',
      gateway.url,
      '--rate',
      '50',
      '--duration',
      '100ms',
      '--json',
      '--html',
      join(dir, 'r.html'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as {
      requests: number;
      statusCodes: Record<string, number>;
      tokens: { total: number };
    };
    assert.equal(s.requests, 5);
    assert.deepEqual(s.statusCodes, { '200': 5 });
    assert.equal(s.tokens.total, 40);
    assert.equal(readFileSync(join(dir, 'r.html'), 'utf8').match(/<circle /g)?.length, 5);
    assert.equal(r.stderr, `loadtest: POST ${gateway.url}/complete at 50 req/s for 100ms\n`);
  } finally {
    await gateway.close();
  }
});

test('loadtest CLI: --vegeta-targets writes the same requests for vegeta and sends nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'loadtest-'));
  const file = join(dir, 'targets.json');
  const r = await runCli([
    'loadtest',
    'http://127.0.0.1:9/',
    '--vegeta-targets',
    file,
    '--prompt',
    'Hello',
    '--prompt',
    'Über',
    '--max-new-tokens',
    '4',
    '--header',
    'Authorization: Bearer t0k',
    '--rate',
    '2',
    '--duration',
    '30s',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const lines = readFileSync(file, 'utf8').split('\n');
  assert.equal(lines.pop(), '');
  assert.deepEqual(
    lines.map((l) => JSON.parse(l)),
    ['Hello', 'Über'].map((prompt) => ({
      method: 'POST',
      url: 'http://127.0.0.1:9/complete',
      body: Buffer.from(JSON.stringify({ prompt, max_new_tokens: 4 })).toString('base64'),
      header: { 'Content-Type': ['application/json'], Authorization: ['Bearer t0k'] },
    })),
  );
  assert.match(
    r.stderr,
    new RegExp(
      `vegeta attack -format=json -targets=${file} -rate=2 -duration=30s \\| vegeta report`,
    ),
  );
});

test('loadtest CLI: bad input is one clear line and exit 2', async () => {
  const cases: [string[], string][] = [
    [[], 'missing URL (e.g. http://127.0.0.1:8080)'],
    [['ftp://x'], 'URL must be http or https, not ftp:'],
    [['nota url'], "'nota url' is not a URL (e.g. http://127.0.0.1:8080)"],
    [
      ['http://x', '--rate', '0'],
      "--rate '0' must be a number above 0 and at most 10000, or 'max'",
    ],
    [
      ['http://x', '--max-new-tokens', '2000'],
      "--max-new-tokens '2000' must be a whole number from 1 to 1024",
    ],
    [
      ['http://x', '--duration', 'forever'],
      "--duration 'forever' is not a duration: use e.g. 500ms, 30s, 15m or 1h",
    ],
    [['http://x', '--header', 'nocolon'], "--header 'nocolon' must look like 'Name: value'"],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(['loadtest', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stderr, `gpt2-gateway loadtest: ${message}\n`);
  }
  const r = await runCli(['loadtest', '--bogus']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^gpt2-gateway loadtest: Unknown option '--bogus'/);
});
