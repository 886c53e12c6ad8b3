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
