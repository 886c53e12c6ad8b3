/**
 * The worker thread of TokenizerPool: loads its own GPT-2 tokenizer, then encodes one text per
 * message and sends the ids back in a transferred Int32Array (a move of the buffer, not a copy of
 * a JS array through the structured clone).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadGpt2Tokenizer } from './gpt2-tokenizer.js';

/** Main thread → worker. */
export interface EncodeRequest {
  readonly id: number;
  readonly text: string;
}

/** Worker → main thread. */
export type WorkerReply =
  | { readonly kind: 'ready' }
  | { readonly kind: 'result'; readonly id: number; readonly ids: Int32Array }
  | { readonly kind: 'error'; readonly id: number; readonly message: string };

/** Test-only behaviour, so tests can make a worker fail the ways a real one can. */
export interface WorkerTestHooks {
  /** Exit the thread (code 70) on being asked to encode exactly this text. */
  readonly exitOnText?: string;
  /** Throw before loading the tokenizer, as a worker that cannot start would. */
  readonly failStartup?: boolean;
}

const port = parentPort;
if (port === null) throw new Error('tokenizer-worker.js runs as a worker thread of TokenizerPool');
const hooks = (workerData ?? {}) as WorkerTestHooks;
if (hooks.failStartup === true) throw new Error('tokenizer worker start-up failed (test hook)');

const tokenizer = loadGpt2Tokenizer();
port.on('message', ({ id, text }: EncodeRequest) => {
  if (hooks.exitOnText !== undefined && text === hooks.exitOnText) process.exit(70);
  let reply: WorkerReply;
  try {
    const ids = Int32Array.from(tokenizer.encode(text));
    reply = { kind: 'result', id, ids };
    port.postMessage(reply, [ids.buffer]);
  } catch (err) {
    reply = { kind: 'error', id, message: err instanceof Error ? err.message : String(err) };
    port.postMessage(reply);
  }
});
port.postMessage({ kind: 'ready' } satisfies WorkerReply);
