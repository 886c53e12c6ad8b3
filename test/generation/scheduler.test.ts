import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { BackendError, type StepCost, type StepRequest } from '../../src/backends/backend.js';
import { GatewayError } from '../../src/contract/errors.js';
import type { GenerationSpec } from '../../src/generation/generation.js';
import { GenerationCancelledError, Scheduler } from '../../src/generation/scheduler.js';
import { createGatewayMetrics } from '../../src/metrics/metrics.js';
import { loadGpt2Tokenizer } from '../../src/tokenizer/gpt2-tokenizer.js';
import { ToyBackend, toyNext } from '../support/toy-backend.js';

const tokenizer = loadGpt2Tokenizer();

function setup<B extends ToyBackend = ToyBackend>(
  maxBatchSize: number,
  maxQueue: number,
  options: {
    backend?: B;
    prefillChunkTokens?: number;
    prefillStepSlowdown?: number;
    maxBatchTotalTokens?: number;
    gatherMs?: number;
  } = {},
) {
  // No wait for a burst from idle unless a test asks for one: steps start at the next tick.
  const { backend = new ToyBackend() as B, gatherMs = 0, ...rest } = options;
  const metrics = createGatewayMetrics(new Registry());
  const scheduler = new Scheduler({
    ...{ backend, tokenizer, metrics, maxBatchSize, maxQueue, gatherMs },
    ...rest,
  });
  return { backend, metrics, scheduler };
}

const spec = (promptIds: number[], maxNewTokens: number): GenerationSpec => ({
  promptIds,
  maxNewTokens,
  stop: [],
  arrivalMs: performance.now(),
});

function greedy(prompt: number[], n: number): number[] {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) seq.push(toyNext(seq));
  return seq.slice(prompt.length);
}

test('concurrent generations share steps, up to maxBatchSize, and each gets its own tokens', async () => {
  const { backend, scheduler } = setup(2, 10);
  const prompts = [[1], [2, 3], [4]];
  const outcomes = await Promise.all(prompts.map((p, i) => scheduler.submit(spec(p, 3 + i))));
  outcomes.forEach((o, i) => {
    assert.deepEqual(
      o.tokens.map((t) => t.id),
      greedy(prompts[i]!, 3 + i),
    );
    assert.equal(o.finishReason, 'length');
  });
  // Sequences 1 and 2 run together; 3 joins when 1 finishes (continuous batching).
  assert.deepEqual(backend.steps, [[1, 2], [1, 2], [1, 2], [2, 3], [3], [3], [3], [3]]);
  assert.deepEqual(backend.released.sort(), [1, 2, 3]);
});

test('from idle, the first step waits while arrivals keep coming, so a burst is prefilled together', async () => {
  const burst = async (gatherMs: number) => {
    // Slices far longer than the ticks between the submissions, so that they gather for sure.
    const { backend, scheduler } = setup(4, 4, { gatherMs });
    const outcomes = [scheduler.submit(spec([1], 2))];
    for (const prompt of [[2], [3]]) {
      await tick();
      outcomes.push(scheduler.submit(spec(prompt, 2)));
    }
    await Promise.all(outcomes);
    return backend.steps;
  };
  assert.deepEqual(await burst(200), [
    [1, 2, 3],
    [1, 2, 3],
  ]);
  // Without the wait the first step goes before the others arrive, and they run steps behind.
  const unwaited = await burst(0);
  assert.deepEqual(unwaited[0], [1]);
  assert.ok(unwaited.length > 2, JSON.stringify(unwaited));
});

test('a full queue refuses at once with QUEUE_FULL and a Retry-After', async () => {
  const { backend, scheduler } = setup(1, 1);
  const open = backend.hold();
  const first = scheduler.submit(spec([1], 2));
  const second = scheduler.submit(spec([2], 2));
  assert.throws(
    () => scheduler.submit(spec([3], 2)),
    (err: unknown) =>
      err instanceof GatewayError && err.code === 'QUEUE_FULL' && err.retryAfterSeconds === 1,
  );
  open();
  assert.equal((await first).tokens.length, 2);
  assert.equal((await second).tokens.length, 2);
});

