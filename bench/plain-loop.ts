/**
 * The floor: a minimal greedy loop on onnxruntime-node with nothing around it — no HTTP, no
 * scheduler, no tokenizer — on the same kv model file the gateway serves. `batch` identical-length
 * sequences are stepped together (no padding needed), which is the best case for batching. Like
 * the gateway, it takes the graph's own greedy choice (next_token) where the model has one, and
 * fetches only what it reads.
 */
import * as ort from 'onnxruntime-node';

export interface PlainLoopResult {
  /** Milliseconds per decode step (after the prefill). */
  readonly stepMs: number[];
  readonly prefillMs: number;
  readonly tokens: number[][];
}

function i64(values: number[], dims: number[]): ort.Tensor {
  return new ort.Tensor(
    'int64',
    BigInt64Array.from(values, (v) => BigInt(v)),
    dims,
  );
}

function argmax(data: Float32Array, offset: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (data[offset + i]! > data[offset + best]!) best = i;
  return best;
}

export async function plainGreedyLoop(
  session: ort.InferenceSession,
  shape: { nLayer: number; nHead: number; headDim: number; vocab: number },
  prompt: number[],
  newTokens: number,
  batch: number,
): Promise<PlainLoopResult> {
  const { nLayer, nHead, headDim, vocab } = shape;
  const presentNames = Array.from({ length: nLayer }, (_, i) => [
    `present.${i}.key`,
    `present.${i}.value`,
  ]).flat();
  const inGraph = session.outputNames.includes('next_token');
  const fetches = [inGraph ? 'next_token' : 'logits', ...presentNames];
  let past: Record<string, ort.Tensor> = {};
  for (let i = 0; i < nLayer; i++) {
    for (const kind of ['key', 'value']) {
      past[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [
        batch,
        nHead,
        0,
        headDim,
      ]);
    }
  }
  const tokens: number[][] = Array.from({ length: batch }, () => []);
  let input = Array.from({ length: batch }, () => prompt).flat();
  let width = prompt.length;
  let length = 0;
  const stepMs: number[] = [];
  let prefillMs = 0;
  for (let step = 0; step < newTokens; step++) {
    const started = performance.now();
    const total = length + width;
    const positions = Array.from({ length: width }, (_, k) => length + k);
    const out = await session.run(
      {
        input_ids: i64(input, [batch, width]),
        attention_mask: i64(new Array<number>(batch * total).fill(1), [batch, total]),
        position_ids: i64(Array.from({ length: batch }, () => positions).flat(), [batch, width]),
        ...past,
      },
      fetches,
    );
    const chosen = inGraph ? (out.next_token!.data as BigInt64Array) : undefined;
    // Else: the kv graph returns the last position only ([batch, 1, vocab]) unless built with
    // --full-logits ([batch, width, vocab]): read the row's last position from the answer.
    const logits = inGraph ? undefined : (out.logits!.data as Float32Array);
    const rows = inGraph ? 1 : out.logits!.dims[1]!;
    input = tokens.map((seq, b) => {
      const next =
        chosen === undefined
          ? argmax(logits!, (b * rows + rows - 1) * vocab, vocab)
          : Number(chosen[b]);
      seq.push(next);
      return next;
    });
    past = {};
    for (let i = 0; i < nLayer; i++) {
      past[`past_key_values.${i}.key`] = out[`present.${i}.key`]!;
      past[`past_key_values.${i}.value`] = out[`present.${i}.value`]!;
    }
    length = total;
    width = 1;
    const ms = performance.now() - started;
    if (step === 0) prefillMs = ms;
    else stepMs.push(ms);
  }
  return { stepMs, prefillMs, tokens };
}
