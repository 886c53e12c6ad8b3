/**
 * The embedded backend as the gateway runs it, inference in a worker thread (tiny kv model built
 * in a temp dir): the same tokens as in-process inference; the event loop answers /healthz while
 * a step blocks the worker; a worker that dies mid-generation fails every generation in flight
 * with a clear error, readiness drops while it restarts, and the next request succeeds; a hung
 * step trips the watchdog the same way; an aborted step (the shutdown deadline) is answered at once.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../../src/app.js';
import type { Readiness } from '../../../src/backends/backend.js';
import { EmbeddedBackend } from '../../../src/backends/embedded/embedded-backend.js';
import {
  WorkerBackend,
  type WorkerBackendOptions,
} from '../../../src/backends/embedded/worker-backend.js';
import { ERRORS } from '../../../src/contract/errors.js';
import { buildOnnxModel } from '../../../src/model/build.js';
import { NAMED_CONFIGS } from '../../../src/model/configs.js';
import { completeConcurrently, testConfig } from '../../support/app.js';
import { parseSse } from '../../support/sse.js';

const WEIGHTS = { kind: 'random', seed: 7, std: 0.2 } as const;
const PROMPTS = ['I love Artificial Intelligence', 'Hello world', 'I enjoy working in Seldon'];
const NEW_TOKENS = 8;

let dir: string;
let modelFile: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'worker-backend-'));
  modelFile = join(dir, 'kv.onnx');
  await buildOnnxModel({ config: NAMED_CONFIGS.tiny, weights: WEIGHTS, variant: 'kv' }, modelFile);
});
after(() => rm(dir, { recursive: true, force: true }));

async function start(
  options: Partial<WorkerBackendOptions> = {},
  env: Record<string, string> = {},
): Promise<{ app: FastifyInstance; backend: WorkerBackend }> {
  const backend = new WorkerBackend({
    modelFile,
    modelName: 'tiny-kv',
    intraOpNumThreads: 1,
    ...options,
  });
  await backend.init();
  const app = await buildApp(testConfig({ MAX_BATCH_SIZE: '8', ...env }), { backend });
  return { app, backend };
}

/** Atomics.waitAsync is in Node 20 (V8) but only in TypeScript's ES2024 lib. */
const { waitAsync } = Atomics as unknown as {
  waitAsync(view: Int32Array, index: number, value: number): { value: Promise<string> | string };
};

/** [hold, held] for WorkerTestHooks.holdSteps. */
function holdSwitch() {
  const buffer = new SharedArrayBuffer(8);
  const view = new Int32Array(buffer);
  return {
    buffer,
    hold: () => Atomics.store(view, 0, 1),
    /** Resolves once a step is blocked in the worker. */
    held: async () => {
      const seen = Atomics.load(view, 1);
      if (seen === 0) await waitAsync(view, 1, 0).value;
    },
    release: () => {
      Atomics.store(view, 0, 0);
      Atomics.notify(view, 0);
    },
  };
}

const complete = (app: FastifyInstance, prompt: string, stream = false) =>
  app.inject({
    method: 'POST',
    url: '/complete',
    payload: { prompt, max_new_tokens: NEW_TOKENS, stream },
  });

test('the worker gives the same tokens as in-process inference, chunked prefill included', async () => {
  const local = new EmbeddedBackend({ modelFile, modelName: 'tiny-kv', intraOpNumThreads: 1 });
  await local.init();
  const localApp = await buildApp(testConfig({ MAX_BATCH_SIZE: '8' }), { backend: local });
  const expected = (await completeConcurrently(localApp, PROMPTS, NEW_TOKENS)).map((b) =>
    b.tokens.map((t) => t.id),
  );
  await localApp.close();
  await local.close();

  const { app, backend } = await start({}, { PREFILL_CHUNK_TOKENS: '2' });
  try {
    assert.equal(backend.description.chunkedPrefill, true);
    assert.equal(backend.description.variant, 'kv');
    const got = (await completeConcurrently(app, PROMPTS, NEW_TOKENS)).map((b) =>
      b.tokens.map((t) => t.id),
    );
    assert.deepEqual(got, expected);
    // The worker's measure of its last step comes back with its results (the prefill budget's).
    assert.equal(backend.lastStepCost()?.prefillMs, 0, 'the last step of all is a decode');
  } finally {
    await app.close();
    await backend.close();
  }
  await assert.rejects(backend.step([{ sequenceId: 1, tokens: [1] }]), {
    code: 'BACKEND_NOT_READY',
  });
});

