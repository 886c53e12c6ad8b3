import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import type { ModelVariant } from '../../src/contract/model.js';
import { buildOnnxModel } from '../../src/model/build.js';
import { NAMED_CONFIGS } from '../../src/model/configs.js';
import { dequantizeInt8, quantizeInt8 } from '../../src/model/quantize.js';
import { RandomWeights } from '../../src/model/random-weights.js';
import { weightSpecs } from '../../src/model/weights.js';
import { argmax, logSoftmaxAt, maxAbsDiff, referenceLogits } from './gpt2-reference.js';

const config = NAMED_CONFIGS.tiny;
const SEED = 1234;
/** Wider than HF's 0.02 so that attention is far from uniform and a wrong mask shows. */
const STD = 0.2;
const TOLERANCE = 1e-4;
const V = config.vocabSize;
const H = config.nHead;
const D = config.nEmbd / config.nHead;

/** Three right-padded rows of different lengths (batch > 1, padding in two rows). */
const ROWS: number[][] = [[464, 2068, 7586, 21831, 18045, 625], [40, 2883, 1762], [50256]];
const WIDTH = Math.max(...ROWS.map((r) => r.length));

const provider = new RandomWeights(SEED, STD);
const weights = new Map(weightSpecs(config).map((s) => [s.name, provider.tensor(s)]));
const reference = ROWS.map((r) => referenceLogits(config, weights, r));

let dir: string;
const sessions = new Map<string, ort.InferenceSession>();

function i64(values: readonly number[], dims: number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(values.map((v) => BigInt(v))), dims);
}

function padded(
  rows: readonly (readonly number[])[],
  width: number,
): { ids: number[]; mask: number[] } {
  const ids: number[] = [];
  const mask: number[] = [];
  for (const r of rows) {
    for (let k = 0; k < width; k++) {
      ids.push(r[k] ?? 0);
      mask.push(k < r.length ? 1 : 0);
    }
  }
  return { ids, mask };
}

function emptyPast(batch: number, length = 0): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (let i = 0; i < config.nLayer; i++) {
    for (const kind of ['key', 'value']) {
      feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor(
        'float32',
        new Float32Array(batch * H * length * D),
        [batch, H, length, D],
      );
    }
  }
  return feeds;
}

function floats(t: ort.Tensor | undefined): Float32Array {
  assert.ok(t !== undefined && t.data instanceof Float32Array);
  return t.data;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gpt2-graph-'));
  const builds: [string, ModelVariant, boolean, boolean?][] = [
    ['logits', 'logits', false],
    ['last', 'last', false],
    ['next-token', 'next-token', false],
    ['kv', 'kv', false],
    ['kv-full', 'kv', false, true],
    ['seed', 'logits', true],
  ];
  for (const fused of [false, true]) {
    for (const [key, variant, seedSignature, fullLogits] of builds) {
      if (fused && seedSignature) continue;
      const file = join(dir, `${fused ? 'fused-' : ''}${key}.onnx`);
      await buildOnnxModel(
        {
          config,
          weights: { kind: 'random', seed: SEED, std: STD },
          variant,
          seedSignature,
          fused,
          fullLogits,
        },
        file,
      );
      const s = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
      sessions.set(`${fused ? 'fused:' : ''}${key}`, s);
    }
  }
});

after(async () => {
  for (const s of sessions.values()) await s.release();
  await rm(dir, { recursive: true, force: true });
});

let graphKind = '';
function session(key: string): ort.InferenceSession {
  const s = sessions.get(`${graphKind}${key}`);
  assert.ok(s !== undefined);
  return s;
}

