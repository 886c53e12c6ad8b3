/**
 * A raw TCP client for what undici and app.inject cannot send: malformed HTTP, trickled bodies,
 * a body written whole before reading (Python's urllib). It reads until the server closes.
 */
import { connect, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

export interface RawAnswer {
  /** Everything the server wrote, as latin1 (bytes → chars one to one). */
  readonly text: string;
  /** The socket error that ended the exchange (ECONNRESET, EPIPE), if any. */
  readonly error: string | undefined;
}

export interface ParsedAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export async function listening(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  return address.port;
}

/** allowHalfOpen: stay open after the server's FIN, as a client still sending would. */
export function open(port: number, allowHalfOpen = false): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Collects what the server writes on `socket` until it closes the connection. */
export function readToClose(socket: Socket): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error ??= err.code ?? err.message;
    });
    socket.on('close', () => resolve({ text: Buffer.concat(chunks).toString('latin1'), error }));
  });
}

/** Writes `bytes` (all of them, then waits until they are handed to the kernel) and reads. */
export async function exchange(port: number, bytes: string | Buffer): Promise<RawAnswer> {
  const socket = await open(port);
  const answer = readToClose(socket);
  socket.write(bytes);
  return answer;
}

/** The one HTTP/1.1 answer in `text`; throws when there is none or more than one. */
export function parseAnswer(text: string): ParsedAnswer {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no HTTP answer in ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
  if (status === null) throw new Error(`not a status line: ${JSON.stringify(statusLine)}`);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length']);
  const body = text.slice(end + 4, end + 4 + length);
  const rest = text.slice(end + 4 + length);
  if (rest !== '') throw new Error(`more than one answer: ${JSON.stringify(rest.slice(0, 200))}`);
  return { status: Number(status[1]), headers, body };
}
