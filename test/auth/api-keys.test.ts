import assert from 'node:assert/strict';
import { timingSafeEqual } from 'node:crypto';
import { mkdir, mkdtemp, realpath, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  ApiKeyStore,
  type ApiKeysFile,
  ApiKeysFileError,
  type ApiKeysReloadEvent,
  extractCredential,
  MAX_KEYS_FILE_BYTES,
  openApiKeysFile,
  parseApiKeys,
} from '../../src/auth/api-keys.js';

const SECRET_A = 'sk-alpha-0123456789abcdef';
const SECRET_B = 'sk-bravo-fedcba9876543210';
const SECRET_C = 'sk-charlie-5555555555555555';

test('parseApiKeys reads name:key lines, skipping blanks, comments and CRLF line ends', () => {
  const text = `\uFEFF# team keys\r\n\r\nalice:${SECRET_A}\r\n  # indented comment\nbob.ci-1:${SECRET_B}:with:colons\n\n`;
  assert.deepEqual(parseApiKeys(text), [
    { clientName: 'alice', key: SECRET_A },
    { clientName: 'bob.ci-1', key: `${SECRET_B}:with:colons` },
  ]);
});

test('parseApiKeys names the line of every malformed kind, and never the key', () => {
  const cases: [string, number, RegExp][] = [
    [`alice:${SECRET_A}\n${SECRET_B}`, 2, /no colon/],
    [`# c\n:${SECRET_B}`, 2, /client name is empty/],
    [`alice:`, 1, /key of client "alice" is empty/],
    [`bad name:${SECRET_B}`, 1, /client name must be 1 to 64 characters/],
    [`${'x'.repeat(65)}:${SECRET_B}`, 1, /client name must be/],
    [`al/ice:${SECRET_B}`, 1, /client name must be/],
    [`alice:${SECRET_A} ${SECRET_B}`, 1, /key of client "alice" contains whitespace/],
    [`alice:${SECRET_A}\tx`, 1, /contains whitespace/],
    [`alice:${SECRET_A}\n\nalice:${SECRET_B}`, 3, /client "alice" is already defined on line 1/],
    [`alice:${SECRET_A}\nbob:${SECRET_B}\ncarol:${SECRET_A}`, 3, /same as the key on line 1/],
  ];
  for (const [text, line, pattern] of cases) {
    assert.throws(
      () => parseApiKeys(text),
      (err: unknown) => {
        assert.ok(err instanceof ApiKeysFileError, text);
        assert.equal(err.line, line, text);
        assert.match(err.message, new RegExp(`^API keys file line ${line}: `));
        assert.match(err.message, pattern);
        for (const secret of [SECRET_A, SECRET_B, 'sk-']) assert.ok(!err.message.includes(secret));
        return true;
      },
    );
  }
});

test('parseApiKeys refuses a file with no keys at all', () => {
  assert.throws(() => parseApiKeys('# nothing yet\n\n'), /holds no keys/);
});

test('ApiKeyStore.verify returns the client of a key and undefined for anything else', () => {
  const store = new ApiKeyStore(parseApiKeys(`alice:${SECRET_A}\nbob:${SECRET_B}`));
  assert.equal(store.verify(SECRET_A), 'alice');
  assert.equal(store.verify(SECRET_B), 'bob');
  assert.equal(store.verify(`${SECRET_A}x`), undefined);
  assert.equal(store.verify(SECRET_A.slice(0, -1)), undefined);
  assert.equal(store.verify(''), undefined);
  assert.deepEqual(store.clientNames, ['alice', 'bob']);
  assert.equal(store.size, 2);
});

test('verify compares equal-length digests against every key, whether it hits first, last or not at all', () => {
  const calls: [number, number][] = [];
  const store = new ApiKeyStore(
    parseApiKeys(`alice:${SECRET_A}\nbob:${SECRET_B}\ncarol:${SECRET_C}`),
    {
      compare: (a, b) => {
        calls.push([a.length, b.length]);
        return timingSafeEqual(a, b);
      },
    },
  );
  const counts: number[] = [];
  for (const [key, expected] of [
    [SECRET_A, 'alice'],
    [SECRET_C, 'carol'],
    ['not-a-key-of-a-very-different-length', undefined],
  ] as const) {
    calls.length = 0;
    assert.equal(store.verify(key), expected);
    counts.push(calls.length);
    // SHA-256 on both sides: 32 bytes each, whatever the presented key's length.
    for (const [a, b] of calls) assert.deepEqual([a, b], [32, 32]);
  }
  assert.deepEqual(counts, [3, 3, 3]);
});

/**
 * A directory laid out as the kubelet lays out a Secret volume: the data in a timestamped
 * directory, `..data` a symlink to it, and the file a symlink through `..data`.
 */