for (const fused of [false, true]) {
  describe(`${fused ? 'fused' : 'standard'} GPT-2 ONNX graph against the float64 reference (tiny config, random weights)`, () => {
    before(() => {
      graphKind = fused ? 'fused:' : '';
    });

    test('logits at every real position of right-padded rows match within 1e-4', async () => {
      const { ids, mask } = padded(ROWS, WIDTH);
      const out = await session('logits').run({
        input_ids: i64(ids, [ROWS.length, WIDTH]),
        attention_mask: i64(mask, [ROWS.length, WIDTH]),
      });
      assert.deepEqual(out.logits?.dims, [ROWS.length, WIDTH, V]);
      const data = floats(out.logits);
      ROWS.forEach((row, b) => {
        row.forEach((_, pos) => {
          const at = (b * WIDTH + pos) * V;
          const diff = maxAbsDiff(reference[b]![pos]!, data.subarray(at, at + V));
          assert.ok(diff < TOLERANCE, `row ${b} pos ${pos}: max |diff| ${diff}`);
        });
      });
    });

    test('the reference is not trivially matched: logits vary by position and row', () => {
      // Guards the oracle itself: a graph ignoring positions or attention would fail the test above.
      const a = reference[0]!;
      assert.ok(maxAbsDiff(a[0]!, a[1]!) > 0.1);
      assert.ok(maxAbsDiff(reference[0]![0]!, reference[2]![0]!) > 0.1);
    });

    test('last returns each row’s last real position', async () => {
      const { ids, mask } = padded(ROWS, WIDTH);
      const out = await session('last').run({
        input_ids: i64(ids, [ROWS.length, WIDTH]),
        attention_mask: i64(mask, [ROWS.length, WIDTH]),
      });
      assert.deepEqual(out.last_logits?.dims, [ROWS.length, V]);
      const data = floats(out.last_logits);
      ROWS.forEach((row, b) => {
        const diff = maxAbsDiff(reference[b]![row.length - 1]!, data.subarray(b * V, (b + 1) * V));
        assert.ok(diff < TOLERANCE, `row ${b}: max |diff| ${diff}`);
      });
    });

    test('last works with left padding too (positions come from the mask)', async () => {
      const row = ROWS[1]!;
      const pad = WIDTH - row.length;
      const ids = [...Array(pad).fill(0), ...row];
      const mask = [...Array(pad).fill(0), ...row.map(() => 1)];
      const out = await session('last').run({
        input_ids: i64(ids, [1, WIDTH]),
        attention_mask: i64(mask, [1, WIDTH]),
      });
      const diff = maxAbsDiff(reference[1]![row.length - 1]!, floats(out.last_logits));
      assert.ok(diff < TOLERANCE, `max |diff| ${diff}`);
    });

    /** next_token and logprob [rows, 1]: the argmax of each row's last real token and its
     * log-softmax, as the reference computes them. */
    const assertGreedyOutputs = (out: ort.InferenceSession.OnnxValueMapType) => {
      assert.deepEqual(out.next_token?.dims, [ROWS.length, 1]);
      assert.deepEqual(out.logprob?.dims, [ROWS.length, 1]);
      const tokens = Array.from(out.next_token!.data as BigInt64Array, Number);
      const logprobs = floats(out.logprob);
      ROWS.forEach((row, b) => {
        const last = reference[b]![row.length - 1]!;
        const best = argmax(last);
        assert.equal(tokens[b], best, `row ${b}`);
        const lp = logSoftmaxAt(last, best);
        assert.ok(Math.abs(logprobs[b]! - lp) < TOLERANCE, `row ${b}: ${logprobs[b]} vs ${lp}`);
      });
    };

    test('next-token returns the argmax and its log-probability', async () => {
      const { ids, mask } = padded(ROWS, WIDTH);
      const out = await session('next-token').run({
        input_ids: i64(ids, [ROWS.length, WIDTH]),
        attention_mask: i64(mask, [ROWS.length, WIDTH]),
      });
      assertGreedyOutputs(out);
    });

    test('kv: a right-padded batch decoded step by step gives the full forward pass’s logits', async () => {
      const kv = session('kv');
      const seqs = ROWS.map((r) => [...r]);
      const { ids, mask } = padded(seqs, WIDTH);
      const batch = seqs.length;
      const positions = seqs.flatMap(() => Array.from({ length: WIDTH }, (_, k) => k));
      let out = await kv.run({
        input_ids: i64(ids, [batch, WIDTH]),
        attention_mask: i64(mask, [batch, WIDTH]),
        position_ids: i64(positions, [batch, WIDTH]),
        ...emptyPast(batch, 0),
      });
      assert.deepEqual(out['present.0.key']?.dims, [batch, H, WIDTH, D]);
      // Right padding: the graph picks each row's last REAL token, not the last column.
      assert.deepEqual(out.logits?.dims, [batch, 1, V]);
      let fullMask = [...mask];
      let total = WIDTH;
      let lastLogits = seqs.map((_, b) => floats(out.logits).slice(b * V, (b + 1) * V));
      for (let step = 0; step < 3; step++) {
        // Greedy continuation per row, then check against the reference over the whole sequence.
        const next = lastLogits.map((l) => argmax(l));
        seqs.forEach((s, b) => {
          const ref = referenceLogits(config, weights, s);
          const diff = maxAbsDiff(ref[s.length - 1]!, lastLogits[b]!);
          assert.ok(diff < TOLERANCE, `step ${step} row ${b}: max |diff| ${diff}`);
          s.push(next[b]!);
        });
        const newMask: number[] = [];
        for (let b = 0; b < batch; b++) {
          newMask.push(...fullMask.slice(b * total, (b + 1) * total), 1);
        }
        total += 1;
        fullMask = newMask;
        const feeds: Record<string, ort.Tensor> = {
          input_ids: i64(next, [batch, 1]),
          attention_mask: i64(fullMask, [batch, total]),
          position_ids: i64(
            seqs.map((s) => s.length - 1),
            [batch, 1],
          ),
        };
        for (let i = 0; i < config.nLayer; i++) {
          for (const kind of ['key', 'value']) {
            feeds[`past_key_values.${i}.${kind}`] = out[`present.${i}.${kind}`]!;
          }
        }
        out = await kv.run(feeds);
        assert.deepEqual(out.logits?.dims, [batch, 1, V]);
        lastLogits = seqs.map((_, b) => floats(out.logits).slice(b * V, (b + 1) * V));
      }
      seqs.forEach((s, b) => {
        const ref = referenceLogits(config, weights, s);
        const diff = maxAbsDiff(ref[s.length - 1]!, lastLogits[b]!);
        assert.ok(diff < TOLERANCE, `final row ${b}: max |diff| ${diff}`);
      });
    });

    test('kv under Triton implicit state: one zero past slot masked by attention_mask[0] = 0', async () => {
      // The convention documented in signature.ts and configured in config.pbtxt (initial_state).
      const row = ROWS[0]!;
      const feeds = {
        input_ids: i64(row, [1, row.length]),
        attention_mask: i64([0, ...row.map(() => 1)], [1, row.length + 1]),
        position_ids: i64(
          row.map((_, k) => k),
          [1, row.length],
        ),
        ...emptyPast(1, 1),
      };
      // --full-logits: every position matches the plain forward pass.
      const full = await session('kv-full').run(feeds);
      assert.deepEqual(full.logits?.dims, [1, row.length, V]);
      const data = floats(full.logits);
      row.forEach((_, pos) => {
        const diff = maxAbsDiff(reference[0]![pos]!, data.subarray(pos * V, (pos + 1) * V));
        assert.ok(diff < TOLERANCE, `pos ${pos}: max |diff| ${diff}`);
      });
      assert.deepEqual(full['present.1.value']?.dims, [1, H, row.length + 1, D]);
      // Default: the dummy slot is part of the past, so the last position is still the last token.
      const out = await session('kv').run(feeds);
      assert.deepEqual(out.logits?.dims, [1, 1, V]);
      const diff = maxAbsDiff(reference[0]![row.length - 1]!, floats(out.logits));
      assert.ok(diff < TOLERANCE, `last position: max |diff| ${diff}`);
      assert.deepEqual(out['present.1.value']?.dims, [1, H, row.length + 1, D]);
    });

    test('kv prefill (left-padded, as the embedded backend batches it): default [batch, 1, vocab] equals --full-logits’ last column', async () => {
      const batch = ROWS.length;
      const ids: number[] = [];
      const mask: number[] = [];
      const positions: number[] = [];
      for (const r of ROWS) {
        const pad = WIDTH - r.length;
        for (let k = 0; k < WIDTH; k++) {
          ids.push(k < pad ? 0 : r[k - pad]!);
          mask.push(k < pad ? 0 : 1);
          positions.push(k < pad ? 0 : k - pad);
        }
      }
      const feeds = {
        input_ids: i64(ids, [batch, WIDTH]),
        attention_mask: i64(mask, [batch, WIDTH]),
        position_ids: i64(positions, [batch, WIDTH]),
        ...emptyPast(batch, 0),
      };
      const full = await session('kv-full').run(feeds);
      const last = await session('kv').run(feeds);
      assert.deepEqual(full.logits?.dims, [batch, WIDTH, V]);
      assert.deepEqual(last.logits?.dims, [batch, 1, V]);
      const fullData = floats(full.logits);
      const lastData = floats(last.logits);
      ROWS.forEach((r, b) => {
        // Every real position of the full logits is right, so the comparison below means something.
        const pad = WIDTH - r.length;
        r.forEach((_, pos) => {
          const at = (b * WIDTH + pad + pos) * V;
          const diff = maxAbsDiff(reference[b]![pos]!, fullData.subarray(at, at + V));
          assert.ok(diff < TOLERANCE, `full row ${b} pos ${pos}: max |diff| ${diff}`);
        });
        const at = (b * WIDTH + WIDTH - 1) * V;
        const diff = maxAbsDiff(
          Array.from(fullData.subarray(at, at + V)),
          lastData.subarray(b * V, (b + 1) * V),
        );
        assert.ok(diff < TOLERANCE, `row ${b}: max |diff| ${diff}`);
      });
      // Beside them, the greedy choice of each row's last real token, as next-token gives it.
      assertGreedyOutputs(last);
      assert.equal(full.next_token, undefined, '--full-logits has no greedy outputs');
      // The presents do not depend on which logits are emitted.
      const presentDiff = maxAbsDiff(floats(full['present.1.key']), floats(last['present.1.key']));
      assert.ok(presentDiff < 1e-6, `presents differ by ${presentDiff}`);
    });

    // The seed signature is built as a standard graph only (--seed-signature --fused is refused).
    const standardOnly: (name: string, fn: () => Promise<void>) => unknown = fused
      ? () => undefined
      : test;
    standardOnly(
      'seed signature: INT32 :0 inputs, logits plus past_key_values [n_layer, 2, batch, n_head, seq, head_dim]',
      async () => {
        const { ids, mask } = padded(ROWS, WIDTH);
        const dims = [ROWS.length, WIDTH];
        const out = await session('seed').run({
          'input_ids:0': new ort.Tensor('int32', Int32Array.from(ids), dims),
          'attention_mask:0': new ort.Tensor('int32', Int32Array.from(mask), dims),
        });
        const logits = floats(out.logits);
        ROWS.forEach((row, b) => {
          const at = (b * WIDTH + row.length - 1) * V;
          const diff = maxAbsDiff(reference[b]![row.length - 1]!, logits.subarray(at, at + V));
          assert.ok(diff < TOLERANCE, `row ${b}: max |diff| ${diff}`);
        });
        assert.deepEqual(out.past_key_values?.dims, [config.nLayer, 2, ROWS.length, H, WIDTH, D]);
        // Its keys and values are exactly the kv variant's presents for the same input.
        const kvOut = await session('kv').run({
          input_ids: i64(ids, dims),
          attention_mask: i64(mask, dims),
          position_ids: i64(
            ROWS.flatMap(() => Array.from({ length: WIDTH }, (_, k) => k)),
            dims,
          ),
          ...emptyPast(ROWS.length, 0),
        });
        const pkv = floats(out.past_key_values);
        const block = ROWS.length * H * WIDTH * D;
        for (let i = 0; i < config.nLayer; i++) {
          ['key', 'value'].forEach((kind, k) => {
            const mine = pkv.subarray((i * 2 + k) * block, (i * 2 + k + 1) * block);
            const theirs = floats(kvOut[`present.${i}.${kind}`]);
            // Padded positions differ by design (positions clamp vs. explicit); compare real ones.
            ROWS.forEach((row, b) => {
              for (let h = 0; h < H; h++) {
                for (let s = 0; s < row.length; s++) {
                  const at = ((b * H + h) * WIDTH + s) * D;
                  assert.ok(
                    maxAbsDiff(theirs.subarray(at, at + D), mine.subarray(at, at + D)) < 1e-6,
                  );
                }
              }
            });
          });
        }
      },
    );
  });
}

