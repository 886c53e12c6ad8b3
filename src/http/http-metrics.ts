/**
 * Arrival time and request metrics for every route. The route label is the template
 * (`/complete`), or `unmatched` for 404s, so a scanner cannot grow the label set.
 */
import type { FastifyInstance } from 'fastify';
import type { GatewayContext } from './context.js';

export function installHttpMetrics(app: FastifyInstance, ctx: GatewayContext): void {
  app.decorateRequest('arrivalMs', 0);
  app.addHook('onRequest', async (request) => {
    request.arrivalMs = ctx.now();
  });
  app.addHook('onResponse', async (request, reply) => {
    const labels = {
      route: request.routeOptions.url ?? 'unmatched',
      method: request.method,
      status: String(reply.statusCode),
    };
    ctx.metrics.httpRequests.inc(labels);
    ctx.metrics.httpDuration.observe(labels, (ctx.now() - request.arrivalMs) / 1000);
  });
}
