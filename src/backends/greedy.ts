/**
 * Logits this far below the maximum add under e^-30 ≈ 1e-13 each to the softmax sum — less than
 * 1e-8 relative over all 50,257 of GPT-2's, below FP32's own precision — so their exp() is skipped.
 * A confident model puts much of the vocabulary there, and each skipped exp() is saved.
 */
const NEGLIGIBLE_BELOW_MAX = 30;

/** Greedy choice from one row of logits: the argmax and its natural-log softmax probability. */
export function greedyFromLogits(
  logits: Float32Array,
  offset: number,
  vocabSize: number,
): { tokenId: number; logprob: number } {
  let best = 0;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < vocabSize; i++) {
    const v = logits[offset + i]!;
    // Strict '>' keeps the first maximum, as ONNX ArgMax (select_last_index = 0) and torch do.
    if (v > max) {
      max = v;
      best = i;
    }
  }
  const floor = max - NEGLIGIBLE_BELOW_MAX;
  let sum = 0;
  for (let i = 0; i < vocabSize; i++) {
    const v = logits[offset + i]!;
    if (v > floor) sum += Math.exp(v - max);
  }
  return { tokenId: best, logprob: -Math.log(sum) };
}
