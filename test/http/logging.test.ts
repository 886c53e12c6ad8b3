import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { loggerOptions } from '../../src/app.js';
import { BackendError } from '../../src/backends/backend.js';
import { testConfig, toyApp } from '../support/app.js';
import { ToyBackend } from '../support/toy-backend.js';

test('neither prompt nor completion text reaches the log, even at trace level', async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const config = testConfig({ LOG_LEVEL: 'trace' });
  const loggerInstance = pino(loggerOptions(config), sink);
  const backend = new ToyBackend();
  const { app } = await toyApp({ LOG_LEVEL: 'trace' }, { backend, loggerInstance });
  const prompt = 'my secret prompt about zebras';
  const res = await app.inject({
    method: 'POST',
    url: '/complete',
    headers: { authorization: 'Bearer sk-very-secret' },
    payload: { prompt, max_new_tokens: 3 },
  });
  assert.equal(res.statusCode, 200);
  const completion = res.json<{ text: string }>().text;
  backend.failNext = new BackendError('BACKEND_ERROR', 'model exploded');
  await app.inject({ method: 'POST', url: '/complete', payload: { prompt, max_new_tokens: 3 } });
  await app.close();
  const log = lines.join('');
  assert.match(log, /"msg":"request completed"/, 'requests are logged');
  assert.match(log, /model exploded/, 'the backend failure is logged in full');
  assert.doesNotMatch(log, /zebras/);
  assert.doesNotMatch(log, /sk-very-secret/);
  // The completion is a few tokens; look for its longest word.
  const word = completion.split(/\s+/).sort((a, b) => b.length - a.length)[0]!;
  assert.ok(word.length >= 3 && !log.includes(word), `completion text '${word}' in the log`);
});

test('a queue-full refusal logs one warn line without a stack; a backend failure logs an error', async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const config = testConfig({ MAX_BATCH_SIZE: '1', MAX_QUEUE: '1' });
  const backend = new ToyBackend();
  const { app } = await toyApp(
    { MAX_BATCH_SIZE: '1', MAX_QUEUE: '1' },
    { backend, loggerInstance: pino(loggerOptions(config), sink) },
  );
  const open = backend.hold();
  const running = [
    app.inject({ method: 'POST', url: '/complete', payload: { prompt: 'a', max_new_tokens: 1 } }),
    app.inject({ method: 'POST', url: '/complete', payload: { prompt: 'b', max_new_tokens: 1 } }),
  ];
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  const full = await app.inject({
    method: 'POST',
    url: '/complete',
    payload: { prompt: 'c', max_new_tokens: 1 },
  });
  assert.equal(full.statusCode, 503);
  open();
  await Promise.all(running);
  backend.failNext = new BackendError('BACKEND_ERROR', 'model exploded');
  const failed = await app.inject({
    method: 'POST',
    url: '/complete',
    payload: { prompt: 'd', max_new_tokens: 1 },
  });
  assert.equal(failed.statusCode, 502);
  await app.close();
  const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  const refused = records.filter((r) => r.msg === 'refused');
  assert.equal(refused.length, 1);
  assert.equal(refused[0]!.level, 40);
  assert.deepEqual(refused[0]!.error, {
    code: 'QUEUE_FULL',
    message: 'all 1 generation slots are busy and 1 requests are waiting; retry later',
  });
  assert.equal(refused[0]!.err, undefined, 'no error object, so no stack');
  const failures = records.filter((r) => r.level === 50);
  assert.equal(failures.length, 1);
  assert.match(JSON.stringify(failures[0]!.err), /model exploded/);
});

