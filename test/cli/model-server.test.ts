import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { run } from '../../src/cli/model-server.js';

async function capture(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const [out, err] = [process.stdout.write, process.stderr.write];
  let o = '';
  let e = '';
  process.stdout.write = ((c: string) => {
    o += c;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((c: string) => {
    e += c;
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await run(argv), out: o, err: e };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

describe('gpt2-gateway model-server (CLI)', () => {
  it('--help prints the options and exits 0', async () => {
    const r = await capture(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.out, /^Usage: gpt2-gateway model-server --repo DIR/);
    assert.match(r.out, /--legacy-status-codes/);
  });

  it('says what is wrong in one line: exit 2 for a usage mistake, 1 for a repository it cannot serve', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'gpt2-empty-repo-'));
    try {
      const cases: [string[], number, string][] = [
        [[], 2, 'gpt2-gateway model-server: --repo DIR is required (see --help)\n'],
        [
          ['--repo', empty, '--port', 'x'],
          2,
          "gpt2-gateway model-server: --port 'x' must be a whole number from 0 to 65535\n",
        ],
        [
          ['--repo', empty, '--frob'],
          2,
          "gpt2-gateway model-server: Unknown option '--frob' (see --help)\n",
        ],
        [
          ['--repo', empty],
          1,
          `gpt2-gateway model-server: model repository ${empty} has no models (expected <repo>/<name>/1/model.onnx)\n`,
        ],
        [
          ['--repo', join(empty, 'missing')],
          1,
          `gpt2-gateway model-server: cannot read model repository ${join(empty, 'missing')}: ENOENT\n`,
        ],
      ];
      for (const [argv, code, err] of cases) {
        const r = await capture(argv);
        assert.deepEqual([r.code, r.err], [code, err], argv.join(' '));
      }
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
