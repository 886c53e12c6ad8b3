/**
 * The messages between the embedded backend's proxy (main thread) and its inference worker. Only
 * token ids and small results cross: the session, the KV caches and the greedy pass over the
 * vocabulary stay in the worker, so nothing large is ever copied between threads.
 */
import type { BackendErrorCode } from '../../contract/errors.js';
import type { BackendDescription, StepCost, StepRequest, StepResult } from '../backend.js';
import type { EmbeddedBackendOptions } from './embedded-backend.js';

/**
 * Test-only hooks, inert unless a test passes them (the config never does). They make the worker
 * misbehave the way a real one can: block inside a step, or die in the middle of one.
 */
export interface WorkerTestHooks {
  /**
   * Int32Array view [hold, held]: while hold is 1, each step blocks its thread synchronously
   * (Atomics.wait, as a long native session.run would) after adding 1 to held and notifying it;
   * setting hold to 0 and notifying index 0 lets it go on.
   */
  readonly holdSteps?: SharedArrayBuffer;
  /** The first worker (not a restarted one) exits with WORKER_TEST_EXIT_CODE at its Nth step. */
  readonly exitOnStep?: number;
}

/** The exit code of a worker that exitOnStep ended. */
export const WORKER_TEST_EXIT_CODE = 70;

export interface WorkerInit {
  readonly options: EmbeddedBackendOptions & { readonly modelFile: string };
  readonly hooks: WorkerTestHooks;
}

export type ToWorker =
  | { readonly kind: 'step'; readonly id: number; readonly batch: readonly StepRequest[] }
  | { readonly kind: 'release'; readonly sequenceId: number }
  | { readonly kind: 'close' };

export type FromWorker =
  | { readonly kind: 'ready'; readonly description: BackendDescription }
  | { readonly kind: 'init-failed'; readonly message: string }
  | {
      readonly kind: 'result';
      readonly id: number;
      readonly results: readonly (StepResult | undefined)[];
      readonly cost: StepCost | undefined;
    }
  | {
      readonly kind: 'failed';
      readonly id: number;
      readonly code: BackendErrorCode;
      readonly message: string;
    }
  | { readonly kind: 'closed' };
