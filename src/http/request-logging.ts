/**
 * Per-route level of fastify's two request log lines ("incoming request", "request completed").
 * fastify's route option `logLevel` only sets the threshold of a route's logger, so it can hush
 * a route's lines but never move them to debug; a LogController subclass (fastify's hook for its
 * own log lines, `logController` server option) can. A route opts in with
 * `config: { requestLogLevel: 'debug' }`: the probes and the scrape, polled every few seconds,
 * would otherwise be most of an info-level log.
 */
import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Level of this route's request log lines; absent: fastify's own (info). */
    requestLogLevel?: 'debug' | 'trace';
  }
}

function quietLevel(request: FastifyRequest): 'debug' | 'trace' | undefined {
  return request.routeOptions?.config?.requestLogLevel;
}

export class RequestLogController extends LogController {
  override incomingRequest(
    request: FastifyRequest,
    reply: FastifyReply,
    metadata?: Record<string, unknown>,
  ): void {
    const level = quietLevel(request);
    if (level === undefined) super.incomingRequest(request, reply, metadata);
    else if (!this.isLogDisabled(request)) request.log[level]({ req: request }, 'incoming request');
  }

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
    metadata?: Record<string, unknown>,
  ): void {
    const level = quietLevel(request);
    // A failure is never hushed: fastify logs it at error as usual.
    if (level === undefined || error) {
      super.requestCompleted(error, request, reply, metadata);
    } else if (!this.isLogDisabled(request)) {
      reply.log[level]({ res: reply, responseTime: reply.elapsedTime }, 'request completed');
    }
  }
}