test('at GPT-2’s real width (768, 12 heads, MLP 3072) both graphs match the reference', async () => {
  // The tiny config is 32 wide; vectorised kernels (MLAS, the fused operators) take other paths
  // at real sizes, so check one real-width layer too.
  const wide = { ...config, nLayer: 1, nHead: 12, nEmbd: 768, vocabSize: 512, nPositions: 16 };
  const rw = new RandomWeights(5);
  const wts = new Map(weightSpecs(wide).map((s) => [s.name, rw.tensor(s)]));
  const rows = [
    [7, 300, 42],
    [511, 0],
  ];
  const width = 3;
  const { ids, mask } = padded(rows, width);
  const dir2 = await mkdtemp(join(tmpdir(), 'gpt2-wide-'));
  try {
    for (const fused of [false, true]) {
      const file = join(dir2, `${fused}.onnx`);
      await buildOnnxModel(
        { config: wide, weights: { kind: 'random', seed: 5 }, variant: 'logits', fused },
        file,
      );
      const s = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
      const out = await s.run({
        input_ids: i64(ids, [2, width]),
        attention_mask: i64(mask, [2, width]),
      });
      await s.release();
      const data = floats(out.logits);
      rows.forEach((row, b) => {
        const ref = referenceLogits(wide, wts, row);
        row.forEach((_, pos) => {
          const at = (b * width + pos) * wide.vocabSize;
          const diff = maxAbsDiff(ref[pos]!, data.subarray(at, at + wide.vocabSize));
          assert.ok(
            diff < TOLERANCE,
            `${fused ? 'fused' : 'standard'} row ${b} pos ${pos}: ${diff}`,
          );
        });
      });
    }
  } finally {
    await rm(dir2, { recursive: true, force: true });
  }
});

