/**
 * The GPT-2 weight tensors, by their Hugging Face names (without the `transformer.` prefix), and
 * the interface every weight source implements.
 */
import type { Gpt2Config } from './configs.js';

export interface WeightSpec {
  /** Hugging Face name without the `transformer.` prefix, e.g. `h.0.attn.c_attn.weight`. */
  readonly name: string;
  /** Shape as Hugging Face stores it (Conv1D weights are [in, out]). */
  readonly shape: readonly number[];
  readonly role: 'matrix' | 'bias' | 'ln-weight' | 'ln-bias' | 'embedding';
}

/** Every GPT-2 parameter in the order a checkpoint lists them; the LM head is tied to `wte`. */
export function weightSpecs(config: Gpt2Config): WeightSpec[] {
  const e = config.nEmbd;
  const specs: WeightSpec[] = [
    { name: 'wte.weight', shape: [config.vocabSize, e], role: 'embedding' },
    { name: 'wpe.weight', shape: [config.nPositions, e], role: 'embedding' },
  ];
  for (let i = 0; i < config.nLayer; i++) {
    const p = `h.${i}.`;
    specs.push(
      { name: `${p}ln_1.weight`, shape: [e], role: 'ln-weight' },
      { name: `${p}ln_1.bias`, shape: [e], role: 'ln-bias' },
      { name: `${p}attn.c_attn.weight`, shape: [e, 3 * e], role: 'matrix' },
      { name: `${p}attn.c_attn.bias`, shape: [3 * e], role: 'bias' },
      { name: `${p}attn.c_proj.weight`, shape: [e, e], role: 'matrix' },
      { name: `${p}attn.c_proj.bias`, shape: [e], role: 'bias' },
      { name: `${p}ln_2.weight`, shape: [e], role: 'ln-weight' },
      { name: `${p}ln_2.bias`, shape: [e], role: 'ln-bias' },
      { name: `${p}mlp.c_fc.weight`, shape: [e, 4 * e], role: 'matrix' },
      { name: `${p}mlp.c_fc.bias`, shape: [4 * e], role: 'bias' },
      { name: `${p}mlp.c_proj.weight`, shape: [4 * e, e], role: 'matrix' },
      { name: `${p}mlp.c_proj.bias`, shape: [e], role: 'bias' },
    );
  }
  specs.push(
    { name: 'ln_f.weight', shape: [e], role: 'ln-weight' },
    { name: 'ln_f.bias', shape: [e], role: 'ln-bias' },
  );
  return specs;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Number of parameters (the tied LM head counted once): 124,439,808 for `gpt2`. */
export function parameterCount(config: Gpt2Config): number {
  return weightSpecs(config).reduce((n, s) => n + elementCount(s.shape), 0);
}

/**
 * A source of float32 weights. `stream` emits a tensor's little-endian float32 bytes in chunks
 * so that a build never holds more than a chunk of a large tensor at once.
 */
export interface WeightProvider {
  readonly description: string;
  stream(spec: WeightSpec, emit: (chunk: Uint8Array) => Promise<void>): Promise<void>;
  close(): Promise<void>;
}
