/**
 * Arrival time and request metrics for every route. The route label is the template
 * (`/complete`), or `unmatched` for 404s, so a scanner cannot grow the label set.
 */
import type { FastifyInstance } from 'fastify';
import type { GatewayMetrics } from './metrics.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** performance.now() at arrival: every timing in a response counts from it. */
    arrivalMs: number;
  }
}

export function installHttpMetrics(
  app: FastifyInstance,
  metrics: GatewayMetrics,
  now: () => number,
): void {
  app.decorateRequest('arrivalMs', 0);
  app.addHook('onRequest', async (request) => {
    request.arrivalMs = now();
  });
  app.addHook('onResponse', async (request, reply) => {
    const labels = {
      route: request.routeOptions.url ?? 'unmatched',
      method: request.method,
      status: String(reply.statusCode),
    };
    metrics.httpRequests.inc(labels);
    metrics.httpDuration.observe(labels, (now() - request.arrivalMs) / 1000);
  });
}