test('a cancelled generation leaves at the next step and its sequence is released', async () => {
  const { backend, scheduler } = setup(4, 4);
  const abort = new AbortController();
  let open = backend.hold();
  const cancelled = scheduler.submit(spec([1], 100), abort.signal);
  const other = scheduler.submit(spec([2], 3));
  await tick();
  abort.abort();
  open();
  await assert.rejects(cancelled, GenerationCancelledError);
  assert.equal((await other).tokens.length, 3);
  // Only the step already in flight carried the cancelled sequence.
  assert.deepEqual(backend.steps, [[1, 2], [2], [2]]);
  assert.deepEqual(backend.released.sort(), [1, 2]);
  open = backend.hold();
  open();
});

test('a queued generation that is cancelled never reaches the backend', async () => {
  const { backend, scheduler } = setup(1, 4);
  const open = backend.hold();
  const running = scheduler.submit(spec([1], 1));
  const abort = new AbortController();
  const queued = scheduler.submit(spec([2], 1), abort.signal);
  abort.abort();
  await assert.rejects(queued, GenerationCancelledError);
  open();
  await running;
  assert.deepEqual(backend.steps, [[1]]);
  assert.deepEqual(backend.released, [1]);
});

test('a failed step fails every generation in it and releases them', async () => {
  const { backend, scheduler } = setup(4, 4);
  backend.failNext = new BackendError('BACKEND_TIMEOUT', 'too slow');
  const results = await Promise.allSettled([
    scheduler.submit(spec([1], 2)),
    scheduler.submit(spec([2], 2)),
  ]);
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.equal((r.reason as BackendError).code, 'BACKEND_TIMEOUT');
  }
  assert.deepEqual(backend.released.sort(), [1, 2]);
});

test('a token id outside the vocabulary is a bad backend response, not a crash', async () => {
  const backend = new ToyBackend({ next: () => 60_000 });
  const scheduler = new Scheduler({
    backend,
    tokenizer,
    metrics: createGatewayMetrics(new Registry()),
    maxBatchSize: 1,
    maxQueue: 1,
  });
  await assert.rejects(scheduler.submit(spec([1], 2)), { code: 'BACKEND_BAD_RESPONSE' });
});

test('drain refuses new work and waits for accepted work', async () => {
  const { backend, scheduler } = setup(1, 4);
  const open = backend.hold();
  const running = scheduler.submit(spec([1], 2));
  const queued = scheduler.submit(spec([2], 2));
  let drained = false;
  const draining = scheduler.drain().then(() => {
    drained = true;
  });
  assert.throws(() => scheduler.submit(spec([3], 1)), { code: 'SHUTTING_DOWN' });
  await tick();
  assert.equal(drained, false);
  open();
  await Promise.all([running, queued, draining]);
  assert.equal(drained, true);
});

/** A toy that takes prefill chunks and records every request it gets. */
class ChunkingToy extends ToyBackend {
  constructor() {
    super({ chunkedPrefill: true });
  }
  readonly requests: StepRequest[][] = [];
  override step(batch: readonly StepRequest[]) {
    this.requests.push(batch.map((r) => ({ ...r, tokens: [...r.tokens] })));
    return super.step(batch);
  }
}

test('chunked prefill: at most the budget of prompt tokens per step, beside the running decodes', async () => {
  const { backend, scheduler } = setup(4, 4, { backend: new ChunkingToy(), prefillChunkTokens: 4 });
  const short = [5, 6];
  const long = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
  const [a, b] = await Promise.all([
    scheduler.submit(spec(short, 5)),
    scheduler.submit(spec(long, 3)),
  ]);
  // Chunk results are never taken as tokens: both continue exactly as unchunked.
  assert.deepEqual(
    a.tokens.map((t) => t.id),
    greedy(short, 5),
  );
  assert.deepEqual(
    b.tokens.map((t) => t.id),
    greedy(long, 3),
  );
  const shape = backend.requests.map((batch) =>
    batch.map((r) => `${r.sequenceId}:${r.tokens.length}${r.wantToken === false ? '~' : ''}`),
  );
  // Step 1: the short prompt whole (2 tokens) and 2 of the long one's; then the short one decodes
  // beside each 4-token chunk, until the long prompt's last chunk asks for its first token.
  assert.deepEqual(shape.slice(0, 4), [
    ['1:2', '2:2~'],
    ['1:3', '2:6~'],
    ['1:4', '2:10'],
    ['1:5', '2:11'],
  ]);
  assert.deepEqual(
    backend.requests[1]![1]!.tokens,
    long.slice(0, 6),
    'a chunk is the prompt up to its end',
  );
});

