import assert from 'node:assert/strict';
import { test } from 'node:test';
import { integerFlag, runCommand, UsageError } from '../../src/cli/command.js';

async function captured(run: () => Promise<number>) {
  const [out, err] = [process.stdout.write, process.stderr.write];
  let stdout = '';
  let stderr = '';
  process.stdout.write = ((chunk: string) => {
    stdout += chunk;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => {
    stderr += chunk;
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await run(), stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

test('integerFlag takes whole numbers within the range and names the flag otherwise', () => {
  assert.equal(integerFlag('--port', '8000', { min: 0, max: 65_535 }), 8000);
  assert.equal(integerFlag('--port', '0', { min: 0, max: 65_535 }), 0);
  assert.equal(integerFlag('--seed', '-0', { min: 0 }), 0);
  for (const text of ['x', '1.5', '1e3', '0x10', '', ' ', '65536', '-1', '9007199254740993']) {
    assert.throws(
      () => integerFlag('--port', text, { min: 0, max: 65_535 }),
      (err: unknown) =>
        err instanceof UsageError &&
        err.message === `--port '${text}' must be a whole number from 0 to 65535`,
      text,
    );
  }
  assert.throws(() => integerFlag('--seed', '-2', { min: 0 }), {
    message: "--seed '-2' must be a whole number of at least 0",
  });
});

test('the shell: usage mistakes exit 2, --help 0, failures 1, each one line', async () => {
  const parse = (argv: string[]) => {
    if (argv[0] === 'bad') throw new Error('first line\n  second line');
    return { help: argv[0] === '--help', word: argv[0] ?? '' };
  };
  const body = async (v: { word: string }) => {
    if (v.word === 'usage') throw new UsageError("--n '1.5' must be a whole number of at least 0");
    if (v.word === 'fail') throw new Error('the disk is full');
    return 0;
  };
  const run = (argv: string[]) => captured(() => runCommand('demo', 'HELP\n', parse, argv, body));
  assert.deepEqual(await run(['bad']), {
    code: 2,
    stdout: '',
    stderr: 'gpt2-gateway demo: first line second line\n',
  });
  assert.deepEqual(await run(['--help']), { code: 0, stdout: 'HELP\n', stderr: '' });
  assert.deepEqual(await run(['usage']), {
    code: 2,
    stdout: '',
    stderr: "gpt2-gateway demo: --n '1.5' must be a whole number of at least 0\n",
  });
  assert.deepEqual(await run(['fail']), {
    code: 1,
    stdout: '',
    stderr: 'gpt2-gateway demo: the disk is full\n',
  });
  assert.deepEqual(await run(['ok']), { code: 0, stdout: '', stderr: '' });
});