test('GET /healthz answers while a step is blocking the inference worker', async () => {
  const gate = holdSwitch();
  const { app, backend } = await start({ testHooks: { holdSteps: gate.buffer } });
  try {
    gate.hold();
    const order: string[] = [];
    const completion = complete(app, PROMPTS[0]!).then((res) => {
      order.push('complete');
      return res;
    });
    await gate.held();
    const health = await app.inject({ method: 'GET', url: '/healthz' });
    order.push('healthz');
    assert.equal(health.statusCode, 200);
    // The step is still blocked in the worker: the probe was answered first.
    assert.deepEqual(order, ['healthz']);
    gate.release();
    assert.equal((await completion).statusCode, 200);
    assert.deepEqual(order, ['healthz', 'complete']);
  } finally {
    gate.release();
    await app.close();
    await backend.close();
  }
});

test('a worker that dies mid-generation fails every generation in flight; the next request succeeds', async () => {
  // Steps 1-2 are the three prompts' prefill and first decode; the worker dies at step 3.
  const { app, backend } = await start({ testHooks: { exitOnStep: 3 } });
  const readinessAtFailure: Readiness[] = [];
  const step = backend.step.bind(backend);
  backend.step = async (batch) => {
    try {
      return await step(batch);
    } catch (err) {
      readinessAtFailure.push(backend.readiness());
      throw err;
    }
  };
  try {
    const [a, b, streamed] = await Promise.all([
      complete(app, PROMPTS[0]!),
      complete(app, PROMPTS[1]!),
      complete(app, PROMPTS[2]!, true),
    ]);
    for (const res of [a, b]) {
      assert.equal(res.statusCode, 502, res.body);
      const body = res.json<{ error: { code: string; message: string } }>();
      assert.equal(body.error.code, 'BACKEND_ERROR');
      // 5xx messages are the catalogue's; the worker's exit code goes to the log.
      assert.equal(body.error.message, ERRORS.BACKEND_ERROR.message);
    }
    // The stream had already begun: it ends with an error event, not a hang.
    const events = parseSse(streamed.body);
    assert.ok(events.some((e) => e.event === 'token'));
    const last = events.at(-1)!;
    assert.equal(last.event, 'error');
    assert.match(JSON.stringify(last.data), /BACKEND_ERROR/);
    assert.equal(readinessAtFailure.length, 1);
    assert.equal(readinessAtFailure[0]!.ready, false);
    assert.match(readinessAtFailure[0]!.reason ?? '', /restarting the inference worker/);

    await backend.whenReady();
    assert.deepEqual(backend.readiness(), { ready: true });
    const next = await complete(app, PROMPTS[0]!);
    assert.equal(next.statusCode, 200, next.body);
    assert.equal(next.json<{ tokens: unknown[] }>().tokens.length, NEW_TOKENS);
  } finally {
    await app.close();
    await backend.close();
  }
});

test('a step that outlives the watchdog is a 504 and the worker is replaced', async () => {
  const gate = holdSwitch();
  const { app, backend } = await start({
    stepTimeoutMs: 1000,
    testHooks: { holdSteps: gate.buffer },
  });
  try {
    gate.hold();
    const res = await complete(app, PROMPTS[0]!);
    assert.equal(res.statusCode, 504, res.body);
    assert.equal(res.json<{ error: { code: string } }>().error.code, 'BACKEND_TIMEOUT');
    gate.release();
    await backend.whenReady();
    const next = await complete(app, PROMPTS[1]!);
    assert.equal(next.statusCode, 200, next.body);
  } finally {
    gate.release();
    await app.close();
    await backend.close();
  }
});

test('a step under an abort signal answers at once when aborted and leaves no listener behind', async () => {
  const gate = holdSwitch();
  const { app, backend } = await start({ testHooks: { holdSteps: gate.buffer } });
  // One signal for many steps, as the scheduler's shutdown signal is.
  const shutdown = new AbortController();
  try {
    for (let k = 1; k <= 3; k++) {
      await backend.step([{ sequenceId: k, tokens: [464, 2068] }], shutdown.signal);
    }
    assert.equal(getEventListeners(shutdown.signal, 'abort').length, 0);
    gate.hold();
    const held = backend.step([{ sequenceId: 9, tokens: [464] }], shutdown.signal);
    await gate.held();
    const deadline = new Error('shutdown deadline');
    shutdown.abort(deadline);
    // Answered while the worker is still blocked inside the step.
    await assert.rejects(held, (err: unknown) => err === deadline);
    gate.release();
    const [after] = await backend.step([{ sequenceId: 10, tokens: [464, 2068] }]);
    assert.ok(after !== undefined && Number.isInteger(after.tokenId));
  } finally {
    gate.release();
    await app.close();
    await backend.close();
  }
});
