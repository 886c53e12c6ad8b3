/**
 * Greedy choice over one row of logits: the first index of the maximum (ties go to the lower id,
 * as argmax does in onnxruntime and numpy) and its natural-log softmax probability.
 */
import type { StepResult } from '../backend.js';

export function greedyFromLogits(
  logits: ArrayLike<number>,
  offset: number,
  vocab: number,
): StepResult {
  let best = 0;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < vocab; i++) {
    const v = logits[offset + i] ?? Number.NEGATIVE_INFINITY;
    if (v > max) {
      max = v;
      best = i;
    }
  }
  let sum = 0;
  for (let i = 0; i < vocab; i++)
    sum += Math.exp((logits[offset + i] ?? Number.NEGATIVE_INFINITY) - max);
  return { tokenId: best, logprob: -Math.log(sum) };
}
