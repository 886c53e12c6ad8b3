/**
 * A client that writes its whole body before reading (Python's urllib, many scripts) must read
 * the 413, not "Broken pipe": the gateway answers early, then drains a bounded amount before it
 * closes.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { installLingeringClose } from '../../src/http/lingering-close.js';
import { toyApp } from '../support/app.js';
import { listening, open, parseAnswer, readToClose } from '../support/raw-http.js';

let app: FastifyInstance;
let port: number;
before(async () => {
  ({ app } = await toyApp());
  port = await listening(app);
});
after(() => app.close());

const TOO_LARGE = {
  error: { code: 'PAYLOAD_TOO_LARGE', message: 'the body must not exceed 65536 bytes' },
};

/** Sends the request whole (waiting until every byte is written), and only then reads. */
async function wholeBodyFirst(head: string, body: Buffer): Promise<ReturnType<typeof parseAnswer>> {
  const socket = await open(port);
  const answer = readToClose(socket);
  // Reading starts only once the write is done; the data is buffered until then.
  socket.pause();
  await new Promise<void>((resolve, reject) =>
    socket.write(Buffer.concat([Buffer.from(head), body]), (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  socket.resume();
  const { text, error } = await answer;
  assert.notEqual(text, '', `no answer (${error ?? 'closed'})`);
  return parseAnswer(text);
}

test('a 5 MB body sent whole with its Content-Length reads the 413 (urllib)', async () => {
  const body = Buffer.alloc(5 * 1024 * 1024, 'a');
  const answer = await wholeBodyFirst(
    `POST /complete HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    body,
  );
  assert.equal(answer.status, 413);
  assert.equal(answer.headers.connection, 'close');
  assert.deepEqual(JSON.parse(answer.body), TOO_LARGE);
});

test('a 5 MB chunked body sent whole reads the 413 too', async () => {
  const chunk = Buffer.alloc(1024 * 1024, 'a');
  const framed = Buffer.concat([
    ...Array.from({ length: 5 }, () =>
      Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]),
    ),
    Buffer.from('0\r\n\r\n'),
  ]);
  const answer = await wholeBodyFirst(
    'POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
    framed,
  );
  assert.equal(answer.status, 413);
  assert.deepEqual(JSON.parse(answer.body), TOO_LARGE);
});

/** A bare app with the lingering close and small bounds, to see each bound end a linger. */
async function lingeringApp(limits: { maxBytes: number; timeMs: number; idleMs: number }) {
  const bare = Fastify({ bodyLimit: 1024 });
  installLingeringClose(bare, limits);
  bare.post('/', async () => ({ ok: true }));
  return { bare, port: await listening(bare) };
}

test('the linger ends after maxBytes however much more the client sends', async () => {
  const { bare, port: barePort } = await lingeringApp({
    maxBytes: 1024 * 1024,
    timeMs: 600_000,
    idleMs: 600_000,
  });
  const socket = await open(barePort);
  const answer = readToClose(socket);
  socket.write(
    'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n',
  );
  // Write as fast as the socket takes it, until the server cuts the connection.
  const chunk = Buffer.alloc(64 * 1024, 'a');
  let sent = 0;
  const pump = (): void => {
    while (!socket.destroyed && socket.write(chunk)) sent += chunk.length;
    if (!socket.destroyed) socket.once('drain', pump);
  };
  pump();
  await answer;
  // 1 MiB read, plus what the two kernels buffered: far from the 1 GB announced.
  assert.ok(sent < 32 * 1024 * 1024, `cut after ${sent} bytes of a 1 GB body`);
  await bare.close();
});

test('the linger ends when the client stops sending (idle bound), after the 413 was sent', async () => {
  const { bare, port: barePort } = await lingeringApp({
    maxBytes: 1024 * 1024,
    timeMs: 600_000,
    idleMs: 50,
  });
  const serverSide = new Promise<void>((resolve) =>
    bare.server.once('connection', (socket) => socket.once('close', () => resolve())),
  );
  // Half-open: this client neither sends more nor closes, so only the idle bound ends the linger.
  const socket = await open(barePort, true);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()));
  socket.write(
    'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"a":',
  );
  await ended;
  const answer = parseAnswer(Buffer.concat(chunks).toString('latin1'));
  assert.equal(answer.status, 413);
  assert.equal(answer.headers.connection, 'close');
  await serverSide;
  socket.destroy();
  await bare.close();
});
