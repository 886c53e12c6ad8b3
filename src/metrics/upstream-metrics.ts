/**
 * The Triton backend's own Prometheus metrics, all prefixed gpt2_gateway_upstream_. Labels are
 * bounded: the endpoint kind and the outcome code, never a URL or a model input.
 *
 * They live on a registry of their own from construction (so a backend used directly, as in
 * tests, counts from its first call) and are added to the app's registry by registerOn(), which
 * the backend's registerMetrics() calls once buildApp hands it the app's registry.
 */
import { Counter, Gauge, Histogram, type Metric, Registry } from 'prom-client';

/** The circuit breaker's states (src/backends/triton/circuit-breaker.ts), as the gauge shows them. */
type BreakerState = 'closed' | 'half-open' | 'open';

export type UpstreamEndpoint =
  | 'health'
  | 'model_ready'
  | 'server_metadata'
  | 'metadata'
  | 'config'
  | 'infer'
  /** The extra call that ends a kv sequence (Triton has no END without an inference). */
  | 'sequence_end';

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

export class UpstreamMetrics {
  readonly requests: Counter<'endpoint' | 'outcome'>;
  readonly duration: Histogram<'endpoint'>;
  readonly sentBytes: Counter<'endpoint'>;
  readonly receivedBytes: Counter<'endpoint'>;
  readonly retries: Counter<'endpoint'>;
  readonly breakerState: Gauge;
  readonly breakerTransitions: Counter<'state'>;
  /** Where the metrics live until registerOn(); also what tests read when no app is built. */
  readonly registry: Registry;
  readonly #registeredOn = new WeakSet<Registry>();

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    this.requests = new Counter({
      name: 'gpt2_gateway_upstream_requests_total',
      help: 'Calls to the model server by endpoint and outcome (ok or a BACKEND_* code).',
      labelNames: ['endpoint', 'outcome'],
      registers,
    });
    this.duration = new Histogram({
      name: 'gpt2_gateway_upstream_request_duration_seconds',
      help: 'Time from sending a call to the model server to having its whole answer.',
      labelNames: ['endpoint'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.sentBytes = new Counter({
      name: 'gpt2_gateway_upstream_sent_bytes_total',
      help: 'Request body bytes sent to the model server.',
      labelNames: ['endpoint'],
      registers,
    });
    this.receivedBytes = new Counter({
      name: 'gpt2_gateway_upstream_received_bytes_total',
      help: 'Response body bytes received from the model server.',
      labelNames: ['endpoint'],
      registers,
    });
    this.retries = new Counter({
      name: 'gpt2_gateway_upstream_retries_total',
      help: 'Calls retried because they failed before being sent.',
      labelNames: ['endpoint'],
      registers,
    });
    this.breakerState = new Gauge({
      name: 'gpt2_gateway_upstream_breaker_state',
      help: 'Circuit breaker towards the model server: 0 closed, 1 half-open, 2 open.',
      registers,
    });
    this.breakerTransitions = new Counter({
      name: 'gpt2_gateway_upstream_breaker_transitions_total',
      help: 'Circuit breaker state changes, by the state entered.',
      labelNames: ['state'],
      registers,
    });
  }

  /** Adds every metric to another registry too (the app's); values are shared, not copied. */
  registerOn(registry: Registry): void {
    const all: Metric[] = [
      this.requests,
      this.duration,
      this.sentBytes,
      this.receivedBytes,
      this.retries,
      this.breakerState,
      this.breakerTransitions,
    ];
    // Twice on one registry is a no-op, not prom-client's "already registered" error.
    if (this.#registeredOn.has(registry)) return;
    this.#registeredOn.add(registry);
    for (const metric of all) registry.registerMetric(metric);
  }

  breakerChanged(state: BreakerState): void {
    this.breakerState.set(BREAKER_VALUE[state]);
    this.breakerTransitions.inc({ state });
  }
}
