/**
 * A plain GPT-2 forward pass in float64, written from the architecture (Radford et al. 2019;
 * Hugging Face GPT2LMHeadModel): the independent oracle the ONNX graph is checked against.
 * One unpadded sequence at a time; returns logits for every position.
 */
import type { Gpt2Config } from '../../src/model/configs.js';

export type Weights = ReadonlyMap<string, Float32Array>;

function get(w: Weights, name: string): Float32Array {
  const t = w.get(name);
  if (t === undefined) throw new Error(`reference: no weight ${name}`);
  return t;
}

function layerNorm(x: Float64Array, g: Float32Array, b: Float32Array, eps: number): Float64Array {
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i]!;
  mean /= n;
  let variance = 0;
  for (let i = 0; i < n; i++) variance += (x[i]! - mean) ** 2;
  variance /= n;
  const inv = 1 / Math.sqrt(variance + eps);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (x[i]! - mean) * inv * g[i]! + b[i]!;
  return out;
}

/** x [in] · W [in, out] + b (HF Conv1D layout). */
function linear(x: Float64Array, w: Float32Array, b: Float32Array, out: number): Float64Array {
  const y = new Float64Array(out);
  for (let j = 0; j < out; j++) y[j] = b[j]!;
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    const row = i * out;
    for (let j = 0; j < out; j++) y[j]! += xi * w[row + j]!;
  }
  return y;
}

function geluNew(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

export function referenceLogits(
  config: Gpt2Config,
  w: Weights,
  tokens: readonly number[],
): Float64Array[] {
  const e = config.nEmbd;
  const nHead = config.nHead;
  const d = e / nHead;
  const wte = get(w, 'wte.weight');
  const wpe = get(w, 'wpe.weight');
  let hs: Float64Array[] = tokens.map((t, pos) => {
    const h = new Float64Array(e);
    for (let k = 0; k < e; k++) h[k] = wte[t * e + k]! + wpe[pos * e + k]!;
    return h;
  });
  for (let l = 0; l < config.nLayer; l++) {
    const p = `h.${l}.`;
    const qkv = hs.map((h) =>
      linear(
        layerNorm(h, get(w, `${p}ln_1.weight`), get(w, `${p}ln_1.bias`), config.layerNormEpsilon),
        get(w, `${p}attn.c_attn.weight`),
        get(w, `${p}attn.c_attn.bias`),
        3 * e,
      ),
    );
    const attended = hs.map((_, i) => {
      const ctx = new Float64Array(e);
      for (let hd = 0; hd < nHead; hd++) {
        const scores: number[] = [];
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let k = 0; k < d; k++) s += qkv[i]![hd * d + k]! * qkv[j]![e + hd * d + k]!;
          scores.push(s / Math.sqrt(d));
        }
        const m = Math.max(...scores);
        const ex = scores.map((s) => Math.exp(s - m));
        const z = ex.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= i; j++) {
          for (let k = 0; k < d; k++)
            ctx[hd * d + k]! += (ex[j]! / z) * qkv[j]![2 * e + hd * d + k]!;
        }
      }
      return linear(ctx, get(w, `${p}attn.c_proj.weight`), get(w, `${p}attn.c_proj.bias`), e);
    });
    hs = hs.map((h, i) => h.map((v, k) => v + attended[i]![k]!));
    hs = hs.map((h) => {
      const ln = layerNorm(
        h,
        get(w, `${p}ln_2.weight`),
        get(w, `${p}ln_2.bias`),
        config.layerNormEpsilon,
      );
      const fc = linear(ln, get(w, `${p}mlp.c_fc.weight`), get(w, `${p}mlp.c_fc.bias`), 4 * e).map(
        geluNew,
      );
      const out = linear(fc, get(w, `${p}mlp.c_proj.weight`), get(w, `${p}mlp.c_proj.bias`), e);
      return h.map((v, k) => v + out[k]!);
    });
  }
  return hs.map((h) => {
    const f = layerNorm(h, get(w, 'ln_f.weight'), get(w, 'ln_f.bias'), config.layerNormEpsilon);
    const logits = new Float64Array(config.vocabSize);
    for (let t = 0; t < config.vocabSize; t++) {
      let s = 0;
      for (let k = 0; k < e; k++) s += f[k]! * wte[t * e + k]!;
      logits[t] = s;
    }
    return logits;
  });
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

export function logSoftmaxAt(x: ArrayLike<number>, index: number): number {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) m = Math.max(m, x[i]!);
  let z = 0;
  for (let i = 0; i < x.length; i++) z += Math.exp(x[i]! - m);
  return x[index]! - m - Math.log(z);
}

/** Largest absolute difference between a reference row and a float32 slice. */
export function maxAbsDiff(ref: ArrayLike<number>, got: ArrayLike<number>): number {
  if (ref.length !== got.length) throw new Error(`length ${got.length}, expected ${ref.length}`);
  let m = 0;
  for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(ref[i]! - got[i]!));
  return m;
}
