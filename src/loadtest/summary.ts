/** The numbers of a load-test report: vegeta's metrics plus tokens and time to first token. */
import type { AttackResult, RequestResult } from './attack.js';

export interface Distribution {
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
}

export interface Summary {
  requests: number;
  /** Requests per second sent over the attack. */
  rate: number;
  /** Successful requests per second over attack + wait. */
  throughput: number;
  durationMs: { total: number; attack: number; wait: number };
  /** Milliseconds, over every request that got an answer or failed. */
  latencyMs: Distribution;
  bytesIn: { total: number; mean: number };
  bytesOut: { total: number; mean: number };
  /** Share of requests answered 2xx without an error. */
  success: number;
  statusCodes: Record<string, number>;
  errors: string[];
  tokens: { total: number; perSecond: number; meanPerRequest: number };
  /** Over successful requests that reported one; null when none did. */
  ttftMs: Distribution | null;
}

export function summarize(attack: AttackResult): Summary {
  const { results, attackMs, waitMs } = attack;
  const n = results.length;
  const ok = results.filter(isSuccess);
  const totalMs = attackMs + waitMs;
  const bytesIn = sum(results.map((r) => r.bytesIn));
  const bytesOut = sum(results.map((r) => r.bytesOut));
  const tokens = sum(ok.map((r) => r.completionTokens ?? 0));
  const statusCodes: Record<string, number> = {};
  for (const r of results) statusCodes[String(r.status)] = (statusCodes[String(r.status)] ?? 0) + 1;
  const ttft = ok.flatMap((r) => (r.ttftMs === undefined ? [] : [r.ttftMs]));
  return {
    requests: n,
    // As vegeta computes them (lib/metrics.go): rate = requests / attack duration (first to last
    // request sent); throughput = successes / (attack + wait). So 60 requests at 1/s read 1.02.
    rate: attackMs > 0 ? (n * 1000) / attackMs : n,
    throughput: totalMs > 0 ? (ok.length * 1000) / totalMs : ok.length,
    durationMs: { total: totalMs, attack: attackMs, wait: waitMs },
    latencyMs: distribution(results.map((r) => r.latencyMs)),
    bytesIn: { total: bytesIn, mean: n > 0 ? bytesIn / n : 0 },
    bytesOut: { total: bytesOut, mean: n > 0 ? bytesOut / n : 0 },
    success: n > 0 ? ok.length / n : 0,
    statusCodes,
    errors: [...new Set(results.flatMap((r) => (r.error === undefined ? [] : [r.error])))].sort(),
    tokens: {
      total: tokens,
      perSecond: totalMs > 0 ? (tokens * 1000) / totalMs : 0,
      meanPerRequest: ok.length > 0 ? tokens / ok.length : 0,
    },
    ttftMs: ttft.length > 0 ? distribution(ttft) : null,
  };
}

export function isSuccess(r: RequestResult): boolean {
  return r.status >= 200 && r.status < 300 && r.error === undefined;
}

/** Nearest-rank percentiles (the smallest value with at least p of the samples at or below it). */
export function distribution(values: readonly number[]): Distribution {
  if (values.length === 0) return { min: 0, mean: 0, p50: 0, p90: 0, p95: 0, p99: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? 0;
  return {
    min: sorted[0] ?? 0,
    mean: sum(sorted) / sorted.length,
    p50: rank(0.5),
    p90: rank(0.9),
    p95: rank(0.95),
    p99: rank(0.99),
    max: sorted[sorted.length - 1] ?? 0,
  };
}

function sum(values: readonly number[]): number {
  let s = 0;
  for (const v of values) s += v;
  return s;
}