test('int8 weights: logits near the reference on the dequantized weights; kv steps reproduce the int8 full pass', async () => {
  const dir2 = await mkdtemp(join(tmpdir(), 'gpt2-int8-'));
  try {
    const open = async (variant: ModelVariant): Promise<ort.InferenceSession> => {
      const file = join(dir2, `${variant}.onnx`);
      const weightsSrc = { kind: 'random' as const, seed: SEED, std: STD };
      await buildOnnxModel({ config, weights: weightsSrc, variant, quantize: 'int8' }, file);
      return ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
    };
    const full = await open('logits');
    const kv = await open('kv');
    const dequantized = new Map(
      weightSpecs(config).map((s) => {
        const w = weights.get(s.name)!;
        if (s.role !== 'matrix') return [s.name, w];
        const [k, n] = s.shape as [number, number];
        return [s.name, dequantizeInt8(quantizeInt8(w, k, n), k, n)];
      }),
    );
    const row = ROWS[0]!;
    const fullOut = await full.run({
      input_ids: i64(row, [1, row.length]),
      attention_mask: i64(
        row.map(() => 1),
        [1, row.length],
      ),
    });
    const fullLogits = floats(fullOut.logits);
    const ref = referenceLogits(config, dequantized, row);
    // Activations are quantized to int8 too (accuracy_level 4): close, not exact.
    const scale = Math.max(...ref.map((r) => Math.max(...r.map(Math.abs))));
    row.forEach((_, pos) => {
      const diff = maxAbsDiff(ref[pos]!, fullLogits.subarray(pos * V, (pos + 1) * V));
      assert.ok(diff < 0.05 * scale, `pos ${pos}: ${diff} vs max |logit| ${scale}`);
    });
    // kv: prefill 3 tokens from an empty past, then one token at a time.
    let out = await kv.run({
      input_ids: i64(row.slice(0, 3), [1, 3]),
      attention_mask: i64([1, 1, 1], [1, 3]),
      position_ids: i64([0, 1, 2], [1, 3]),
      ...emptyPast(1, 0),
    });
    for (let pos = 3; pos < row.length; pos++) {
      const feeds: Record<string, ort.Tensor> = {
        input_ids: i64([row[pos]!], [1, 1]),
        attention_mask: i64(Array(pos + 1).fill(1), [1, pos + 1]),
        position_ids: i64([pos], [1, 1]),
      };
      for (let i = 0; i < config.nLayer; i++) {
        for (const kind of ['key', 'value'])
          feeds[`past_key_values.${i}.${kind}`] = out[`present.${i}.${kind}`]!;
      }
      out = await kv.run(feeds);
      const diff = maxAbsDiff(fullLogits.subarray(pos * V, (pos + 1) * V), floats(out.logits));
      assert.ok(diff < TOLERANCE, `step at ${pos}: ${diff}`);
    }
    await full.release();
    await kv.release();
  } finally {
    await rm(dir2, { recursive: true, force: true });
  }
});
