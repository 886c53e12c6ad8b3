/** GET /metrics: Prometheus text exposition of this app's one registry. */
import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from 'prom-client';
import { PROBE_LOG_LEVEL } from './probes.js';

export interface MetricsRouteOptions {
  readonly registry: Registry;
}

export const metricsRoute: FastifyPluginAsync<MetricsRouteOptions> = async (app, { registry }) => {
  // A scraper polls every few seconds: at info level it would be most of the log.
  app.get('/metrics', { logLevel: PROBE_LOG_LEVEL }, async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
};
