/**
 * The embedded backend's inference worker (a worker_threads thread): one onnxruntime session, its
 * KV caches and the greedy argmax/logprob, driven by messages from the proxy in
 * worker-backend.ts. onnxruntime-node's session.run executes synchronously on the thread that
 * calls it, so it must not be the gateway's event loop. Messages are handled one at a time, in
 * order: a release always follows the steps sent before it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BackendError } from '../backend.js';
import { EmbeddedBackend } from './embedded-backend.js';
import {
  type FromWorker,
  type ToWorker,
  WORKER_TEST_EXIT_CODE,
  type WorkerInit,
} from './worker-protocol.js';

if (parentPort === null) throw new Error('inference-worker.ts runs as a worker thread only');
const port = parentPort;
const { options, hooks } = workerData as WorkerInit;
const backend = new EmbeddedBackend(options);
const post = (message: FromWorker) => port.postMessage(message);
let steps = 0;

/** Test hook: block this thread inside the step while the test holds it (see WorkerTestHooks). */
function holdIfAsked(): void {
  if (hooks.holdSteps === undefined) return;
  const view = new Int32Array(hooks.holdSteps);
  if (Atomics.load(view, 0) !== 1) return;
  Atomics.add(view, 1, 1);
  Atomics.notify(view, 1);
  while (Atomics.load(view, 0) === 1) Atomics.wait(view, 0, 1);
}

async function handle(message: ToWorker): Promise<void> {
  switch (message.kind) {
    case 'step': {
      steps++;
      if (hooks.exitOnStep === steps) process.exit(WORKER_TEST_EXIT_CODE);
      holdIfAsked();
      try {
        const results = await backend.step(message.batch);
        post({ kind: 'result', id: message.id, results, cost: backend.lastStepCost() });
      } catch (err) {
        const code = err instanceof BackendError ? err.code : 'BACKEND_ERROR';
        post({ kind: 'failed', id: message.id, code, message: (err as Error).message });
      }
      return;
    }
    case 'release':
      await backend.release(message.sequenceId);
      return;
    case 'close':
      await backend.close();
      post({ kind: 'closed' });
      port.close();
      return;
  }
}

let queue = Promise.resolve();
port.on('message', (message: ToWorker) => {
  queue = queue.then(() => handle(message));
});

backend.init().then(
  () => post({ kind: 'ready', description: backend.description }),
  (err: unknown) => post({ kind: 'init-failed', message: (err as Error).message }),
);
