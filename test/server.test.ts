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
import { request } from 'undici';
import { NAMED_CONFIGS } from '../src/model/configs.js';
import { writeModelRepository } from '../src/model/model-repository.js';
import { parseSse } from './support/sse.js';

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
