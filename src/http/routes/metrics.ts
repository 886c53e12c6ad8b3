/** GET /metrics: Prometheus text exposition of this app's own registry. */
import type { FastifyInstance } from 'fastify';
import type { GatewayContext } from '../context.js';

export function metricsRoute(ctx: GatewayContext) {
  return async function register(app: FastifyInstance): Promise<void> {
    app.get('/metrics', async (_request, reply) => {
      reply.type(ctx.metrics.registry.contentType);
      return ctx.metrics.registry.metrics();
    });
  };
}
