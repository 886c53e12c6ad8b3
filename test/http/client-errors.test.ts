/**
 * What the HTTP parser refuses, and slow clients, over real sockets: every answer in the one error
 * body with a stable code and `connection: close`, never fastify's or Node's default body, never
 * a second answer on a socket that already has one.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { toyApp } from '../support/app.js';
import { exchange, listening, open, parseAnswer, readToClose } from '../support/raw-http.js';

let app: FastifyInstance;
let port: number;
before(async () => {
  // A short bound so the slow-client cases end quickly; the answers, not the durations, are tested.
  ({ app } = await toyApp({ REQUEST_TIMEOUT_MS: '300' }));
  port = await listening(app);
});
after(() => app.close());

function assertRefusal(text: string, status: number, code: string, message: RegExp): void {
  const answer = parseAnswer(text);
  assert.equal(answer.status, status, text);
  assert.equal(answer.headers.connection, 'close');
  assert.match(answer.headers['content-type'] ?? '', /^application\/json/);
  const body = JSON.parse(answer.body) as { error: { code: string; message: string } };
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error), ['code', 'message']);
  assert.equal(body.error.code, code);
  assert.match(body.error.message, message);
}

test('a 100 KB header is refused with 431 HEADERS_TOO_LARGE in the one error body', async () => {
  const { text } = await exchange(
    port,
    `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100_000)}\r\n\r\n`,
  );
  assertRefusal(text, 431, 'HEADERS_TOO_LARGE', /headers are larger than/);
});

test('Content-Length with Transfer-Encoding (request smuggling) is a 400 BAD_REQUEST', async () => {
  const { text } = await exchange(
    port,
    'POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
      'Content-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  );
  assertRefusal(text, 400, 'BAD_REQUEST', /^the request is not valid HTTP\/1\.1: /);
});

test('two different Content-Length headers are a 400 BAD_REQUEST', async () => {
  const { text } = await exchange(
    port,
    'POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
      'Content-Length: 12\r\nContent-Length: 13\r\n\r\n{"text":"a"}',
  );
  assertRefusal(text, 400, 'BAD_REQUEST', /^the request is not valid HTTP\/1\.1: /);
});

test('a bare LF line ending is a 400 BAD_REQUEST', async () => {
  const { text } = await exchange(port, 'GET /healthz HTTP/1.1\nHost: x\n\n');
  assertRefusal(text, 400, 'BAD_REQUEST', /^the request is not valid HTTP\/1\.1: /);
});

test('a body that stops short of its Content-Length is answered 408 REQUEST_TIMEOUT', async () => {
  const { text } = await exchange(
    port,
    'POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
      'Content-Length: 100\r\n\r\n{"text":',
  );
  assertRefusal(text, 408, 'REQUEST_TIMEOUT', /within 300 ms/);
});

test('a body trickled a byte at a time is cut at the request bound with 408', async () => {
  const socket = await open(port);
  const answer = readToClose(socket);
  socket.write(
    'POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n',
  );
  // A byte every 10 ms (the trickling client's pace, not a wait) until the server answers: the
  // 60,000-byte body would take ten minutes, so only the request bound can end it.
  let closed = false;
  socket.once('close', () => {
    closed = true;
  });
  const trickle = (): void => {
    if (closed || socket.destroyed) return;
    socket.write(' ', () => setTimeout(trickle, 10));
  };
  trickle();
  const { text } = await answer;
  assertRefusal(text, 408, 'REQUEST_TIMEOUT', /within 300 ms/);
});

test('headers that never finish are answered 408 REQUEST_TIMEOUT', async () => {
  const { text } = await exchange(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n');
  assertRefusal(text, 408, 'REQUEST_TIMEOUT', /within 300 ms/);
});

test('a well-formed request on the same server is still answered normally', async () => {
  const { text } = await exchange(
    port,
    'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  );
  const answer = parseAnswer(text);
  assert.equal(answer.status, 200);
  assert.deepEqual(JSON.parse(answer.body), { status: 'ok' });
});

test('MAX_CONNECTIONS: the connection past the cap is closed unanswered; a freed slot serves again', async () => {
  const { app: capped } = await toyApp({ MAX_CONNECTIONS: '2' });
  const cappedPort = await listening(capped);
  const accepted: Promise<void>[] = [];
  capped.server.on('connection', (socket) => {
    accepted.push(new Promise((resolve) => socket.once('close', () => resolve())));
  });
  const keepAlive = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
  const held = [await open(cappedPort), await open(cappedPort)];
  // Each held connection has been served once, so the server has surely counted both.
  for (const socket of held) {
    const first = new Promise<string>((resolve) =>
      socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1'))),
    );
    socket.write(keepAlive);
    assert.match(await first, /^HTTP\/1\.1 200 /);
  }
  const extra = await exchange(
    cappedPort,
    'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  );
  assert.equal(extra.text, '', 'the connection past the cap gets no answer');
  // Free one slot, wait until the server has seen it close, and a new connection is served.
  held[0]?.destroy();
  await accepted[0];
  const again = await exchange(
    cappedPort,
    'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  );
  assert.equal(parseAnswer(again.text).status, 200);
  held[1]?.destroy();
  await capped.close();
});
