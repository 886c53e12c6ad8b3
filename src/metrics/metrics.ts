/**
 * The gateway's Prometheus metrics (their names are public: README "Monitoring" lists them), on the
 * Registry of one app (buildApp creates it) so that tests and several apps in one process never
 * share state.
 * Labels are bounded: route templates, methods, statuses, reasons — never a prompt, id or URL.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Registry } from 'prom-client';

const PREFIX = 'gpt2_gateway_';
const MISNAMED_DEFAULT_GAUGES = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;
/** 0.5 ms .. ~65 s, doubling: covers a GPU step (~2 ms) to a long CPU generation. */
const SECONDS_BUCKETS = Array.from({ length: 18 }, (_, i) => 0.0005 * 2 ** i);
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const PROMPT_TOKEN_BUCKETS = [1, 4, 8, 16, 24, 32, 48, 64, 128, 256, 512, 1024, 4096];

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;

/** The gateway's metrics, registered on `registry` (the app's one registry). */
export function createGatewayMetrics(registry: Registry) {
  const registers = [registry];
  const metrics = {
    registry,
    httpRequests: new Counter({
      name: `${PREFIX}http_requests_total`,
      help: 'HTTP requests answered, by route template, method and status code.',
      labelNames: ['route', 'method', 'status'] as const,
      registers,
    }),
    httpDuration: new Histogram({
      name: `${PREFIX}http_request_duration_seconds`,
      help: 'Time from request arrival to the last byte of the response.',
      labelNames: ['route', 'method', 'status'] as const,
      buckets: SECONDS_BUCKETS,
      registers,
    }),
    timeToFirstToken: new Histogram({
      name: `${PREFIX}time_to_first_token_seconds`,
      help: 'From request arrival (before tokenizing and queueing) to the first generated token.',
      buckets: SECONDS_BUCKETS,
      registers,
    }),
    timePerOutputToken: new Histogram({
      name: `${PREFIX}time_per_output_token_seconds`,
      help: 'Time between consecutive generated tokens of one generation.',
      buckets: SECONDS_BUCKETS,
      registers,
    }),
    promptTokens: new Counter({
      name: `${PREFIX}prompt_tokens_total`,
      help: 'Prompt tokens of admitted generations.',
      registers,
    }),
    generatedTokens: new Counter({
      name: `${PREFIX}generated_tokens_total`,
      help: 'Tokens generated (including EOS and tokens of generations that were cancelled).',
      registers,
    }),
    backendStep: new Histogram({
      name: `${PREFIX}backend_step_duration_seconds`,
      help: 'Duration of one backend step (one forward pass for the whole batch).',
      labelNames: ['backend', 'variant'] as const,
      buckets: SECONDS_BUCKETS,
      registers,
    }),
    batchSize: new Histogram({
      name: `${PREFIX}backend_batch_size`,
      help: 'Sequences carried by one backend step.',
      buckets: BATCH_BUCKETS,
      registers,
    }),
    stepPromptTokens: new Histogram({
      name: `${PREFIX}step_prompt_tokens`,
      help: 'Prompt tokens fed by one backend step, of the steps that feed any (chunked prefill: at most PREFILL_CHUNK_TOKENS, fewer when PREFILL_STEP_SLOWDOWN sizes the chunk down).',
      buckets: PROMPT_TOKEN_BUCKETS,
      registers,
    }),
    inFlight: new Gauge({
      name: `${PREFIX}generations_in_flight`,
      help: 'Generations being stepped now.',
      registers,
    }),
    queued: new Gauge({
      name: `${PREFIX}generations_queued`,
      help: 'Generations waiting for a batch slot.',
      registers,
    }),
    rejections: new Counter({
      name: `${PREFIX}rejections_total`,
      help: 'Requests refused before generation, by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
    generations: new Counter({
      name: `${PREFIX}generations_total`,
      help: 'Generations ended, by finish reason (length, eos, stop, cancelled, error).',
      labelNames: ['finish_reason'] as const,
      registers,
    }),
  };
  // Unprefixed (process_*, nodejs_*), as every dashboard for Node services expects.
  collectDefaultMetrics({ register: registry });
  // prom-client also exports these gauges under a *_total name, which `promtool check metrics`
  // flags (only counters end in _total); the same numbers stay under the names without it.
  for (const name of MISNAMED_DEFAULT_GAUGES) registry.removeSingleMetric(name);
  return metrics;
}
