/** Tensors in and out of an onnxruntime run, shared by the stateless and the kv steps. */
import * as ort from 'onnxruntime-node';
import type { TensorRef } from '../../contract/signature.js';
import { BackendError, type StepResult } from '../backend.js';
import { greedyFromLogits } from '../greedy.js';
import { floatData } from './kv-cache.js';

/** Any id will do under a zero mask; 0 keeps the embedding gather in range. */
export const PAD_ID = 0;

export type IdArray = BigInt64Array | Int32Array;

/** An ids, mask or positions tensor in the datatype the model declares (INT64 or INT32). */
export function ids(ref: TensorRef, values: readonly number[], dims: number[]): ort.Tensor {
  return ref.datatype === 'INT64'
    ? new ort.Tensor(
        'int64',
        BigInt64Array.from(values, (v) => BigInt(v)),
        dims,
      )
    : new ort.Tensor('int32', Int32Array.from(values), dims);
}

/**
 * Greedy choice from row b's last position of a kv model's logits. The seq dim is read from the
 * dims returned: 1 for the default kv graph (it gathers each row's last real token), the input
 * width for a --full-logits build. Every kv run here is one row or left-padded, so a row's last
 * column is its last real token either way.
 */
export function greedyAtLastPosition(tensor: ort.Tensor | undefined, b: number): StepResult {
  const data = floatData(tensor, 'logits');
  const dims = tensor?.dims ?? [];
  const [, seq, vocab] = dims;
  if (dims.length !== 3 || seq === undefined || seq < 1 || vocab === undefined) {
    throw new BackendError(
      'BACKEND_BAD_RESPONSE',
      `logits has shape [${dims.join(',')}], expected [batch, seq, vocab]`,
    );
  }
  return greedyFromLogits(data, (b * seq + seq - 1) * vocab, vocab);
}
