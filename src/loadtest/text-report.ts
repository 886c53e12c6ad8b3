/** The report in vegeta's text layout (`vegeta report`), with our token rows added. */
import type { Distribution, Summary } from './summary.js';

const LABEL_WIDTH = 48;

export function textReport(s: Summary): string {
  const row = (label: string, value: string) => `${label.padEnd(LABEL_WIDTH)}${value}`;
  const dist = (d: Distribution) =>
    [d.min, d.mean, d.p50, d.p90, d.p95, d.p99, d.max].map(formatDuration).join(', ');
  const codes = Object.entries(s.statusCodes)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([code, count]) => `${code}:${count}`)
    .join('  ');
  const lines = [
    row(
      'Requests      [total, rate, throughput]',
      `${s.requests}, ${s.rate.toFixed(2)}, ${s.throughput.toFixed(2)}`,
    ),
    row(
      'Duration      [total, attack, wait]',
      [s.durationMs.total, s.durationMs.attack, s.durationMs.wait].map(formatDuration).join(', '),
    ),
    row('Latencies     [min, mean, 50, 90, 95, 99, max]', dist(s.latencyMs)),
    row('Bytes In      [total, mean]', `${s.bytesIn.total}, ${s.bytesIn.mean.toFixed(2)}`),
    row('Bytes Out     [total, mean]', `${s.bytesOut.total}, ${s.bytesOut.mean.toFixed(2)}`),
    row('Success       [ratio]', `${(s.success * 100).toFixed(2)}%`),
    row('Status Codes  [code:count]', codes),
    row(
      'Tokens        [total, per second, per request]',
      `${s.tokens.total}, ${s.tokens.perSecond.toFixed(2)}, ${s.tokens.meanPerRequest.toFixed(2)}`,
    ),
    row('First token   [min, mean, 50, 90, 95, 99, max]', s.ttftMs === null ? '-' : dist(s.ttftMs)),
    'Error Set:',
    ...s.errors,
  ];
  return `${lines.join('\n')}\n`;
}

/** Like Go's time.Duration.String() (what vegeta prints), rounded to the microsecond. */
export function formatDuration(ms: number): string {
  const us = Math.round(ms * 1000);
  if (us === 0) return '0s';
  if (us < 1000) return `${us}µs`;
  if (us < 1_000_000) return `${trimZeros((us / 1000).toFixed(3))}ms`;
  const totalSeconds = us / 1_000_000;
  if (totalSeconds < 60) return `${trimZeros(totalSeconds.toFixed(6))}s`;
  const minutes = Math.floor(totalSeconds / 60);
  return `${minutes}m${trimZeros((totalSeconds - minutes * 60).toFixed(6))}s`;
}

function trimZeros(fixed: string): string {
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}
