/**
 * The token chart: one bar per token, as tall as the time since the previous token (for the first
 * token: since the request arrived, so queue wait and prefill show), with the backend step that
 * produced it drawn inside it from the bottom. Each bar is a `<g data-token-index>` whose SVG
 * `<title>` is the token's tooltip.
 */
import { formatMs } from './format.js';

/** One `token` event of the stream (openapi.yaml, the streamed token). */
export interface StreamToken {
  index: number;
  id: number;
  text: string;
  logprob: number;
  backend_step_ms: number;
  since_previous_ms: number;
}

const HEIGHT = 190;
const TOP = 16;
const BOTTOM = 22;
const LEFT = 48;
const MIN_SLOT = 4;
const MAX_SLOT = 28;
const MIN_WIDTH = 240;
/** A first bar this many times the tallest other bar is clipped, so the others stay readable. */
const CLIP_RATIO = 3;
/** Headroom above the tallest unclipped bar. */
const HEADROOM = 1.15;
const SVG_NS = 'http://www.w3.org/2000/svg';

function svg<K extends keyof SVGElementTagNameMap>(
  name: K,
  attributes: Record<string, string | number>,
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

/** Chart tops whose quarters are round numbers, per power of ten. */
const NICE_TOPS = [1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10];

/** The smallest nice top at least `value`: the gridlines fall on round numbers. */
function niceCeil(value: number): number {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of NICE_TOPS) if (step * power >= value) return step * power;
  return 10 * power;
}

export function describeToken(t: StreamToken): string {
  const since =
    t.index === 0 ? 'since the request arrived (queue + prefill)' : 'since the previous token';
  return (
    `token ${t.index}: ${JSON.stringify(t.text)} · id ${t.id} · logprob ${t.logprob.toFixed(3)} · ` +
    `${formatMs(t.since_previous_ms)} ${since} · backend step ${formatMs(t.backend_step_ms)}`
  );
}

/** Draws `tokens` into `container` (replacing what was there); `selected` is highlighted. */
export function drawTokenChart(
  container: HTMLElement,
  tokens: readonly StreamToken[],
  selected: number,
): void {
  const width = Math.max(container.clientWidth, MIN_WIDTH);
  const n = tokens.length;
  const slot = n === 0 ? MAX_SLOT : Math.min(MAX_SLOT, Math.max(MIN_SLOT, (width - LEFT) / n));
  const fullWidth = Math.max(width, Math.ceil(LEFT + n * slot));
  const plotHeight = HEIGHT - TOP - BOTTOM;
  const first = tokens[0];
  const firstMs =
    first === undefined ? 0 : Math.max(first.since_previous_ms, first.backend_step_ms);
  let restMs = 0;
  for (const t of tokens.slice(1))
    restMs = Math.max(restMs, t.since_previous_ms, t.backend_step_ms);
  // Queue wait and prefill can dwarf the steady per-token cost: then clip the first bar.
  const clipFirst = n > 1 && restMs > 0 && firstMs > CLIP_RATIO * restMs;
  const top = niceCeil(clipFirst ? restMs * HEADROOM : Math.max(firstMs, restMs) * HEADROOM);
  const y = (ms: number) => TOP + plotHeight - (Math.min(ms, top) / top) * plotHeight;

  const root = svg('svg', {
    width: fullWidth,
    height: HEIGHT,
    viewBox: `0 0 ${fullWidth} ${HEIGHT}`,
    'aria-hidden': 'true',
  });
  const grid = svg('g', { class: 'grid axis' });
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const ms = top * fraction;
    grid.append(svg('line', { x1: LEFT, x2: fullWidth, y1: y(ms), y2: y(ms) }));
    const label = svg('text', { x: LEFT - 6, y: y(ms) + 4, 'text-anchor': 'end' });
    label.textContent = fraction === 0 ? '0' : formatMs(ms);
    grid.append(label);
  }
  const axis = svg('text', { x: LEFT, y: HEIGHT - 6 });
  axis.textContent = n === 0 ? 'one bar per token appears here' : `tokens 0 … ${n - 1}`;
  grid.append(axis);
  root.append(grid);

  const barWidth = Math.max(1, slot - (slot > 6 ? 2 : 1));
  tokens.forEach((t, i) => {
    const x = LEFT + i * slot;
    const bar = svg('g', { class: i === selected ? 'bar selected' : 'bar', 'data-token-index': i });
    const title = svg('title', {});
    title.textContent = describeToken(t);
    bar.append(title);
    const gapTop = y(t.since_previous_ms);
    // The step is part of the gap; in a batch it can measure a hair longer, so cap it.
    const stepTop = y(Math.min(t.backend_step_ms, t.since_previous_ms));
    bar.append(svg('rect', { class: 'gap', x, y: gapTop, width: barWidth, height: y(0) - gapTop }));
    bar.append(
      svg('rect', { class: 'step', x, y: stepTop, width: barWidth, height: y(0) - stepTop }),
    );
    if (i === 0 && clipFirst) {
      // Two slashes across the bar: it goes on past the top of the chart.
      for (const dy of [10, 15]) {
        bar.append(
          svg('line', {
            class: 'clip-mark',
            x1: x - 1,
            x2: x + barWidth + 1,
            y1: TOP + dy + 3,
            y2: TOP + dy - 1,
          }),
        );
      }
      const label = svg('text', { class: 'clip-label', x: x + barWidth + 4, y: TOP - 4 });
      label.textContent = `first token ${formatMs(first?.since_previous_ms ?? 0)} (off scale)`;
      bar.append(label);
    }
    // A full-height transparent target, so a short bar is as easy to hover as a tall one.
    bar.append(svg('rect', { class: 'hit', x, y: TOP, width: slot, height: plotHeight }));
    root.append(bar);
  });
  container.replaceChildren(root);
}
