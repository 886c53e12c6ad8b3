import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { run } from '../../src/cli/serve.js';
import { loadConfig, SETTINGS, type Setting } from '../../src/config.js';

/** Every variable loadConfig reads, found by watching it read (no list to keep in sync). */
function variablesRead(): string[] {
  const seen = new Set<string>();
  const env = new Proxy({} as Record<string, string | undefined>, {
    get(_target, key) {
      if (typeof key === 'string') seen.add(key);
      return undefined;
    },
  });
  loadConfig(env);
  return [...seen].sort();
}

async function helpText(): Promise<string> {
  const write = process.stdout.write;
  let printed = '';
  process.stdout.write = ((chunk: string) => {
    printed += chunk;
    return true;
  }) as typeof process.stdout.write;
  try {
    assert.equal(await run(['--help']), 0);
  } finally {
    process.stdout.write = write;
  }
  return printed;
}

test('serve --help names every environment variable the config reads (TRITON_RETRIES and four more were missing)', async () => {
  const vars = variablesRead();
  assert.ok(vars.includes('TRITON_STARTUP_TIMEOUT_MS') && vars.length >= 25, vars.join(' '));
  const help = await helpText();
  assert.deepEqual(
    vars.filter((name) => !new RegExp(`\\b${name}\\b`).test(help)),
    [],
  );
});

test('the README documents every environment variable the config reads', () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  assert.deepEqual(
    variablesRead().filter((name) => !readme.includes(`\`${name}\``)),
    [],
  );
});

test("serve --help shows each variable's default from the config table, the one home of it", async () => {
  const help = await helpText();
  for (const [name, setting] of Object.entries(SETTINGS as Record<string, Setting>)) {
    if (setting.kind === 'url' || setting.fallback === undefined) continue;
    assert.match(help, new RegExp(`\\b${name} \\(${String(setting.fallback)}\\b`), name);
  }
  // The table's default is what loadConfig gives when the variable is unset.
  const config = loadConfig({});
  assert.equal(config.triton.startupTimeoutMs, SETTINGS.TRITON_STARTUP_TIMEOUT_MS.fallback);
  assert.equal(config.port, SETTINGS.PORT.fallback);
});
