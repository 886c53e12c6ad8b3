import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, beforeEach, describe, test } from 'node:test';
import { pullModel } from '../../src/model/hub.js';

/**
 * A local server in the hub's layout: /<repo>/resolve/<rev>/<file>. Small files answer directly
 * with a git-blob ETag; LFS files answer 302 to another origin's /cdn/<sha256> with
 * X-Linked-Size and X-Linked-Etag, and the CDN serves byte ranges.
 */
const CONFIG = Buffer.from('{"model_type":"gpt2","n_layer":2}\n');
const WEIGHTS = randomBytes(300_000);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const COMMIT = 'a'.repeat(40);

interface Behaviour {
  /** Drop the connection after this many body bytes on the next CDN response. */
  dropAfter?: number;
  /** Announce this sha256 instead of the real one. */
  announceSha?: string;
  requireToken?: string;
  ignoreRange?: boolean;
}

let server: Server;
let cdnServer: Server;
let endpoint: string;
let cdnOrigin: string;
let behaviour: Behaviour = {};
const log: { method: string; url: string; range?: string; auth?: string }[] = [];

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '';
  log.push({
    method: req.method ?? '',
    url,
    range: req.headers.range,
    auth: req.headers.authorization,
  });
  if (url.startsWith('/cdn/')) {
    let body = WEIGHTS;
    let status = 200;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !behaviour.ignoreRange) {
      const from = Number(range[1]);
      body = WEIGHTS.subarray(from);
      status = 206;
      res.setHeader('content-range', `bytes ${from}-${WEIGHTS.length - 1}/${WEIGHTS.length}`);
    }
    res.writeHead(status, { 'content-length': body.length, 'accept-ranges': 'bytes' });
    if (behaviour.dropAfter !== undefined) {
      const cut = behaviour.dropAfter;
      behaviour.dropAfter = undefined;
      res.write(body.subarray(0, cut), () => res.destroy());
      return;
    }
    res.end(body);
    return;
  }
  if (
    behaviour.requireToken !== undefined &&
    req.headers.authorization !== `Bearer ${behaviour.requireToken}`
  ) {
    res
      .writeHead(401, { 'content-type': 'application/json' })
      .end('{"error":"Invalid credentials"}');
    return;
  }
  if (url.startsWith('/old-name/')) {
    // A renamed repo: the hub answers with a relative redirect to the new path.
    res.writeHead(307, { location: url.replace('/old-name/', '/gpt2/'), 'content-length': 0 });
    res.end();
    return;
  }
  if (url === '/gpt2/resolve/main/config.json') {
    res.writeHead(200, {
      'content-length': CONFIG.length,
      etag: '"0123456789abcdef0123456789abcdef01234567"',
      'x-repo-commit': COMMIT,
    });
    res.end(req.method === 'HEAD' ? undefined : CONFIG);
    return;
  }
  if (url === '/gpt2/resolve/main/model.safetensors') {
    res.writeHead(302, {
      location: `${cdnOrigin}/cdn/${sha256(WEIGHTS)}`,
      'x-linked-size': String(WEIGHTS.length),
      'x-linked-etag': `"${behaviour.announceSha ?? sha256(WEIGHTS)}"`,
      'x-repo-commit': COMMIT,
      'content-length': 0,
    });
    res.end();
    return;
  }
  res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"Entry not found"}');
}

let dir: string;
before(async () => {
  // The CDN is another origin, as on the real hub: fetch must drop Authorization on the redirect.
  server = createServer(handle);
  cdnServer = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => cdnServer.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cdnOrigin = `http://127.0.0.1:${(cdnServer.address() as AddressInfo).port}`;
});
after(async () => {
  await new Promise((resolve) => server.close(resolve));
  await new Promise((resolve) => cdnServer.close(resolve));
});
beforeEach(async () => {
  behaviour = {};
  log.length = 0;
  dir = await mkdtemp(join(tmpdir(), 'gpt2-hub-'));
});

const pull = (extra: Partial<Parameters<typeof pullModel>[0]> = {}) =>
  pullModel({ repo: 'gpt2', dir, endpoint, retryDelayMs: 0, ...extra });