test('not-ready answers (/readyz, /info, /complete) log one warn line each, never an error with a stack', async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const config = testConfig();
  const backend = new ToyBackend({ ready: false });
  const { app } = await toyApp({}, { backend, loggerInstance: pino(loggerOptions(config), sink) });
  const answers = [
    await app.inject({ method: 'GET', url: '/readyz' }),
    await app.inject({ method: 'GET', url: '/info' }),
    await app.inject({ method: 'POST', url: '/complete', payload: { prompt: 'a' } }),
  ];
  await app.close();
  assert.deepEqual(
    answers.map((r) => [r.statusCode, r.json<{ error: { code: string } }>().error.code]),
    [
      [503, 'NOT_READY'],
      [503, 'BACKEND_NOT_READY'],
      [503, 'BACKEND_NOT_READY'],
    ],
  );
  const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(
    records.filter((r) => (r.level as number) >= 50),
    [],
  );
  const refused = records.filter((r) => r.msg === 'refused');
  assert.deepEqual(
    refused.map((r) => [r.level, (r.error as { code: string }).code, r.err]),
    [
      [40, 'NOT_READY', undefined],
      [40, 'BACKEND_NOT_READY', undefined],
      [40, 'BACKEND_NOT_READY', undefined],
    ],
  );
});

/** A pino sink that keeps every record. */
function recordSink(): { sink: Writable; records: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { sink, records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

test('probes and scrapes (/healthz, /readyz, /metrics) log at debug; other routes at info', async () => {
  for (const level of ['info', 'debug'] as const) {
    const { sink, records } = recordSink();
    const config = testConfig({ LOG_LEVEL: level });
    const { app } = await toyApp(
      { LOG_LEVEL: level },
      { loggerInstance: pino(loggerOptions(config), sink) },
    );
    for (const url of ['/healthz', '/readyz', '/metrics', '/info']) {
      assert.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url);
    }
    await app.close();
    const completed = records()
      .filter((r) => r.msg === 'request completed')
      .map((r) => [(r.req as { url?: string } | undefined)?.url, r.level]);
    // pino's request-completed line names the request only by id; map ids back to the urls.
    const urls = new Map(
      records()
        .filter((r) => r.msg === 'incoming request')
        .map((r) => [r.reqId, (r.req as { url: string }).url]),
    );
    const completedUrls = records()
      .filter((r) => r.msg === 'request completed')
      .map((r) => [urls.get(r.reqId), r.level]);
    if (level === 'info') {
      assert.deepEqual(completedUrls, [['/info', 30]], 'only /info at info level');
    } else {
      assert.deepEqual(completedUrls, [
        ['/healthz', 20],
        ['/readyz', 20],
        ['/metrics', 20],
        ['/info', 30],
      ]);
    }
    assert.equal(completed.length, completedUrls.length);
  }
});

test('a failure mid-stream is logged by its catalogue record, as before the headers', async () => {
  const cases = [
    // The backend closed under the generation (shutdown): a refusal, one warn line.
    { err: new BackendError('BACKEND_NOT_READY', 'closed'), warn: 1, error: 0 },
    // The model server broke: an error with the failure under `err`.
    { err: new BackendError('BACKEND_ERROR', 'model exploded mid-stream'), warn: 0, error: 1 },
  ];
  for (const c of cases) {
    const { sink, records } = recordSink();
    const config = testConfig();
    const backend = new ToyBackend();
    const { app } = await toyApp(
      {},
      { backend, loggerInstance: pino(loggerOptions(config), sink) },
    );
    const open = backend.hold();
    const pending = app.inject({
      method: 'POST',
      url: '/complete',
      payload: { prompt: 'hello there', max_new_tokens: 4, stream: true },
    });
    await new Promise((resolve) => setImmediate(resolve));
    backend.failNext = c.err;
    open();
    const res = await pending;
    assert.equal(res.statusCode, 200);
    assert.match(res.body, new RegExp(`event: error\\ndata: .*"code":"${c.err.code}"`));
    await app.close();
    const all = records();
    // The start's one warning (no API_KEYS_FILE) is not about the stream.
    const warns = all.filter((r) => r.level === 40 && !/API_KEYS_FILE/.test(String(r.msg)));
    const errors = all.filter((r) => (r.level as number) >= 50);
    assert.equal(warns.length, c.warn, `${c.err.code}: warn lines`);
    assert.equal(errors.length, c.error, `${c.err.code}: error lines`);
    if (c.warn === 1) {
      assert.equal(warns[0]!.msg, 'refused');
      assert.equal(warns[0]!.err, undefined, 'no stack for a refusal');
    }
    if (c.error === 1) assert.match(JSON.stringify(errors[0]!.err), /model exploded mid-stream/);
  }
});
