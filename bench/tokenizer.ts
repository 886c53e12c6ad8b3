/**
 * `npm run bench:tokenizer [-- --runs N]`: the figures behind the tokenizer's defaults.
 *
 * 1. minTokenCount on 64 KiB texts (the default body limit): what the refusal costs before BPE.
 * 2. Inline encode time by kind of text and length: where DEFAULT_INLINE_MAX_CHARS comes from.
 *    Every text is fresh (the tokenizer caches words), and the best of N runs is kept so the
 *    figure is the work itself, not a neighbour on a shared machine.
 * 3. Eight 64 KiB texts encoded inline, then through the pool, while a setImmediate heartbeat
 *    records the longest stall of the event loop (what a concurrent /healthz would wait), beside
 *    the stalls of an idle loop over as long (what the machine's other load causes).
 * 4. The pool's round trip for a text just over the inline threshold, and memory per worker.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadGpt2Tokenizer } from '../src/tokenizer/gpt2-tokenizer.js';
import { DEFAULT_INLINE_MAX_CHARS, TokenizerPool } from '../src/tokenizer/tokenizer-pool.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' } } });
const RUNS = Number(values.runs);
const BODY_BYTES = 64 * 1024;
const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

let seed = 1;
function random(below: number): number {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % below;
}

/** Kinds of text, from the cheapest per character to the costliest. */
const KINDS: Record<string, (length: number) => string> = {
  prose: (length) => {
    let text = '';
    while (text.length < length) {
      let word = ' ';
      for (let i = 2 + random(8); i > 0; i--) word += LETTERS[random(26)];
      text += word;
    }
    return text.slice(0, length);
  },
  'one long word': (length) => {
    let text = '';
    while (text.length < length) text += LETTERS[random(26)];
    return text;
  },
  // Fresh letters at the end so no run hits the tokenizer's word cache.
  'run of "a"': (length) => {
    let tail = '';
    for (let i = 0; i < 8; i++) tail += LETTERS[random(26)];
    return `${'a'.repeat(length - 8)}${tail}`;
  },
  CJK: (length) => {
    let text = '';
    while (text.length < length) text += String.fromCharCode(0x4e00 + random(2000));
    return text;
  },
  emoji: (length) => {
    let text = '';
    while (text.length < length) text += String.fromCodePoint(0x1f600 + random(80));
    return text;
  },
};

function best(fn: () => void, runs = RUNS): number {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    min = Math.min(min, performance.now() - start);
  }
  return min;
}

/** The longest gap between setImmediate turns while `work` runs: how long the loop was held. */
async function longestStall(work: () => Promise<unknown>): Promise<number> {
  let longest = 0;
  let last = performance.now();
  let running = true;
  const beat = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (running) setImmediate(beat);
  };
  setImmediate(beat);
  await work();
  running = false;
  // One more turn, so a stall that ends with the work is recorded too.
  await new Promise((resolve) => setImmediate(resolve));
  return longest;
}

/**
 * The main thread's busy time while `work` runs (event-loop utilization; run without the
 * heartbeat, which would keep the loop from ever idling). A stall with little busy time is the
 * thread being descheduled on a loaded machine, not work of ours.
 */
async function busyMs(work: () => Promise<unknown>): Promise<number> {
  const start = performance.eventLoopUtilization();
  await work();
  return performance.eventLoopUtilization(start).active;
}

const tokenizer = loadGpt2Tokenizer();
// The pool first, before other sections make garbage, so the RSS it adds is its own.
const rssBefore = process.memoryUsage().rss;
const pool = new TokenizerPool({ workers: 1 });
await pool.ready();
const rssPerWorker = process.memoryUsage().rss - rssBefore;

console.log(`1. minTokenCount on ${BODY_BYTES / 1024} KiB texts (best of ${RUNS * 10}):`);
for (const [kind, make] of Object.entries(KINDS)) {
  const text = make(BODY_BYTES);
  let bound = 0;
  const ms = best(() => {
    bound = tokenizer.minTokenCount(text);
  }, RUNS * 10);
  // The real count beside the bound shows how tight it is.
  const real = tokenizer.encode(text).length;
  console.log(
    `   ${kind.padEnd(14)} ${(ms * 1000).toFixed(0).padStart(5)} µs  bound ${bound} of ${real}`,
  );
}
const sixty = 'a'.repeat(60_000);
console.log(`   "a" × 60000: bound ${tokenizer.minTokenCount(sixty)} (the context is 1024)`);

const LENGTHS = [128, 256, 512, 1024, 2048, 4096];
console.log(`\n2. inline encode, ms (best of ${RUNS}, fresh text each run):`);
console.log(`   ${'chars'.padEnd(14)} ${LENGTHS.map((n) => String(n).padStart(7)).join('')}`);
for (const [kind, make] of Object.entries(KINDS)) {
  const cells = LENGTHS.map((n) =>
    best(() => tokenizer.encode(make(n)))
      .toFixed(2)
      .padStart(7),
  );
  console.log(`   ${kind.padEnd(14)} ${cells.join('')}`);
}

const bodies = Array.from({ length: 8 }, () => KINDS.prose!(BODY_BYTES));
const inline = async () => {
  for (const body of bodies) tokenizer.encode(body);
};
const pooled = () => Promise.all(bodies.map((body) => pool.encode(body)));
// Nothing to do for as long as the pool takes: the stalls the machine itself causes.
let poolWallMs = 1000;
const idle = () => new Promise((resolve) => setTimeout(resolve, poolWallMs));
const figures: Record<string, { stall: number[]; busy: number[] }> = {
  inline: { stall: [], busy: [] },
  pool: { stall: [], busy: [] },
  idle: { stall: [], busy: [] },
};
for (let round = 0; round < 5; round++) {
  const start = performance.now();
  await pooled();
  poolWallMs = performance.now() - start;
  for (const [way, work] of [
    ['inline', inline],
    ['pool', pooled],
    ['idle', idle],
  ] as const) {
    figures[way]!.stall.push(await longestStall(work));
    figures[way]!.busy.push(await busyMs(work));
  }
}
const range = (values: number[]) => {
  const sorted = [...values].sort((x, y) => x - y);
  return `${sorted[0]!.toFixed(1)}-${sorted.at(-1)!.toFixed(1)} ms`;
};
console.log('\n3. eight 64 KiB prose texts at once, 5 rounds (min-max); idle: no work, as long:');
for (const [way, { stall, busy }] of Object.entries(figures)) {
  console.log(`   ${way.padEnd(7)} longest stall ${range(stall)}, main thread busy ${range(busy)}`);
}

const justOver = KINDS.prose!(DEFAULT_INLINE_MAX_CHARS + 1);
let roundTrip = Number.POSITIVE_INFINITY;
for (let i = 0; i < RUNS * 10; i++) {
  const start = performance.now();
  await pool.encode(justOver);
  roundTrip = Math.min(roundTrip, performance.now() - start);
}
const inlineJustOver = best(() => tokenizer.encode(justOver));
console.log(
  `\n4. ${justOver.length} chars: pool round trip ${roundTrip.toFixed(3)} ms, inline ${inlineJustOver.toFixed(3)} ms`,
);
console.log(`   RSS per worker (loaded tokenizer): ${(rssPerWorker / 2 ** 20).toFixed(0)} MiB`);
await pool.close();
