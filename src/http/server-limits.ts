/**
 * Bounds on what one client can hold: the time to send a whole request, idle keep-alive time, and
 * the number of open connections. fastify leaves the first unbounded (requestTimeout 0), so a
 * client trickling a body, or sending less than its Content-Length, held a socket forever.
 */
import type { Server, ServerOptions } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';

/** Node checks for expired requests on a timer; at most this often keeps the check cheap. */
const MAX_CHECK_INTERVAL_MS = 30_000;
const MIN_CHECK_INTERVAL_MS = 10;
/** A flood of refused connections is logged once per this interval, with the count. */
const DROP_LOG_INTERVAL_MS = 10_000;

export interface ServerLimits {
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  /** 0: no cap. */
  readonly maxConnections: number;
}

/** The fastify (and node:http) options that enforce the limits. */
export function serverLimitOptions(limits: ServerLimits): {
  requestTimeout: number;
  keepAliveTimeout: number;
  connectionTimeout: number;
  http: ServerOptions;
} {
  // Node enforces requestTimeout from a periodic sweep (connectionsCheckingInterval, 30 s by
  // default); a tenth of the bound keeps the answer within 10% of it.
  const checkInterval = Math.min(
    MAX_CHECK_INTERVAL_MS,
    Math.max(MIN_CHECK_INTERVAL_MS, Math.round(limits.requestTimeoutMs / 10)),
  );
  return {
    // From the first byte of a request to its last (headers and body); a response being sent,
    // however long a stream lasts, is not bounded by it.
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // No socket inactivity timeout: a long generation may send nothing for a while.
    connectionTimeout: 0,
    http: {
      // The headers share the one bound (Node's own default would be 60 s, longer than it).
      headersTimeout: limits.requestTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: checkInterval,
    },
  };
}

/**
 * server.maxConnections: past the cap, Node closes each new connection as soon as it is accepted,
 * before reading a byte, so the client sees the connection closed (EOF or reset) with no answer
 * and retries, ideally on another replica. Cheaper under a flood than answering 503 and
 * defined the same way for every client. Each refusal emits 'drop'; they are logged in bulk.
 */
export function capConnections(server: Server, max: number, log: FastifyBaseLogger): void {
  if (max === 0) return;
  server.maxConnections = max;
  let dropped = 0;
  let counting = false;
  server.on('drop', () => {
    dropped += 1;
    if (counting) return;
    counting = true;
    setTimeout(() => {
      log.warn({ dropped, maxConnections: max }, 'refused connections over MAX_CONNECTIONS');
      dropped = 0;
      counting = false;
    }, DROP_LOG_INTERVAL_MS).unref();
  });
}
