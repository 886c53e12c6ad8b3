/**
 * The image's entry point, run from a directory laid out exactly as the Dockerfile's runtime stage
 * lays out /app (package.json, dist/src, node_modules, nothing else), so a runtime read of a file
 * the image does not copy fails here rather than in a cluster.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const dockerfile = readFileSync(`${ROOT}Dockerfile`, 'utf8');

/** The runtime stage's CMD as an argv. */
const CMD = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[];

const image = mkdtempSync(join(tmpdir(), 'image-app-'));
cpSync(`${ROOT}package.json`, join(image, 'package.json'));
cpSync(`${ROOT}dist/src`, join(image, 'dist/src'), { recursive: true });
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
