/**
 * Block-wise symmetric int8 weights for onnxruntime's com.microsoft MatMulNBits (bits 8): a decode
 * step reads every weight once, so a quarter of the bytes is the CPU lever (README: bench:kv).
 *
 * Layout (MatMulNBits): B is uint8 [N, K / block, block] — row n holds column n of the HF Conv1D
 * weight W [K, N] — with one float scale per (n, block); no zero_points input means the zero point
 * is 128, so w ≈ (q − 128) · scale.
 */
export const QUANT_BLOCK = 32;
const QMAX = 127;

export interface QuantizedMatrix {
  q: Uint8Array;
  scales: Float32Array;
}

/** Quantizes W [K, N] (row-major) for MatMulNBits; K must be a multiple of QUANT_BLOCK. */
export function quantizeInt8(w: Float32Array, k: number, n: number): QuantizedMatrix {
  if (k % QUANT_BLOCK !== 0)
    throw new Error(`int8 weights need n_embd divisible by ${QUANT_BLOCK}`);
  const blocks = k / QUANT_BLOCK;
  const q = new Uint8Array(n * k);
  const scales = new Float32Array(n * blocks);
  for (let col = 0; col < n; col++) {
    for (let b = 0; b < blocks; b++) {
      let max = 0;
      for (let j = 0; j < QUANT_BLOCK; j++)
        max = Math.max(max, Math.abs(w[(b * QUANT_BLOCK + j) * n + col]!));
      const scale = max > 0 ? max / QMAX : 1;
      scales[col * blocks + b] = scale;
      const out = (col * blocks + b) * QUANT_BLOCK;
      for (let j = 0; j < QUANT_BLOCK; j++) {
        const v = Math.round(w[(b * QUANT_BLOCK + j) * n + col]! / scale);
        q[out + j] = Math.max(-QMAX, Math.min(QMAX, v)) + 128;
      }
    }
  }
  return { q, scales };
}

/** The float matrix W [K, N] the quantized one stands for (tests compare against it). */
export function dequantizeInt8(m: QuantizedMatrix, k: number, n: number): Float32Array {
  const blocks = k / QUANT_BLOCK;
  const w = new Float32Array(k * n);
  for (let col = 0; col < n; col++) {
    for (let row = 0; row < k; row++) {
      const b = Math.floor(row / QUANT_BLOCK);
      const qv = m.q[(col * blocks + b) * QUANT_BLOCK + (row % QUANT_BLOCK)]!;
      w[row * n + col] = (qv - 128) * m.scales[col * blocks + b]!;
    }
  }
  return w;
}
