import assert from 'node:assert/strict';
import { test } from 'node:test';
import { run as loadtest } from '../../src/cli/loadtest.js';
import { run as model } from '../../src/cli/model.js';
import { run as status } from '../../src/cli/status.js';

async function stderrOf(command: () => Promise<number>): Promise<{ code: number; err: string }> {
  const write = process.stderr.write;
  let err = '';
  process.stderr.write = ((chunk: string) => {
    err += chunk;
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await command(), err };
  } finally {
    process.stderr.write = write;
  }
}

test("a negative option value is one stderr line that keeps parseArgs' fix ('--rate=-XYZ')", async () => {
  const r = await stderrOf(() => loadtest(['http://127.0.0.1:1', '--rate', '-3']));
  assert.equal(r.code, 2);
  assert.equal(
    r.err,
    "gpt2-gateway loadtest: Option '--rate' argument is ambiguous. Did you forget to specify the option argument for '--rate'? To specify an option argument starting with a dash use '--rate=-XYZ'.\n",
  );
});

test('model build: the same parseArgs error keeps its fix, on one line', async () => {
  let err = '';
  const code = await model(
    ['build', '--random', '--seed', '-1'],
    {},
    {
      out: () => {},
      err: (t) => {
        err += t;
      },
    },
  );
  assert.equal(code, 2);
  assert.equal(
    err,
    "gpt2-gateway model: Option '--seed' argument is ambiguous. Did you forget to specify the option argument for '--seed'? To specify an option argument starting with a dash use '--seed=-XYZ'. (see 'gpt2-gateway model build --help')\n",
  );
});

test('status: a missing option value is one line', async () => {
  const r = await stderrOf(() => status(['--release']));
  assert.equal(r.code, 2);
  assert.equal(r.err, "gpt2-gateway status: Option '--release <value>' argument missing\n");
});
