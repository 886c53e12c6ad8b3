/**
 * The image's entry point, run from a directory laid out exactly as the Dockerfile's runtime stage
 * lays out /app (package.json, dist/src, dist/web, node_modules, nothing else), so a runtime read of a file
 * the image does not copy fails here rather than in a cluster.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tinyRepository } from '../model-server/tiny-repository.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const dockerfile = readFileSync(`${ROOT}Dockerfile`, 'utf8');
const START_LIMIT_MS = 30_000;

/** The runtime stage's CMD as an argv. */
const CMD = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[];

const image = mkdtempSync(join(tmpdir(), 'image-app-'));
cpSync(`${ROOT}package.json`, join(image, 'package.json'));
cpSync(`${ROOT}dist/src`, join(image, 'dist/src'), { recursive: true });
cpSync(`${ROOT}dist/web`, join(image, 'dist/web'), { recursive: true });
symlinkSync(`${ROOT}node_modules`, join(image, 'node_modules'), 'dir');
after(() => rmSync(image, { recursive: true, force: true }));

test('the CMD runs with node and its whole module graph loads from the image layout', async () => {
  assert.deepEqual(CMD, ['node', 'dist/src/cli.js', 'serve']);
  const { code, stdout, stderr } = await new Promise<{
    code: number;
    stdout: string;
    stderr: string;
  }>((resolve) => {
    execFile(
      process.execPath,
      [...CMD.slice(1), '--help'],
      { cwd: image, encoding: 'utf8' },
      (err, out, errOut) =>
        resolve({ code: err === null ? 0 : Number(err.code), stdout: out, stderr: errOut }),
    );
  });
  assert.equal(stderr, '');
  assert.equal(code, 0);
  assert.match(stdout, /^Usage: gpt2-gateway serve/);
});

test('the CMD serves from the image layout on a tiny model, and the HEALTHCHECK command passes', async () => {
  const repo = await tinyRepository(['kv']);
  // ENV of the runtime stage, then what the chart's ConfigMap would add.
  const env: Record<string, string> = { PATH: process.env.PATH ?? '' };
  for (const [, name, value] of dockerfile.matchAll(/^\s*(?:ENV )?([A-Z_]+)=(\S+?)\s*\\?$/gm)) {
    if (name !== undefined && value !== undefined) env[name] = value;
  }
  assert.deepEqual(env, {
    PATH: env.PATH,
    NODE_ENV: 'production',
    HOST: '0.0.0.0',
    PORT: '8080',
    MODEL_REPOSITORY: '/models',
  });
  Object.assign(env, {
    HOST: '127.0.0.1',
    PORT: '0',
    MODEL_REPOSITORY: repo.dir,
    MODEL_NAME: 'kv',
    BACKEND: 'embedded',
  });
  const server = spawn(CMD[0] === 'node' ? process.execPath : String(CMD[0]), CMD.slice(1), {
    cwd: image,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    let logs = '';
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no 'ready' within ${START_LIMIT_MS} ms:\n${logs}`)),
        START_LIMIT_MS,
      );
      server.once('exit', (code) =>
        reject(new Error(`exited with ${code} before ready:\n${logs}`)),
      );
      server.stderr.on('data', (chunk: Buffer) => {
        logs += chunk.toString();
      });
      server.stdout.on('data', (chunk: Buffer) => {
        logs += chunk.toString();
        const listening = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(logs);
        if (listening?.[1] !== undefined && /"msg":"ready"/.test(logs)) {
          clearTimeout(timer);
          resolve(Number(listening[1]));
        }
      });
    });
    const health = JSON.parse(
      /^\s*CMD (\[.*\])$/m.exec(dockerfile.slice(dockerfile.indexOf('HEALTHCHECK')))?.[1] ?? '[]',
    ) as string[];
    assert.equal(health[0], 'node');
    const code = await new Promise<number>((resolve) => {
      execFile(process.execPath, health.slice(1), { env: { ...env, PORT: String(port) } }, (err) =>
        resolve(err === null ? 0 : Number(err.code)),
      );
    });
    assert.equal(code, 0, 'HEALTHCHECK passes');
    const page = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(page.status, 200, 'the image serves the playground page');
    assert.match(await page.text(), /playground\/page\.js/);
    const exited = new Promise<number | null>((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    assert.equal(await exited, 0, 'node as PID 1 gets SIGTERM and drains to a clean exit');
  } finally {
    server.kill('SIGKILL');
    await repo.remove();
  }
});
