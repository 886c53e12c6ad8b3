/**
 * Lingering close: when the gateway answers before it has read the request body (413 on a
 * Content-Length over the limit) and closes, a client that writes its whole body before reading
 * (Python's urllib) would otherwise hit a reset and "Broken pipe" and never see the answer: closing
 * a socket with unread data makes the kernel send RST, which also discards the answer on the
 * client. So, like nginx's lingering_close (https://nginx.org/en/docs/http/ngx_http_core_module.html#lingering_close)
 * and as RFC 9112 §9.6 advises (https://www.rfc-editor.org/rfc/rfc9112#section-9.6), the
 * gateway half-closes (FIN after the answer), reads and discards
 * what the client still sends, and closes once the body has ended, the client closes, or a bound
 * is reached.
 *
 * The bounds are constants, not settings: they only decide how long a courtesy to a misbehaving
 * client lasts, REQUEST_TIMEOUT_MS still bounds the request as a whole, and MAX_CONNECTIONS the
 * number of such sockets.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

export interface LingerLimits {
  /** Bytes read and discarded at most (nginx has no byte bound; this caps the CPU spent). */
  readonly maxBytes: number;
  /** Longest linger in all: nginx's lingering_time default. */
  readonly timeMs: number;
  /** Longest wait for the next bytes: nginx's lingering_timeout default. */
  readonly idleMs: number;
}

/** 16 MiB: a few times the largest body a script plausibly sends whole (5 MB was reported). */
export const LINGER_MAX_BYTES = 16 * 1024 * 1024;
export const LINGER_TIME_MS = 30_000;
export const LINGER_IDLE_MS = 5_000;

export const DEFAULT_LINGER_LIMITS: LingerLimits = {
  maxBytes: LINGER_MAX_BYTES,
  timeMs: LINGER_TIME_MS,
  idleMs: LINGER_IDLE_MS,
};

/** Node's http server closes a `connection: close` socket with socket.destroySoon(). */
type ClosingSocket = Socket & { destroySoon(): void };

/**
 * For every answer that closes the connection before its request body has arrived, replace the
 * socket's close with a lingering one. Everything else (the usual case) is left alone.
 */
export function installLingeringClose(
  app: FastifyInstance,
  limits: LingerLimits = DEFAULT_LINGER_LIMITS,
): void {
  app.addHook('onSend', async (request, reply, payload) => {
    const connection = reply.getHeader('connection');
    if (!request.raw.complete && typeof connection === 'string' && /\bclose\b/i.test(connection)) {
      lingerOnClose(request.raw, limits);
    }
    return payload;
  });
}

function lingerOnClose(req: IncomingMessage, limits: LingerLimits): void {
  const socket = req.socket as ClosingSocket;
  // Node calls destroySoon() once the answer is finished (its resOnFinish); only then linger,
  // so the answer itself is never held back.
  socket.destroySoon = () => {
    socket.end();
    drain(socket, req, limits);
  };
}

function drain(socket: Socket, req: IncomingMessage, limits: LingerLimits): void {
  let received = 0;
  // Nothing more will be read: close once the answer and our FIN are flushed, so no RST.
  const close = (): void => {
    if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
  };
  const cut = (): void => {
    socket.destroy();
  };
  const total = setTimeout(cut, limits.timeMs);
  const idle = setTimeout(cut, limits.idleMs);
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    if (received > limits.maxBytes) cut();
    else idle.refresh();
  };
  req.on('data', onData);
  req.once('end', close);
  socket.once('end', close);
  socket.once('close', () => {
    clearTimeout(total);
    clearTimeout(idle);
    req.off('data', onData);
  });
  // Node dumps an unread body already; a body fastify stopped reading still flows to no one.
  req.resume();
  if (req.complete) close();
}