/** A chunking toy that reports each step's cost: 1 ms a prompt token, 10 ms for the decodes. */
class CostingToy extends ChunkingToy {
  readonly #seen = new Map<number, number>();
  #cost: StepCost | undefined;
  override step(batch: readonly StepRequest[]) {
    let promptTokens = 0;
    let decodes = 0;
    for (const r of batch) {
      const seen = this.#seen.get(r.sequenceId);
      if (seen !== undefined && r.wantToken !== false && r.tokens.length === seen + 1) decodes++;
      else promptTokens += r.tokens.length - (seen ?? 0);
      this.#seen.set(r.sequenceId, r.tokens.length);
    }
    this.#cost = { prefillMs: promptTokens, decodeMs: decodes > 0 ? 10 : 0 };
    return super.step(batch);
  }
  lastStepCost(): StepCost | undefined {
    return this.#cost;
  }
}

test('chunks shrink to keep steps within the slowdown of the usual decode', async () => {
  const run = async (prefillStepSlowdown: number) => {
    const { backend, metrics, scheduler } = setup(4, 4, {
      backend: new CostingToy(),
      prefillChunkTokens: 64,
      prefillStepSlowdown,
    });
    const long = Array.from({ length: 200 }, (_, i) => 100 + i);
    const [short, longOutcome] = await Promise.all([
      scheduler.submit(spec([5, 6], 12)),
      scheduler.submit(spec(long, 2)),
    ]);
    assert.deepEqual(
      longOutcome.tokens.map((t) => t.id),
      greedy(long, 2),
    );
    assert.deepEqual(
      short.tokens.map((t) => t.id),
      greedy([5, 6], 12),
    );
    // Every prompt token (2 + 200) is in the histogram of prompt tokens per step.
    const fed = (await metrics.stepPromptTokens.get()).values;
    assert.equal(fed.find((v) => v.metricName?.endsWith('_sum'))?.value, 202);
    // The long prompt's tokens fed at each step, while it prefills.
    return backend.requests.flatMap((batch) =>
      batch.flatMap((r) => (r.sequenceId === 2 && r.tokens.length <= 200 ? [r.tokens.length] : [])),
    );
  };
  // Step 1 has no decode (both prompts are new): a whole chunk, 2 + 62. From step 2 the short
  // one decodes for 10 ms and a prompt token costs 1 ms: 3 × 10 - 10 leaves room for 20.
  assert.deepEqual(await run(3), [62, 126, 146, 166, 186, 200]);
  assert.deepEqual(await run(0), [62, 126, 190, 200], 'slowdown 0: fixed chunks');
});

test('a backend without chunked prefill gets every prompt whole', async () => {
  const { backend, scheduler } = setup(4, 4, { prefillChunkTokens: 4 });
  const long = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
  const outcome = await scheduler.submit(spec(long, 2));
  assert.deepEqual(
    outcome.tokens.map((t) => t.id),
    greedy(long, 2),
  );
  assert.equal(backend.steps.length, 2);
});

test('abortAll at the deadline answers every generation at once, and a step that lands afterwards answers nobody twice', async () => {
  const { backend, metrics, scheduler } = setup(1, 4);
  const open = backend.hold();
  const streamed: number[] = [];
  const running = scheduler.submit({ ...spec([1], 5), onToken: (t) => streamed.push(t.id) });
  const queued = scheduler.submit(spec([2], 5));
  while (backend.steps.length === 0) await tick();
  const deadline = new GatewayError('SHUTTING_DOWN', 'ended at the deadline');
  assert.equal(scheduler.abortAll(deadline), 2);
  // Both are answered while the first step is still held: nobody waits for the backend.
  await assert.rejects(running, (err: unknown) => err === deadline);
  await assert.rejects(queued, (err: unknown) => err === deadline);
  assert.equal(backend.stepSignals[0]?.aborted, true, 'the backend call in flight is cut');
  assert.throws(() => scheduler.submit(spec([3], 1)), { code: 'SHUTTING_DOWN' });
  open();
  await scheduler.drain();
  // The held step's token went to nobody; the stepped sequence is released once, the queued one
  // never reached the backend.
  assert.deepEqual(streamed, []);
  assert.deepEqual(backend.steps, [[1]]);
  assert.deepEqual(backend.released, [1]);
  assert.equal(scheduler.activeCount + scheduler.queuedCount, 0);
  assert.equal(
    (await metrics.generations.get()).values.find((v) => v.labels.finish_reason === 'error')?.value,
    2,
  );
});