describe('pullModel against a local server in the hub layout', () => {
  test('downloads config.json (size-checked) and model.safetensors (sha256-checked)', async () => {
    const files = await pull();
    assert.deepEqual(files, [
      {
        file: 'config.json',
        path: join(dir, 'config.json'),
        bytes: CONFIG.length,
        sha256: sha256(CONFIG),
        verified: 'size',
        resumedFrom: 0,
        skipped: false,
      },
      {
        file: 'model.safetensors',
        path: join(dir, 'model.safetensors'),
        bytes: WEIGHTS.length,
        sha256: sha256(WEIGHTS),
        verified: 'sha256',
        resumedFrom: 0,
        skipped: false,
      },
    ]);
    assert.deepEqual(await readFile(join(dir, 'model.safetensors')), WEIGHTS);
    assert.deepEqual(await readFile(join(dir, 'config.json')), CONFIG);
    // A second run finds both complete and downloads nothing.
    log.length = 0;
    const again = await pull();
    assert.deepEqual(
      again.map((f) => f.skipped),
      [true, true],
    );
    assert.deepEqual(
      log.map((l) => l.method),
      ['HEAD', 'HEAD'],
    );
  });

  test('resumes with Range after a dropped connection', async () => {
    behaviour.dropAfter = 100_000;
    const [weights] = await pull({ files: ['model.safetensors'] });
    assert.equal(weights?.verified, 'sha256');
    assert.deepEqual(await readFile(join(dir, 'model.safetensors')), WEIGHTS);
    const cdn = log.filter((l) => l.url.startsWith('/cdn/'));
    assert.equal(cdn.length, 2);
    assert.equal(cdn[0]?.range, undefined);
    assert.match(cdn[1]?.range ?? '', /^bytes=\d+-$/);
    const from = Number(/\d+/.exec(cdn[1]!.range!)![0]);
    assert.ok(from > 0 && from <= 100_000, `resumed from ${from}`);
    await assert.rejects(stat(join(dir, 'model.safetensors.part')), { code: 'ENOENT' });
  });

  test('resumes a .part left by an earlier run, and restarts when the server ignores Range', async () => {
    await writeFile(join(dir, 'model.safetensors.part'), WEIGHTS.subarray(0, 12_345));
    const [first] = await pull({ files: ['model.safetensors'] });
    assert.equal(first?.resumedFrom, 12_345);
    assert.equal(log.find((l) => l.url.startsWith('/cdn/'))?.range, 'bytes=12345-');
    await rm(join(dir, 'model.safetensors'));
    await writeFile(join(dir, 'model.safetensors.part'), WEIGHTS.subarray(0, 777));
    behaviour.ignoreRange = true;
    await pull({ files: ['model.safetensors'] });
    assert.deepEqual(await readFile(join(dir, 'model.safetensors')), WEIGHTS);
  });

  test('a sha256 mismatch deletes the download and says so', async () => {
    const wrong = 'f'.repeat(64);
    behaviour.announceSha = wrong;
    await assert.rejects(pull({ files: ['model.safetensors'] }), {
      message: `gpt2@main/model.safetensors: sha256 mismatch (expected ${wrong}, got ${sha256(WEIGHTS)}); the corrupt download was deleted, run the command again`,
    });
    await assert.rejects(stat(join(dir, 'model.safetensors.part')), { code: 'ENOENT' });
    await assert.rejects(stat(join(dir, 'model.safetensors')), { code: 'ENOENT' });
  });

  test('HF_TOKEN goes to the hub as a bearer token, never to the CDN; 401 and 404 are explained', async () => {
    behaviour.requireToken = 'hf_secret';
    await assert.rejects(pull({ files: ['config.json'] }), {
      message:
        'gpt2@main/config.json: the hub answered 401 (a gated or private repo needs HF_TOKEN)',
    });
    log.length = 0;
    await pull({ token: 'hf_secret' });
    const hub = log.filter((l) => l.url.startsWith('/gpt2/'));
    const cdn = log.filter((l) => l.url.startsWith('/cdn/'));
    assert.equal(hub.length, 4); // HEAD + GET for each of the two files
    assert.ok(hub.every((l) => l.auth === 'Bearer hf_secret'));
    assert.equal(cdn.length, 1);
    assert.equal(cdn[0]?.auth, undefined);
    await assert.rejects(pull({ token: 'hf_secret', files: ['pytorch_model.bin'] }), {
      message: 'gpt2@main/pytorch_model.bin: not found (check the repo id, revision and file name)',
    });
  });

  test('an unreachable endpoint gives up with a clear line', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await assert.rejects(
      pull({ endpoint: `http://127.0.0.1:${port}`, files: ['config.json'] }),
      (err: Error) => {
        assert.match(
          err.message,
          new RegExp(
            `^gpt2@main/config.json: cannot reach http://127.0.0.1:${port} .*\\(gave up after 5 attempts; run again to resume\\)$`,
          ),
        );
        return true;
      },
    );
  });

  test('draws a progress bar only where it is asked to', async () => {
    let drawn = '';
    const progress = new Writable({
      write(chunk, _enc, cb) {
        drawn += String(chunk);
        cb();
      },
    });
    await pull({ files: ['model.safetensors'], progress });
    assert.match(drawn, /\rmodel\.safetensors \[#{30}\] 100% 0\.3\/0\.3 MB [\d.]+ MB\/s\n$/);
  });

  test('follows the hub’s relative redirect for a renamed repo, and still checks the LFS sha256', async () => {
    const files = await pull({ repo: 'old-name' });
    assert.deepEqual(
      files.map((f) => [f.file, f.bytes, f.verified]),
      [
        ['config.json', CONFIG.length, 'size'],
        ['model.safetensors', WEIGHTS.length, 'sha256'],
      ],
    );
    assert.deepEqual(await readFile(join(dir, 'model.safetensors')), WEIGHTS);
  });

  test('rejects repo ids and file names that would escape the layout', async () => {
    await assert.rejects(pull({ repo: '../etc' }), /"\.\.\/etc" is not a hub repo id/);
    await assert.rejects(
      pull({ files: ['../x'] }),
      /file name "\.\.\/x" must be a path inside the repo/,
    );
  });
});
