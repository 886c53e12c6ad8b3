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
  let sum = 0;
  for (let i = 0; i < vocabSize; i++) sum += Math.exp(logits[offset + i]! - max);
  return { tokenId: best, logprob: -Math.log(sum) };
}
