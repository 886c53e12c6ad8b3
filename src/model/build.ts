/**
 * Builds a GPT-2 ONNX model file from random or safetensors weights (issue 2).
 * Weights stream from their source into the file; the file appears atomically (temp + rename).
 */

import { open, rename, rm } from 'node:fs/promises';
import { endianness } from 'node:os';
import type { ModelVariant } from '../backends/backend.js';
import { VERSION } from '../version.js';
import type { Gpt2Config } from './configs.js';
import { buildGpt2Graph, CONTRIB_DOMAIN, IR_VERSION, OPSET_VERSION } from './gpt2-graph.js';
import { modelProto } from './onnx-proto.js';
import { writeMessageToFile } from './protobuf.js';
import { RandomWeights } from './random-weights.js';
import { openSafetensorsWeights } from './safetensors.js';
import { parameterCount, type WeightProvider } from './weights.js';

export type WeightSource =
  | {
      kind: 'random';
      seed: number /** default 0.02, Hugging Face's initializer_range */;
      std?: number;
    }
  | { kind: 'safetensors'; file: string };

export interface BuildOptions {
  config: Gpt2Config;
  weights: WeightSource;
  variant: ModelVariant;
  seedSignature?: boolean;
  /** onnxruntime fused operators (com.microsoft); the default standard graph runs anywhere. */
  fused?: boolean;
}

export interface BuildReport {
  file: string;
  variant: ModelVariant;
  seedSignature: boolean;
  fused: boolean;
  /** Parameters stored (tied LM head counted once): 124,439,808 for `gpt2`. */
  parameters: number;
  bytes: number;
  weights: string;
  seconds: number;
}

export const VARIANTS: readonly ModelVariant[] = ['logits', 'last', 'next-token', 'kv'];

export function isVariant(v: string): v is ModelVariant {
  return (VARIANTS as readonly string[]).includes(v);
}

export async function openWeights(
  config: Gpt2Config,
  source: WeightSource,
): Promise<WeightProvider> {
  if (source.kind === 'random') return new RandomWeights(source.seed, source.std);
  return openSafetensorsWeights(source.file, config);
}

export async function buildOnnxModel(opts: BuildOptions, outFile: string): Promise<BuildReport> {
  if (endianness() !== 'LE') throw new Error('building ONNX files needs a little-endian host');
  const started = performance.now();
  const weights = await openWeights(opts.config, opts.weights);
  const tmp = `${outFile}.tmp-${process.pid}`;
  try {
    const graph = buildGpt2Graph({
      config: opts.config,
      variant: opts.variant,
      seedSignature: opts.seedSignature ?? false,
      fused: opts.fused ?? false,
      weightProducer: (spec) => (emit) => weights.stream(spec, emit),
    });
    const model = modelProto({
      irVersion: IR_VERSION,
      opsets: [
        { domain: '', version: OPSET_VERSION },
        ...(opts.fused ? [{ domain: CONTRIB_DOMAIN, version: 1 }] : []),
      ],
      producerName: 'gpt2-gateway',
      producerVersion: VERSION,
      graph,
      metadata: {
        'gpt2.variant': opts.variant,
        'gpt2.graph': opts.fused ? 'fused' : 'standard',
        'gpt2.weights': weights.description,
        'gpt2.n_layer': String(opts.config.nLayer),
        'gpt2.n_head': String(opts.config.nHead),
        'gpt2.n_embd': String(opts.config.nEmbd),
        'gpt2.n_positions': String(opts.config.nPositions),
        'gpt2.vocab_size': String(opts.config.vocabSize),
      },
    });
    const fh = await open(tmp, 'w');
    let bytes: number;
    try {
      bytes = await writeMessageToFile(model, fh);
    } finally {
      await fh.close();
    }
    await rename(tmp, outFile);
    return {
      file: outFile,
      variant: opts.variant,
      seedSignature: opts.seedSignature ?? false,
      fused: opts.fused ?? false,
      parameters: parameterCount(opts.config),
      bytes,
      weights: weights.description,
      seconds: (performance.now() - started) / 1000,
    };
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  } finally {
    await weights.close();
  }
}
