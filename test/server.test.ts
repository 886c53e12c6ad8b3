/**
 * `gpt2-gateway serve` as a real process: configuration errors exit 2 with every problem listed;
 * a started server answers, and SIGTERM lets an in-flight generation finish before exit 0.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Client, request } from 'undici';
import { NAMED_CONFIGS } from '../src/model/configs.js';
import { writeModelRepository } from '../src/model/model-repository.js';
import { ReplayTriton } from './backends/triton/replay-triton.js';
import { parseSse } from './support/sse.js';

const SHUTTING_DOWN = {
  error: {
    code: 'SHUTTING_DOWN',
    message:
      'the server is shutting down and ended this generation before it finished; retry on another instance',
  },
};

const CLI = new URL('../src/cli.js', import.meta.url).pathname;
let repository: string;

before(async () => {
  repository = await mkdtemp(join(tmpdir(), 'serve-'));
  await writeModelRepository({
    config: NAMED_CONFIGS.tiny,
    weights: { kind: 'random', seed: 3 },
    variant: 'kv',
    repository,
    name: 'tiny-kv',
    instanceKind: 'cpu',
  });
});
after(() => rm(repository, { recursive: true, force: true }));

function serve(env: Record<string, string>): {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
} {
  const child = spawn(process.execPath, [CLI, 'serve'], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exit };
}

test('a bad configuration exits 2 and lists every problem', async () => {
  const { output, exit } = serve({ PORT: 'x', MAX_QUEUE: '-1' });
  assert.equal(await exit, 2);
  assert.equal(
    output(),
    "gpt2-gateway: invalid configuration:\n  - PORT must be an integer from 0 to 65535, got 'x'\n  - MAX_QUEUE must be an integer from 0 to 100000, got '-1'\n",
  );
});

test('a malformed API keys file stops the start: exit 2 and the line at fault, never the key', async () => {
  const keys = join(repository, 'api-keys');
  await writeFile(keys, '# clients\nalpha:sk-alpha-0f3c\nbravo sk-bravo-9e1d\n');
  const { output, exit } = serve({
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    MODEL_REPOSITORY: repository,
    MODEL_NAME: 'tiny-kv',
    API_KEYS_FILE: keys,
  });
  assert.equal(await exit, 2);
  assert.match(output(), /^gpt2-gateway: API keys file line 3: expected `<client-name>:<key>`/m);
  assert.ok(!output().includes('sk-bravo'), output());
});

test('a model that cannot be served exits 1 and says why on stderr, even with LOG_LEVEL=silent', async () => {
  const { output, exit } = serve({
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    MODEL_REPOSITORY: repository,
    MODEL_NAME: 'no-such-model',
  });
  assert.equal(await exit, 1);
  assert.match(output(), /^gpt2-gateway: the backend cannot serve: .*no-such-model/m);
});

test('SIGTERM drains an in-flight generation, then the process exits 0', async () => {
  const server = serve({
    HOST: '127.0.0.1',
    PORT: '0',
    MODEL_REPOSITORY: repository,
    MODEL_NAME: 'tiny-kv',
  });
  // Wait until the model is loaded; the listen line gives the port.
  while (!server.output().includes('"msg":"ready"')) {
    if (server.child.exitCode !== null) assert.fail(server.output());
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const port = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(server.output())?.[1];
  assert.ok(port, server.output());
  const base = `http://127.0.0.1:${port}`;
  const res = await request(`${base}/complete`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'Hello world', max_new_tokens: 200, stream: true }),
  });
  assert.equal(res.statusCode, 200);
  // Signal once the first token has arrived: the generation is in flight.
  let body = '';
  let signalled = false;
  const reading = (async () => {
    for await (const chunk of res.body) {
      body += (chunk as Buffer).toString();
      if (body.includes('event: token') && !signalled) signalled = server.child.kill('SIGTERM');
    }
  })();
  await reading.catch((err: unknown) =>
    assert.fail(`${String(err)}\n${body.slice(-300)}\n${server.output()}`),
  );
  const events = parseSse(body);
  assert.equal(events.at(-1)?.event, 'done');
  assert.equal(events.filter((e) => e.event === 'token').length, 200);
  assert.equal(await server.exit, 0);
  assert.match(server.output(), /"msg":"shutting down: draining in-flight generations"/);
  assert.doesNotMatch(server.output(), /Hello world/);
});

test('SIGTERM past SHUTDOWN_TIMEOUT_MS ends every generation with SHUTTING_DOWN, closes idle connections and exits 0', async () => {
  const server = serve({
    HOST: '127.0.0.1',
    PORT: '0',
    MODEL_REPOSITORY: repository,
    MODEL_NAME: 'tiny-kv',
    // One generation at a time: three more wait in the queue, far more work than the deadline.
    MAX_BATCH_SIZE: '1',
    SHUTDOWN_TIMEOUT_MS: '100',
    RATE_LIMIT_MAX: '0',
  });
  while (!server.output().includes('"msg":"ready"')) {
    if (server.child.exitCode !== null) assert.fail(server.output());
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const port = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(server.output())?.[1];
  assert.ok(port, server.output());
  const base = `http://127.0.0.1:${port}`;
  // An idle keep-alive connection must not hold the shutdown open.
  const idle = new Client(base);
  assert.equal((await idle.request({ method: 'GET', path: '/healthz' })).statusCode, 200);
  const complete = (stream: boolean) =>
    request(`${base}/complete`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'Hello world', max_new_tokens: 500, stream }),
    });
  const streams = await Promise.all([complete(true), complete(true), complete(true)]);
  const waiting = complete(false);
  // Every request is admitted (one active, three queued) before the signal.
  for (;;) {
    const metrics = await (await request(`${base}/metrics`)).body.text();
    if (/^gpt2_gateway_generations_queued 3$/m.test(metrics)) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(server.child.kill('SIGTERM'));
  const bodies = await Promise.all(streams.map((res) => res.body.text()));
  for (const [i, body] of bodies.entries()) {
    const last = parseSse(body).at(-1);
    if (last?.event === 'done') continue;
    assert.deepEqual(
      last,
      {
        event: 'error',
        data: SHUTTING_DOWN,
      },
      `stream ${i}`,
    );
  }
  // The last one waited behind 1,500 tokens of work: it cannot have started within 100 ms.
  const refused = await waiting;
  assert.equal(refused.statusCode, 503);
  assert.equal(refused.headers['retry-after'], '1');
  assert.deepEqual(await refused.body.json(), SHUTTING_DOWN);
  assert.equal(await server.exit, 0, server.output());
  await idle.close();
  const log = server.output();
  assert.match(log, /"msg":"drain timed out; ending the remaining generations"/);
  assert.match(log, /"msg":"stopped"/);
  assert.doesNotMatch(log, /AVV_ERR|\n\s+at /, 'no crash, no stack trace');
});

test('SIGTERM with the model server frozen mid-generation: the call in flight is cut, the stream ends with SHUTTING_DOWN, exit 0', async (t) => {
  const triton = await ReplayTriton.start();
  t.after(() => triton.close());
  const server = serve({
    HOST: '127.0.0.1',
    PORT: '0',
    BACKEND: 'triton',
    TRITON_URL: triton.url,
    MODEL_NAME: 'gpt2',
    // A step held by a frozen server would otherwise wait this long.
    TRITON_TIMEOUT_MS: '600000',
    SHUTDOWN_TIMEOUT_MS: '100',
    RATE_LIMIT_MAX: '0',
  });
  while (!server.output().includes('"msg":"ready"')) {
    if (server.child.exitCode !== null) assert.fail(server.output());
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const port = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(server.output())?.[1];
  assert.ok(port, server.output());
  const res = await request(`http://127.0.0.1:${port}/complete`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'Hello world', max_new_tokens: 500, stream: true }),
  });
  let body = '';
  for await (const chunk of res.body) {
    body += (chunk as Buffer).toString();
    if (body.includes('event: token') && server.child.signalCode === null && !triton.frozen) {
      triton.freeze();
      server.child.kill('SIGTERM');
    }
  }
  assert.deepEqual(parseSse(body).at(-1), { event: 'error', data: SHUTTING_DOWN });
  assert.equal(await server.exit, 0, server.output());
  const log = server.output();
  assert.match(log, /"msg":"stopped"/);
  assert.doesNotMatch(log, /AVV_ERR|\n\s+at /, 'no crash, no stack trace');
});
