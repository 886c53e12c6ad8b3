/**
 * What the process answers when Node's HTTP parser refuses a request, or a request does not
 * arrive within REQUEST_TIMEOUT_MS: fastify's `clientErrorHandler` (Node's 'clientError' event),
 * which otherwise writes `{"error":"Bad Request","statusCode":400}` bodies of its own. Here the
 * answer is the one error body with a stable code, `connection: close`, and it is written only
 * when the socket is writable and no answer has started on it: after a 413 the socket is still
 * reading the body (lingering close) and a timeout there must close it, not answer twice.
 */
import {
  type IncomingMessage,
  maxHeaderSize,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import { GatewayError } from '../contract/errors.js';

/** Longest parser reason quoted back to the client. */
const MAX_REASON_LENGTH = 120;

interface ParserError extends Error {
  code?: string;
  /** llhttp's explanation ("Content-Length can't be present with Transfer-Encoding"). */
  reason?: string;
}

/** The last exchange of each socket, to know whether an answer has started on it. */
export class ClientErrors {
  readonly #exchanges = new WeakMap<Socket, { req: IncomingMessage; res: ServerResponse }>();
  #log: FastifyBaseLogger | undefined;

  constructor(private readonly requestTimeoutMs: number) {}

  /** Once the server exists: follow its exchanges, and log with the app's logger. */
  attach(server: Server, log: FastifyBaseLogger): void {
    this.#log = log;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.#exchanges.set(req.socket, { req, res });
    });
  }

  /** fastify's clientErrorHandler option. */
  readonly handler = (err: ParserError, socket: Socket): void => {
    // A reset or an already closed socket has no one to answer (Node's own rule).
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const error = this.toGatewayError(err);
    this.#log?.info(
      { code: error.code, parserCode: err.code, remoteAddress: socket.remoteAddress },
      'refused a request the HTTP parser could not accept',
    );
    if (socket.writable && !this.answered(socket)) socket.write(rawAnswer(error));
    socket.destroy();
  };

  /** An answer has started on this socket and its exchange is not over. */
  private answered(socket: Socket): boolean {
    const last = this.#exchanges.get(socket);
    if (last === undefined || !last.res.headersSent) return false;
    return !(last.res.writableFinished && last.req.complete);
  }

  private toGatewayError(err: ParserError): GatewayError {
    switch (err.code) {
      case 'ERR_HTTP_REQUEST_TIMEOUT':
        return new GatewayError(
          'REQUEST_TIMEOUT',
          `the request (headers and body) did not arrive within ${this.requestTimeoutMs} ms; send it at once, not slowly`,
        );
      case 'HPE_HEADER_OVERFLOW':
        return new GatewayError(
          'HEADERS_TOO_LARGE',
          `the request line and headers are larger than ${maxHeaderSize} bytes; send fewer or shorter headers`,
        );
      case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
        return new GatewayError(
          'PAYLOAD_TOO_LARGE',
          'the chunk extensions of the body are too large; send the body without chunk extensions',
        );
      default:
        return new GatewayError(
          'BAD_REQUEST',
          `the request is not valid HTTP/1.1: ${describe(err)}`,
        );
    }
  }
}

/** The parser's reason, printable and short (it may quote bytes the client sent). */
function describe(err: ParserError): string {
  return (err.reason ?? err.code ?? 'malformed request')
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, MAX_REASON_LENGTH);
}

function rawAnswer(error: GatewayError): string {
  const body = JSON.stringify(error.body());
  const status = error.statusCode;
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
    'content-type: application/json; charset=utf-8\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    'connection: close\r\n\r\n' +
    body
  );
}
