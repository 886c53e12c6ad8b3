/**
 * Tensor packing for a step and the checks on what comes back. The ids, mask and position
 * layouts are the ones src/contract/signature.ts documents for each variant; the output checks
 * turn an answer of the wrong shape into BACKEND_BAD_RESPONSE instead of reading past a buffer.
 */

import type {
  GreedyOutputs,
  KvSignature,
  ModelSignature,
  TensorRef,
} from '../../contract/signature.js';
import {
  fixedDatatype,
  numberAt,
  type Tensor,
  tensorFromValues,
} from '../../kserve/tensor-codec.js';
import { BackendError, type StepRequest, type StepResult } from '../backend.js';
import { greedyFromLogits } from '../greedy.js';

function idsTensor(ref: TensorRef, shape: number[], values: number[]): Tensor {
  return tensorFromValues(ref.name, fixedDatatype(ref.datatype, ref.name), shape, values);
}

/** Stateless inputs: rows right-padded to the longest, real tokens first, mask 0 over the pad. */
export function statelessInputs(
  s: ModelSignature,
  batch: readonly StepRequest[],
): { inputs: Tensor[]; width: number } {
  const width = Math.max(...batch.map((r) => r.tokens.length));
  const ids: number[] = [];
  const mask: number[] = [];
  for (const r of batch) {
    if (r.tokens.length === 0)
      throw new BackendError('BACKEND_ERROR', `sequence ${r.sequenceId} has no tokens`);
    for (let i = 0; i < width; i++) {
      ids.push(i < r.tokens.length ? (r.tokens[i] as number) : 0);
      mask.push(i < r.tokens.length ? 1 : 0);
    }
  }
  const shape = [batch.length, width];
  return {
    inputs: [idsTensor(s.inputIds, shape, ids), idsTensor(s.attentionMask, shape, mask)],
    width,
  };
}

/**
 * One kv step under implicit state: the new tokens only, a mask over one masked dummy past slot
 * (the state Triton seeds, see signature.ts) plus every real token, positions counting real
 * tokens only.
 */
export function kvInputs(s: KvSignature, tokens: readonly number[], seen: number): Tensor[] {
  const n = tokens.length;
  const mask = [0, ...new Array<number>(seen + n).fill(1)];
  const positions = Array.from({ length: n }, (_, i) => seen + i);
  return [
    idsTensor(s.inputIds, [1, n], [...tokens]),
    idsTensor(s.attentionMask, [1, mask.length], mask),
    idsTensor(s.positionIds, [1, n], positions),
  ];
}

function output(
  outputs: ReadonlyMap<string, Tensor>,
  ref: TensorRef,
  dims: (shape: readonly number[]) => boolean,
  expect: string,
): Tensor {
  const t = outputs.get(ref.name);
  if (t === undefined)
    throw new BackendError(
      'BACKEND_BAD_RESPONSE',
      `inference: the answer lacks output '${ref.name}'`,
    );
  if (!dims(t.shape)) {
    throw new BackendError(
      'BACKEND_BAD_RESPONSE',
      `inference: output '${ref.name}' has shape [${t.shape.join(',')}], expected ${expect}`,
    );
  }
  return t;
}

/** Row b of a step's outputs (`rows` rows): `length` real tokens of `width` sent. */
export function readRow(
  s: ModelSignature,
  outputs: ReadonlyMap<string, Tensor>,
  b: number,
  rows: number,
  length: number,
  width: number,
): StepResult {
  const greedyRow = (greedy: GreedyOutputs): StepResult => {
    const one = (shape: readonly number[]) =>
      shape[0] === rows && shape.slice(1).every((d) => d === 1);
    const token = output(outputs, greedy.nextToken, one, `[${rows}, 1]`);
    const logprob = output(outputs, greedy.logprob, one, `[${rows}, 1]`);
    return { tokenId: numberAt(token.data, b), logprob: numberAt(logprob.data, b) };
  };
  if (s.variant === 'next-token') return greedyRow(s.outputs);
  // A kv model with the greedy outputs was asked for those only (plan.ts).
  if (s.variant === 'kv' && s.outputs.greedy !== undefined) return greedyRow(s.outputs.greedy);
  if (s.variant === 'last') {
    const t = output(
      outputs,
      s.outputs.lastLogits,
      (sh) => sh.length === 2 && sh[0] === rows && (sh[1] ?? 0) > 0,
      `[${rows}, vocab]`,
    );
    const vocab = t.shape[1] as number;
    return greedyFromLogits(t.data as Float32Array, b * vocab, vocab);
  }
  // A kv model returns each row's last position only ([rows, 1, vocab], the default build) or
  // every position ([rows, width, vocab], --full-logits); the dims returned decide which.
  const lastOnly = s.variant === 'kv';
  const t = output(
    outputs,
    s.outputs.logits,
    (sh) =>
      sh.length === 3 &&
      sh[0] === rows &&
      (sh[1] === width || (lastOnly && sh[1] === 1)) &&
      (sh[2] ?? 0) > 0,
    lastOnly ? `[${rows}, 1 or ${width}, vocab]` : `[${rows}, ${width}, vocab]`,
  );
  const seq = t.shape[1] as number;
  const vocab = t.shape[2] as number;
  // seq 1: the graph already picked the row's last real token.
  const position = seq === width ? length - 1 : 0;
  return greedyFromLogits(t.data as Float32Array, (b * seq + position) * vocab, vocab);
}