async function secretVolume(content: string) {
  const dir = await mkdtemp(join(tmpdir(), 'api-keys-'));
  let generation = 0;
  const writeVersion = async (text: string) => {
    generation += 1;
    const versionDir = join(dir, `..2026_12_01_00_00_0${generation}`);
    await mkdir(versionDir);
    await writeFile(join(versionDir, 'keys'), text);
    // Atomic swap: a new symlink renamed over ..data, as the kubelet's atomic writer does.
    await symlink(versionDir.slice(dir.length + 1), join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  };
  await writeVersion(content);
  await symlink('..data/keys', join(dir, 'keys'));
  return {
    path: join(dir, 'keys'),
    rotate: writeVersion,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** The next reload events, as promises the test awaits instead of sleeping. */
function reloadEvents() {
  const waiting: ((e: ApiKeysReloadEvent) => void)[] = [];
  const queued: ApiKeysReloadEvent[] = [];
  return {
    onReload(event: ApiKeysReloadEvent) {
      const next = waiting.shift();
      if (next) next(event);
      else queued.push(event);
    },
    next(): Promise<ApiKeysReloadEvent> {
      const event = queued.shift();
      if (event) return Promise.resolve(event);
      return new Promise((resolve) => waiting.push(resolve));
    },
  };
}

interface WatchedKeys {
  readonly volume: Awaited<ReturnType<typeof secretVolume>>;
  readonly file: ApiKeysFile;
  readonly events: ReturnType<typeof reloadEvents>;
}

/**
 * A keys file on a fresh Secret volume, opened with reload events: `body` runs against it, then
 * the file is closed and the volume removed, whatever the outcome.
 */
async function withWatchedKeys(
  content: string,
  pollIntervalMs: number,
  body: (keys: WatchedKeys) => Promise<void>,
): Promise<void> {
  const volume = await secretVolume(content);
  const events = reloadEvents();
  const file = await openApiKeysFile(volume.path, { pollIntervalMs, onReload: events.onReload });
  try {
    await body({ volume, file, events });
  } finally {
    file.close();
    await volume.cleanup();
  }
}

test('a Secret rotation (..data symlink swap) is picked up without a restart', async () => {
  await withWatchedKeys(`alice:${SECRET_A}\n`, 20, async ({ volume, file, events }) => {
    assert.equal(file.store.verify(SECRET_A), 'alice');
    await volume.rotate(`bob:${SECRET_B}\n`);
    assert.deepEqual(await events.next(), { kind: 'reloaded', clientNames: ['bob'] });
    assert.equal(file.store.verify(SECRET_A), undefined);
    assert.equal(file.store.verify(SECRET_B), 'bob');
  });
});

test('the directory watch alone sees the ..data swap (no poll within the test)', async () => {
  await withWatchedKeys(`alice:${SECRET_A}\n`, 3_600_000, async ({ volume, file, events }) => {
    await volume.rotate(`erin:${SECRET_C}\n`);
    assert.deepEqual(await events.next(), { kind: 'reloaded', clientNames: ['erin'] });
    assert.equal(file.store.verify(SECRET_C), 'erin');
  });
});

test('the poll alone finds a change (volumes where fs.watch delivers nothing)', async () => {
  await withWatchedKeys(`alice:${SECRET_A}\n`, 20, async ({ volume, file, events }) => {
    // Replaced inside the version directory (no symlink swap, nothing in the watched directory
    // changes): only the content hash shows it. Renamed into place so no read sees half a file.
    const target = await realpath(volume.path);
    await writeFile(`${target}.tmp`, `alice:${SECRET_A}\ncarol:${SECRET_C}\n`);
    await rename(`${target}.tmp`, target);
    assert.deepEqual(await events.next(), { kind: 'reloaded', clientNames: ['alice', 'carol'] });
    assert.equal(file.store.verify(SECRET_C), 'carol');
  });
});

test('a malformed rotation keeps the old keys and reports the line, once, without key text', async () => {
  await withWatchedKeys(`alice:${SECRET_A}\n`, 20, async ({ volume, file, events }) => {
    await volume.rotate(`bob:${SECRET_B}\ncarol ${SECRET_C}\n`);
    const event = await events.next();
    assert.equal(event.kind, 'rejected');
    assert.ok(event.kind === 'rejected' && event.error instanceof ApiKeysFileError);
    assert.equal(
      event.error.message,
      'API keys file line 2: expected `<client-name>:<key>`, found no colon',
    );
    for (const secret of [SECRET_A, SECRET_B, SECRET_C]) {
      assert.ok(!event.error.message.includes(secret));
    }
    assert.equal(file.store.verify(SECRET_A), 'alice');
    assert.equal(file.store.verify(SECRET_B), undefined);
    // The same broken content is not reported again on every poll: the next event is the fix.
    await volume.rotate(`bob:${SECRET_B}\n`);
    assert.deepEqual(await events.next(), { kind: 'reloaded', clientNames: ['bob'] });
    assert.equal(file.store.verify(SECRET_B), 'bob');
  });
});

test('reload() reads at once and resolves after the store changed', async () => {
  const volume = await secretVolume(`alice:${SECRET_A}\n`);
  // A poll interval far beyond the test: only reload() can be the reader here.
  const file = await openApiKeysFile(volume.path, { pollIntervalMs: 3_600_000 });
  try {
    await writeFile(volume.path, `dave:${SECRET_C}\n`);
    await file.reload();
    assert.equal(file.store.verify(SECRET_C), 'dave');
  } finally {
    file.close();
    await volume.cleanup();
  }
});

test('openApiKeysFile refuses a missing or malformed file at start, naming the line', async () => {
  await assert.rejects(
    openApiKeysFile(join(tmpdir(), 'no-such-dir-for-keys', 'keys')),
    /cannot read the API keys file keys \(ENOENT\)/,
  );
  const volume = await secretVolume(`alice:${SECRET_A}\nalice:${SECRET_B}\n`);
  try {
    await assert.rejects(openApiKeysFile(volume.path), (err: unknown) => {
      assert.ok(err instanceof ApiKeysFileError);
      assert.equal(err.line, 2);
      assert.ok(!err.message.includes(SECRET_A) && !err.message.includes(SECRET_B));
      return true;
    });
  } finally {
    await volume.cleanup();
  }
});

test('extractCredential reads Bearer (any case) and x-api-key', () => {
  assert.deepEqual(extractCredential({ authorization: `Bearer ${SECRET_A}` }), {
    kind: 'key',
    key: SECRET_A,
    source: 'authorization',
  });
  assert.deepEqual(extractCredential({ authorization: `bEaReR   ${SECRET_A} ` }), {
    kind: 'key',
    key: SECRET_A,
    source: 'authorization',
  });
  assert.deepEqual(extractCredential({ 'x-api-key': SECRET_B }), {
    kind: 'key',
    key: SECRET_B,
    source: 'x-api-key',
  });
  assert.deepEqual(
    extractCredential({ authorization: `Bearer ${SECRET_A}`, 'x-api-key': SECRET_A }),
    { kind: 'key', key: SECRET_A, source: 'authorization' },
  );
});

test('extractCredential tells missing, another scheme and malformed apart, never quoting the header', () => {
  assert.deepEqual(extractCredential({}), { kind: 'missing' });
  assert.deepEqual(extractCredential({ authorization: `Basic ${SECRET_A}` }), {
    kind: 'wrong-scheme',
  });
  assert.deepEqual(extractCredential({ authorization: SECRET_A }), { kind: 'wrong-scheme' });
  const malformed = [
    { authorization: 'Bearer' },
    { authorization: 'Bearer   ' },
    { authorization: '' },
    { authorization: `Bearer ${SECRET_A} ${SECRET_B}` },
    { 'x-api-key': '' },
    { 'x-api-key': `${SECRET_A} ${SECRET_B}` },
    { 'x-api-key': [SECRET_A, SECRET_B] },
    { authorization: `Bearer ${SECRET_A}`, 'x-api-key': SECRET_B },
    { authorization: `Bearer ${SECRET_A}`, 'x-api-key': '' },
  ];
  for (const headers of malformed) {
    const got = extractCredential(headers);
    assert.equal(got.kind, 'malformed', JSON.stringify(headers));
    assert.ok(got.kind === 'malformed');
    assert.ok(!got.reason.includes(SECRET_A) && !got.reason.includes(SECRET_B));
  }
});

test('a file larger than the limit is refused before it is read', async () => {
  const volume = await secretVolume(`alice:${SECRET_A}\n${'#'.repeat(MAX_KEYS_FILE_BYTES)}\n`);
  try {
    await assert.rejects(openApiKeysFile(volume.path), /is \d+ bytes, more than 1048576/);
  } finally {
    await volume.cleanup();
  }
});

test('a reporter that throws does not stop later reloads', async () => {
  const volume = await secretVolume(`alice:${SECRET_A}\n`);
  const events = reloadEvents();
  let calls = 0;
  const file = await openApiKeysFile(volume.path, {
    pollIntervalMs: 20,
    onReload: (event) => {
      calls += 1;
      if (calls === 1) throw new Error('logger broke');
      events.onReload(event);
    },
  });
  try {
    await volume.rotate(`bob:${SECRET_B}\n`);
    await file.reload();
    assert.equal(file.store.verify(SECRET_B), 'bob');
    await volume.rotate(`carol:${SECRET_C}\n`);
    assert.deepEqual(await events.next(), { kind: 'reloaded', clientNames: ['carol'] });
  } finally {
    file.close();
    await volume.cleanup();
  }
});
