/** GET /metrics: Prometheus text exposition of this app's one registry. */
import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from 'prom-client';
import { QUIET_REQUEST_LOGS } from './probes.js';

export interface MetricsRouteOptions {
  readonly registry: Registry;
}

export const metricsRoute: FastifyPluginAsync<MetricsRouteOptions> = async (app, { registry }) => {
  // A scraper polls every 15 s or so: at info level it would be much of the log.
  app.get('/metrics', { config: QUIET_REQUEST_LOGS }, async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
};
