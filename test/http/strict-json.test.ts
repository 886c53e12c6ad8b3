/**
 * Input is never silently changed: a JSON body that is not valid UTF-8, or a string holding a
 * lone UTF-16 surrogate (an escape like "\ud800" with no partner), is refused with 400 on every
 * field that takes text, instead of reaching the model as U+FFFD.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { toyApp } from '../support/app.js';

let app: FastifyInstance;
before(async () => {
  ({ app } = await toyApp());
});
after(() => app.close());

const post = (url: string, payload: Buffer | string) =>
  app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload });

/** `{"<field>": <value>}` with the bytes 0xff 0xfe spliced into the string, as raw bytes. */
function withInvalidBytes(before: string, after: string): Buffer {
  return Buffer.concat([Buffer.from(before), Buffer.from([0xff, 0xfe]), Buffer.from(after)]);
}

const FIELDS = [
  { url: '/complete', name: 'prompt', before: '{"prompt":"ab', after: 'cd","max_new_tokens":1}' },
  {
    url: '/complete',
    name: 'stop',
    before: '{"prompt":"ab","max_new_tokens":1,"stop":"x',
    after: 'y"}',
  },
  {
    url: '/complete',
    name: 'stop[1]',
    before: '{"prompt":"ab","max_new_tokens":1,"stop":["x","y',
    after: 'z"]}',
  },
  { url: '/tokenize', name: 'text', before: '{"text":"ab', after: 'cd"}' },
] as const;

for (const field of FIELDS) {
  test(`raw invalid UTF-8 in ${field.url} ${field.name} is 400 INVALID_UTF8, not U+FFFD`, async () => {
    const res = await post(field.url, withInvalidBytes(field.before, field.after));
    assert.equal(res.statusCode, 400, res.body);
    const offset = Buffer.byteLength(field.before);
    assert.deepEqual(res.json(), {
      error: {
        code: 'INVALID_UTF8',
        message: `the body is not valid UTF-8 (byte 0xff at offset ${offset}); send the JSON body encoded as UTF-8`,
      },
    });
  });

  test(`a lone surrogate escape in ${field.url} ${field.name} is 400 LONE_SURROGATE`, async () => {
    for (const lone of ['\\ud800', '\\udfff', '\\ude00\\ud83d']) {
      const res = await post(field.url, `${field.before}${lone}${field.after}`);
      assert.equal(res.statusCode, 400, res.body);
      assert.deepEqual(res.json(), {
        error: {
          code: 'LONE_SURROGATE',
          message: `'${field.name}' contains a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape without its pair); send well-formed Unicode text`,
        },
      });
    }
  });
}

test('a lone surrogate in a field name is refused too', async () => {
  const res = await post('/tokenize', '{"text":"a","\\ud800":1}');
  assert.equal(res.statusCode, 400);
  assert.deepEqual(res.json(), {
    error: {
      code: 'LONE_SURROGATE',
      message:
        'a field name contains a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape without its pair); send well-formed Unicode text',
    },
  });
});

test('well-formed text passes unchanged: raw multi-byte UTF-8 and escaped surrogate pairs', async () => {
  const raw = await post('/tokenize', Buffer.from('{"text":"é😀"}', 'utf8'));
  assert.equal(raw.statusCode, 200, raw.body);
  const escaped = await post('/tokenize', '{"text":"\\u00e9\\ud83d\\ude00"}');
  assert.equal(escaped.statusCode, 200, escaped.body);
  // The same text either way, so the same tokens.
  assert.deepEqual(escaped.json(), raw.json());
});

test('the parser keeps refusing what it refused: empty, not JSON, __proto__', async () => {
  assert.deepEqual((await post('/tokenize', '')).json(), {
    error: { code: 'INVALID_JSON', message: 'the body is empty; send a JSON object' },
  });
  for (const body of ['{"text":', '{"text":"a","__proto__":{"x":1}}']) {
    const res = await post('/tokenize', body);
    assert.equal(res.statusCode, 400);
    assert.equal(res.json<{ error: { code: string } }>().error.code, 'INVALID_JSON');
  }
});
