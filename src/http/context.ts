/** What every route plugin needs, built once in app.ts and handed down explicitly. */
import type { Backend } from '../backends/backend.js';
import type { ModelNotice } from '../backends/created-backend.js';
import type { Config } from '../config.js';
import type { Scheduler } from '../generation/scheduler.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { Gpt2Tokenizer } from '../tokenizer/gpt2-tokenizer.js';

export interface GatewayContext {
  readonly config: Config;
  readonly backend: Backend;
  readonly tokenizer: Gpt2Tokenizer;
  readonly scheduler: Scheduler;
  readonly metrics: GatewayMetrics;
  readonly model: ModelNotice;
  /** performance.now(), injectable for tests. */
  readonly now: () => number;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** performance.now() at arrival: every timing in a response counts from it. */
    arrivalMs: number;
  }
}
