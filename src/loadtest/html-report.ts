/**
 * A self-contained HTML page: the text report plus latency over time (one dot per request, red
 * for failures, and per-second p50/p99 lines). Inline SVG, no scripts or external assets.
 */
import type { AttackResult } from './attack.js';
import { distribution, isSuccess } from './summary.js';
import { formatDuration } from './text-report.js';

const WIDTH = 960;
const HEIGHT = 360;
const PAD = { left: 70, right: 20, top: 20, bottom: 40 };
const TICKS = 5;

export function htmlReport(attack: AttackResult, text: string, title: string): string {
  const { results } = attack;
  const endMs = Math.max(1, ...results.map((r) => r.startMs));
  const maxLatency = Math.max(1, ...results.map((r) => r.latencyMs));
  const x = (ms: number) => PAD.left + (ms / endMs) * (WIDTH - PAD.left - PAD.right);
  const y = (ms: number) =>
    HEIGHT - PAD.bottom - (ms / maxLatency) * (HEIGHT - PAD.top - PAD.bottom);
  const dots = results
    .map(
      (r) =>
        `<circle cx="${x(r.startMs).toFixed(1)}" cy="${y(r.latencyMs).toFixed(1)}" r="2" class="${isSuccess(r) ? 'ok' : 'fail'}"><title>${escapeHtml(`t=${formatDuration(r.startMs)} latency=${formatDuration(r.latencyMs)} status=${r.status}${r.error ? ` ${r.error}` : ''}`)}</title></circle>`,
    )
    .join('\n');
  const seconds = new Map<number, number[]>();
  for (const r of results) {
    const s = Math.floor(r.startMs / 1000);
    const bucket = seconds.get(s);
    if (bucket === undefined) seconds.set(s, [r.latencyMs]);
    else bucket.push(r.latencyMs);
  }
  const line = (pick: 'p50' | 'p99') =>
    [...seconds.entries()]
      .sort(([a], [b]) => a - b)
      .map(
        ([s, l]) =>
          `${x(Math.min(endMs, s * 1000 + 500)).toFixed(1)},${y(distribution(l)[pick]).toFixed(1)}`,
      )
      .join(' ');
  const yTicks = Array.from({ length: TICKS + 1 }, (_, i) => (maxLatency * i) / TICKS)
    .map(
      (v) =>
        `<text x="${PAD.left - 6}" y="${y(v).toFixed(1)}" class="tick" text-anchor="end">${formatDuration(v)}</text><line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="grid"/>`,
    )
    .join('\n');
  const xTicks = Array.from({ length: TICKS + 1 }, (_, i) => (endMs * i) / TICKS)
    .map(
      (v) =>
        `<text x="${x(v).toFixed(1)}" y="${HEIGHT - PAD.bottom + 16}" class="tick" text-anchor="middle">${formatDuration(v)}</text>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}pre{background:#f6f6f6;padding:1rem}
.ok{fill:#2b7bb9;fill-opacity:.6}.fail{fill:#d62728}.p50{stroke:#2ca02c;fill:none;stroke-width:2}
.p99{stroke:#ff7f0e;fill:none;stroke-width:2}.grid{stroke:#ddd}.tick{font-size:11px;fill:#555}
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<pre>${escapeHtml(text)}</pre>
<h2>Latency over time</h2>
<p>One dot per request at the time it was sent (red: failed); lines: per-second <span style="color:#2ca02c">p50</span> and <span style="color:#ff7f0e">p99</span>.</p>
<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="latency over time">
${yTicks}
${xTicks}
${dots}
<polyline class="p50" points="${line('p50')}"/>
<polyline class="p99" points="${line('p99')}"/>
</svg>
</body></html>
`;
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"]/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c,
  );
}