test('abortAll while a step fails: the failure is not a second answer', async () => {
  const { backend, scheduler } = setup(2, 4);
  const open = backend.hold();
  const running = scheduler.submit(spec([1], 5));
  while (backend.steps.length === 0) await tick();
  const deadline = new GatewayError('SHUTTING_DOWN', 'ended at the deadline');
  scheduler.abortAll(deadline);
  backend.failNext = new BackendError('BACKEND_TIMEOUT', 'aborted');
  open();
  await assert.rejects(running, (err: unknown) => err === deadline);
  await scheduler.drain();
  assert.deepEqual(backend.released, [1]);
});

test('submitAll admits every generation or none: a refusal leaves nothing queued or stepped', async () => {
  const { backend, scheduler } = setup(1, 2);
  const open = backend.hold();
  const first = scheduler.submit(spec([1], 1));
  // Two places are left; three generations at once do not fit and none of them is taken.
  assert.throws(
    () => scheduler.submitAll([spec([2], 1), spec([3], 1), spec([4], 1)]),
    (err: unknown) =>
      err instanceof GatewayError &&
      err.code === 'QUEUE_FULL' &&
      /this request needs 3/.test(err.message),
  );
  assert.equal(scheduler.activeCount + scheduler.queuedCount, 1);
  // Two do fit; with one slot they run one after the other once it frees up.
  const both = scheduler.submitAll([spec([2], 1), spec([3], 1)]);
  assert.equal(both.length, 2);
  open();
  const outcomes = await Promise.all([first, ...both]);
  assert.deepEqual(
    outcomes.map((o) => o.tokens.map((t) => t.id)),
    [greedy([1], 1), greedy([2], 1), greedy([3], 1)],
  );
  assert.deepEqual(backend.steps.flat().sort(), [1, 2, 3]);
});

test('submitAll takes its generations into the same step when slots are free', async () => {
  const { backend, scheduler } = setup(4, 0);
  const outcomes = await Promise.all(
    scheduler.submitAll([spec([5], 2), spec([6], 2), spec([7], 2)]),
  );
  assert.equal(outcomes.length, 3);
  assert.deepEqual(backend.steps, [
    [1, 2, 3],
    [1, 2, 3],
  ]);
});

test('submitAll during a drain refuses with SHUTTING_DOWN before queueing anything', async () => {
  const { scheduler } = setup(4, 4);
  await scheduler.drain();
  assert.throws(
    () => scheduler.submitAll([spec([1], 1), spec([2], 1)]),
    (err: unknown) => err instanceof GatewayError && err.code === 'SHUTTING_DOWN',
  );
  assert.equal(scheduler.queuedCount, 0);
});

test('maxBatchTotalTokens admits in order while prompt + max_new_tokens of the batch fit; one alone always runs', async () => {
  const { backend, scheduler } = setup(8, 8, { maxBatchTotalTokens: 10 });
  // Reservations 1+5, 2+2, 1+2, then 4+9 (over the budget on its own).
  const outcomes = await Promise.all([
    scheduler.submit(spec([1], 5)),
    scheduler.submit(spec([2, 3], 2)),
    scheduler.submit(spec([4], 2)),
    scheduler.submit(spec([5, 6, 7, 8], 9)),
  ]);
  assert.deepEqual(
    outcomes.map((o) => o.tokens.length),
    [5, 2, 2, 9],
  );
  // 6 + 4 fit in 10; the third (3) waits until the second leaves, and the fourth (13) runs alone
  // once the batch is empty, never ahead of the third.
  assert.deepEqual(backend.steps, [
    [1, 2],
    [1, 2],
    [1, 3],
    [1, 3],
    [1],
    [4],
    [4],
    [4],
    [4],
    [4],
    [4],
    [4],
    [4],
    [4],
  ]);
});
