/**
 * The floor in a worker thread of its own, as the gateway's inference runs in one: each side's
 * session then runs beside a heap of its own size. On the bench's main thread (which also holds
 * the gateway's HTTP server and tokenizer) the same loop measured 63-75 ms a batch-16 step
 * against 52-57 ms alone: the KV presents each step allocates are tens of MB of external memory,
 * and collecting them costs more on a big heap.
 *
 * The parent creates it with workerData { modelFile, shape } and sends { prompt, newTokens,
 * batch } requests; each is answered with a PlainLoopResult (or { error }), in order.
 */
import { parentPort, Worker, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { type PlainLoopResult, plainGreedyLoop } from './plain-loop.js';

interface Shape {
  nLayer: number;
  nHead: number;
  headDim: number;
  vocab: number;
}
interface Request {
  prompt: number[];
  newTokens: number;
  batch: number;
}
type Answer = PlainLoopResult | { error: string };

if (parentPort !== null && workerData?.floor === true) {
  const port = parentPort;
  const { modelFile, shape } = workerData as { modelFile: string; shape: Shape };
  // The same options as the gateway's inference worker (idle intra-op threads sleep), so that
  // the ratios measure the gateway, not a session setting.
  const ready = ort.InferenceSession.create(modelFile, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  let queue = Promise.resolve();
  port.on('message', (r: Request) => {
    queue = queue.then(async () => {
      try {
        const session = await ready;
        port.postMessage(await plainGreedyLoop(session, shape, r.prompt, r.newTokens, r.batch));
      } catch (err) {
        port.postMessage({ error: (err as Error).message } satisfies Answer);
      }
    });
  });
}

/** The floor's loop, run in its own thread; close() ends the thread. */
export class FloorWorker {
  readonly #worker: Worker;
  #waiting: ((a: Answer) => void)[] = [];
  /** Why the thread is gone: every run waiting and every later one fails with it. */
  #lost: string | undefined;

  constructor(modelFile: string, shape: Shape) {
    this.#worker = new Worker(new URL(import.meta.url), {
      workerData: { floor: true, modelFile, shape },
    });
    this.#worker.on('message', (a: Answer) => this.#waiting.shift()?.(a));
    const lose = (why: string) => {
      this.#lost ??= why;
      for (const wake of this.#waiting.splice(0)) wake({ error: this.#lost });
    };
    this.#worker.on('error', (err) => lose(err.message));
    this.#worker.on('exit', (code) => lose(`its thread exited (code ${code})`));
  }

  async run(prompt: number[], newTokens: number, batch: number): Promise<PlainLoopResult> {
    const answer =
      this.#lost !== undefined
        ? { error: this.#lost }
        : await new Promise<Answer>((resolve) => {
            this.#waiting.push(resolve);
            this.#worker.postMessage({ prompt, newTokens, batch } satisfies Request);
          });
    if ('error' in answer) throw new Error(`the floor failed: ${answer.error}`);
    return answer;
  }

  close(): Promise<number> {
    return this.#worker.terminate();
  }
}
