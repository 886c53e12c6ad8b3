/**
 * The playground's routes, through app.inject: the page and its files are served with the CSP,
 * nosniff and a strong ETag (If-None-Match → 304), reference nothing outside the gateway, and
 * take no rate limit while /complete keeps its own.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { PLAYGROUND_CSP, playgroundRoutes } from '../../src/http/routes/playground.js';
import { toyApp } from '../support/app.js';

const EXPECTED_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

let app: FastifyInstance;
before(async () => {
  ({ app } = await toyApp());
});
after(() => app.close());

test('GET / serves the page with the CSP, nosniff, no-cache and a strong ETag', async () => {
  const res = await app.inject({ method: 'GET', url: '/' });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(PLAYGROUND_CSP, EXPECTED_CSP);
  assert.equal(res.headers['content-security-policy'], EXPECTED_CSP);
  assert.equal(res.headers['x-content-type-options'], 'nosniff');
  assert.equal(res.headers['cache-control'], 'no-cache');
  assert.match(String(res.headers.etag), /^"[A-Za-z0-9_-]{27}"$/);
  assert.match(res.body, /<script type="module" src="playground\/page\.js"><\/script>/);
  for (const id of [
    'prompt',
    'max-new-tokens',
    'generate',
    'stop-generation',
    'completion',
    'token-chart',
    'stats',
    'api-key',
  ]) {
    assert.match(res.body, new RegExp(`id="${id}"`), `#${id} is on the page`);
  }
});

test('If-None-Match with the ETag (also weak, also in a list) answers 304 with no body', async () => {
  const first = await app.inject({ method: 'GET', url: '/' });
  const etag = String(first.headers.etag);
  for (const header of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
    const res = await app.inject({ method: 'GET', url: '/', headers: { 'if-none-match': header } });
    assert.equal(res.statusCode, 304, header);
    assert.equal(res.body, '');
    assert.equal(res.headers.etag, etag);
    assert.equal(res.headers['content-security-policy'], EXPECTED_CSP);
  }
  const changed = await app.inject({
    method: 'GET',
    url: '/',
    headers: { 'if-none-match': '"not-this-one"' },
  });
  assert.equal(changed.statusCode, 200);
  assert.equal(changed.body, first.body);
});

test('every file the page loads is served, with its type, the CSP and its own ETag', async () => {
  const page = (await app.inject({ method: 'GET', url: '/' })).body;
  const wanted = [...page.matchAll(/(?:src|href)="(playground\/[^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(wanted.sort(), ['playground/page.css', 'playground/page.js']);
  const seen = new Set<string>();
  // Follow the module graph: every relative import must be served too.
  while (wanted.length > 0) {
    const path = wanted.pop() as string;
    if (seen.has(path)) continue;
    seen.add(path);
    const res = await app.inject({ method: 'GET', url: `/${path}` });
    assert.equal(res.statusCode, 200, path);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['content-security-policy'], EXPECTED_CSP);
    assert.match(String(res.headers.etag), /^"[A-Za-z0-9_-]{27}"$/);
    const revalidated = await app.inject({
      method: 'GET',
      url: `/${path}`,
      headers: { 'if-none-match': String(res.headers.etag) },
    });
    assert.equal(revalidated.statusCode, 304, path);
    if (path.endsWith('.css')) {
      assert.equal(res.headers['content-type'], 'text/css; charset=utf-8');
      assert.doesNotMatch(res.body, /url\(|@import/, 'the style sheet loads nothing');
    } else {
      assert.equal(res.headers['content-type'], 'text/javascript; charset=utf-8');
      for (const m of res.body.matchAll(/from '\.\/([^']+)'/g)) wanted.push(`playground/${m[1]}`);
      // Only relative requests: the one absolute URL allowed is the SVG namespace name.
      const absolute = [...res.body.matchAll(/https?:\/\/[^'"`\s]+/g)].map((m) => m[0]);
      assert.deepEqual(
        absolute.filter((url) => url !== 'http://www.w3.org/2000/svg'),
        [],
        path,
      );
    }
  }
  assert.ok(seen.has('playground/sse.js') && seen.has('playground/chart.js'), [...seen].join());
  assert.doesNotMatch(
    page,
    /(?:src|href)="(?:https?:)?\/\//,
    'the page loads nothing from elsewhere',
  );
});

test('HEAD / answers the headers only; an unknown playground file is the usual 404', async () => {
  const head = await app.inject({ method: 'HEAD', url: '/' });
  assert.equal(head.statusCode, 200);
  assert.equal(head.body, '');
  assert.equal(head.headers['content-security-policy'], EXPECTED_CSP);
  const missing = await app.inject({ method: 'GET', url: '/playground/nope.js' });
  assert.equal(missing.statusCode, 404);
  assert.deepEqual(missing.json(), {
    error: { code: 'NOT_FOUND', message: 'no route GET /playground/nope.js' },
  });
});

test('the page takes no rate limit, and /complete keeps its own', async () => {
  const { app: limited } = await toyApp({ RATE_LIMIT_MAX: '1' });
  try {
    for (let i = 0; i < 3; i++) {
      assert.equal((await limited.inject({ method: 'GET', url: '/' })).statusCode, 200);
      const js = await limited.inject({ method: 'GET', url: '/playground/page.js' });
      assert.equal(js.statusCode, 200);
    }
    const complete = () =>
      limited.inject({
        method: 'POST',
        url: '/complete',
        payload: { prompt: 'Hello', max_new_tokens: 1 },
      });
    assert.equal((await complete()).statusCode, 200);
    const refused = await complete();
    assert.equal(refused.statusCode, 429);
    assert.equal(refused.json<{ error: { code: string } }>().error.code, 'RATE_LIMITED');
  } finally {
    await limited.close();
  }
});

test('a gateway whose page was not built still starts, and GET / says how to build it', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'playground-empty-'));
  const bare = Fastify();
  try {
    await bare.register(playgroundRoutes, { directory: empty });
    const res = await bare.inject({ method: 'GET', url: '/' });
    assert.equal(res.statusCode, 404);
    const body = res.json<{ code: string; message: string }>();
    assert.equal(body.code, 'NOT_FOUND');
    assert.match(body.message, /playground page is not built .*run `npm run build`/);
  } finally {
    await bare.close();
    rmSync(empty, { recursive: true, force: true });
  }
});
