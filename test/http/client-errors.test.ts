/**
 * What the HTTP parser refuses, and slow clients, over real sockets: every answer in the one error
 * body with a stable code and `connection: close`, never fastify's or Node's default body, never
 * a second answer on a socket that already has one.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { toyApp } from '../support/app.js';
import { exchange, listening, open, parseAnswer, readToClose } from '../support/raw-http.js';
import type { ToyBackend } from '../support/toy-backend.js';

let app: FastifyInstance;
let backend: ToyBackend;
let port: number;
before(async () => {
  // A short bound so the slow-client cases end quickly; the answers, not the durations, are tested.
  ({ app, backend } = await toyApp({ REQUEST_TIMEOUT_MS: '300' }));
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

test('the bound is on receiving the request, not on answering: a stream outlives it', async () => {
  const release = backend.hold();
  const stepsBefore = backend.steps.length;
  const body = JSON.stringify({ prompt: 'a', max_new_tokens: 3, stream: true });
  const stream = exchange(
    port,
    'POST /complete HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n' +
      `Content-Length: ${body.length}\r\n\r\n${body}`,
  );
  while (backend.steps.length === stepsBefore) await tick();
  // A request begun after the stream's, cut at the bound: so the bound has passed for the stream.
  const { text: late } = await exchange(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n');
  assertRefusal(late, 408, 'REQUEST_TIMEOUT', /within 300 ms/);
  release();
  const { text, error } = await stream;
  assert.equal(error, undefined);
  assert.match(text, /^HTTP\/1\.1 200 /);
  assert.match(text, /event: done\n/);
});

test('a socket that already has its answer (413, lingering) is closed at the bound, never answered twice', async () => {
  const serverSide = new Promise<void>((resolve) =>
    app.server.once('connection', (socket) => socket.once('close', () => resolve())),
  );
  // Half-open: the client keeps the connection and stops mid-body; the request bound ends it.
  const socket = await open(port, true);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => {});
  socket.write(
    'POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"text":',
  );
  await new Promise<void>((resolve) => socket.once('end', () => resolve()));
  // The server has answered and half-closed; more body keeps the request unfinished until cut.
  socket.write('"aaaa');
  await serverSide;
  socket.destroy();
  const answer = parseAnswer(Buffer.concat(chunks).toString('latin1'));
  assert.equal(answer.status, 413);
  assert.equal(JSON.parse(answer.body).error.code, 'PAYLOAD_TOO_LARGE');
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
