/**
 * Builds a GPT-2 ONNX model file from random or safetensors weights.
 * Weights stream from their source into the file; the file appears atomically (temp + rename).
 */

import { mkdir, open, rename, rm } from 'node:fs/promises';
import { endianness } from 'node:os';
import { basename, dirname } from 'node:path';
import { MODEL_VARIANTS, type ModelVariant } from '../contract/model.js';
import { VERSION } from '../version.js';
import type { Gpt2Config } from './configs.js';
import {
  buildGpt2Graph,
  CONTRIB_DOMAIN,
  type ExternalData,
  GRAPH_VERSION,
  IR_VERSION,
  OPSET_VERSION,
} from './gpt2-graph.js';
import { modelProto } from './onnx-proto.js';
import { ProtoMessage, writeMessageToFile } from './protobuf.js';
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
  /** Block-wise int8 weights in the transformer blocks (onnxruntime MatMulNBits); opt-in. */
  quantize?: 'int8';
  /** kv only: logits for every new position, not just each row's last (opt-in; see gpt2-graph). */
  fullLogits?: boolean;
  /** Weights in `<file>_data` (ONNX external data). Automatic above protobuf's 2 GB limit. */
  externalData?: boolean;
}

export interface BuildReport {
  file: string;
  variant: ModelVariant;
  seedSignature: boolean;
  fused: boolean;
  quantize: 'int8' | undefined;
  /** kv: logits for every position (true) or each row's last (false). */
  fullLogits: boolean;
  /** The external data file (`<file>_data`, as Optimum and transformers.js name it), if any. */
  dataFile: string | undefined;
  /** Parameters stored (tied LM head counted once): 124,439,808 for `gpt2`. */
  parameters: number;
  bytes: number;
  weights: string;
  seconds: number;
}

/** Protobuf messages (and so single-file ONNX models) are limited to 2 GiB; gpt2-large and
 * gpt2-xl go over it and get their weights in an external data file. */
const MAX_PROTOBUF_BYTES = 2 ** 31 - 1;
const EXTERNAL_DATA_SUFFIX = '_data';

export const VARIANTS: readonly ModelVariant[] = MODEL_VARIANTS;

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
  const dataFile = `${outFile}${EXTERNAL_DATA_SUFFIX}`;
  const tmp = `${outFile}.tmp-${process.pid}`;
  const dataTmp = `${dataFile}.tmp-${process.pid}`;
  try {
    const modelFor = (externalData: ExternalData | undefined) =>
      modelProto({
        irVersion: IR_VERSION,
        opsets: [
          { domain: '', version: OPSET_VERSION },
          ...(opts.fused || opts.quantize ? [{ domain: CONTRIB_DOMAIN, version: 1 }] : []),
        ],
        producerName: 'gpt2-gateway',
        producerVersion: VERSION,
        graph: buildGpt2Graph({
          config: opts.config,
          variant: opts.variant,
          seedSignature: opts.seedSignature ?? false,
          fused: opts.fused ?? false,
          quantize: opts.quantize,
          fullLogits: opts.fullLogits ?? false,
          externalData,
          weightProducer: (spec) => (emit) => weights.stream(spec, emit),
        }),
        metadata: {
          'gpt2.variant': opts.variant,
          'gpt2.graph': opts.fused ? 'fused' : 'standard',
          'gpt2.graph_version': String(GRAPH_VERSION),
          ...(opts.variant === 'kv' ? { 'gpt2.logits': opts.fullLogits ? 'all' : 'last' } : {}),
          'gpt2.weights_dtype': opts.quantize ?? 'float32',
          'gpt2.weights': weights.description,
          'gpt2.n_layer': String(opts.config.nLayer),
          'gpt2.n_head': String(opts.config.nHead),
          'gpt2.n_embd': String(opts.config.nEmbd),
          'gpt2.n_positions': String(opts.config.nPositions),
          'gpt2.vocab_size': String(opts.config.vocabSize),
        },
      });
    // Building the message touches no weights, so trying the single-file form first is free.
    let model = modelFor(undefined);
    let external: ExternalData | undefined;
    if (opts.externalData === true || model.size() > MAX_PROTOBUF_BYTES) {
      external = { location: basename(dataFile), chunks: [], bytes: 0 };
      model = modelFor(external);
    }
    await mkdir(dirname(outFile), { recursive: true });
    let bytes = 0;
    if (external !== undefined) {
      const dh = await open(dataTmp, 'w');
      try {
        const data = new ProtoMessage();
        // Raw bytes in order: reuse the streaming writer on a message of bare lazy parts.
        for (const c of external.chunks) data.rawLazy(c.length, c.produce);
        bytes += await writeMessageToFile(data, dh);
      } finally {
        await dh.close();
      }
    }
    const fh = await open(tmp, 'w');
    try {
      bytes += await writeMessageToFile(model, fh);
    } finally {
      await fh.close();
    }
    if (external !== undefined) await rename(dataTmp, dataFile);
    else await rm(dataFile, { force: true }); // a stale one from an earlier external build
    await rename(tmp, outFile);
    return {
      file: outFile,
      dataFile: external === undefined ? undefined : dataFile,
      variant: opts.variant,
      seedSignature: opts.seedSignature ?? false,
      fused: opts.fused ?? false,
      quantize: opts.quantize,
      fullLogits: opts.fullLogits ?? false,
      parameters: parameterCount(opts.config),
      bytes,
      weights: weights.description,
      seconds: (performance.now() - started) / 1000,
    };
  } catch (err) {
    await rm(tmp, { force: true });
    await rm(dataTmp, { force: true });
    throw err;
  } finally {
    await weights.close();
  }
}
