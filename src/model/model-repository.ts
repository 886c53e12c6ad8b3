/**
 * Writes a Triton model repository entry: <repo>/<name>/1/model.onnx and <repo>/<name>/config.pbtxt
 * (docs/triton-notes.md, 'config.pbtxt and auto-complete', 'Implicit state (sequence batcher)').
 */
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ModelVariant } from '../contract/model.js';
import { type BuildOptions, type BuildReport, buildOnnxModel } from './build.js';
import type { Gpt2Config } from './configs.js';
import { GRAPH_VERSION } from './gpt2-graph.js';

/** Requests a batching variant may combine into one call by default. */
export const DEFAULT_MAX_BATCH_SIZE = 8;
/** kv: one sequence per slot. Batching sequences whose states differ in length is unverified on
 * ORT; scale kv with instances instead. */
export const DEFAULT_KV_MAX_BATCH_SIZE = 1;
/** kv: reap an abandoned sequence after 60 s; a greedy step takes milliseconds even under
 * queueing, and the gateway always ends its sequences (Triton's default, 1 s, is too low). */
export const KV_IDLE_MICROSECONDS = 60_000_000;
/** Dynamic batcher: wait up to 500 µs to fill a batch; bounded queue rejects beyond 128. */
const QUEUE_DELAY_MICROSECONDS = 500;
const MAX_QUEUE_SIZE = 128;
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export interface RepositoryOptions extends BuildOptions {
  repository: string;
  name: string;
  instanceKind?: 'gpu' | 'cpu';
  maxBatchSize?: number;
}

export interface ConfigOptions {
  name: string;
  config: Gpt2Config;
  variant: ModelVariant;
  seedSignature: boolean;
  /** kv only: logits for every position; otherwise each row's last, a fixed dim of 1. */
  fullLogits?: boolean;
  fused?: boolean;
  quantize?: 'int8';
  instanceKind: 'gpu' | 'cpu';
  maxBatchSize: number;
}

function dims(d: readonly number[]): string {
  return `[ ${d.join(', ')} ]`;
}

function tensor(name: string, type: string, d: readonly number[]): string {
  return `  {\n    name: "${name}"\n    data_type: ${type}\n    dims: ${dims(d)}\n  }`;
}

/**
 * How the graph was built, as config.pbtxt `parameters` (the same gpt2.* keys as the ONNX
 * metadata, build.ts): Triton serves them on GET /v2/models/{m}/config even when the model failed
 * to load, so the gateway can say why (src/model/triton-releases.ts modelFactsFromProperties).
 * The onnxruntime backend reads only the parameter keys it knows.
 */
function buildParameters(o: ConfigOptions): string {
  const entries: [string, string][] = [
    ['gpt2.variant', o.variant],
    ['gpt2.graph', o.fused === true ? 'fused' : 'standard'],
    ['gpt2.weights_dtype', o.quantize ?? 'float32'],
    ['gpt2.graph_version', String(GRAPH_VERSION)],
  ];
  return entries
    .map(([k, v]) => `parameters {\n  key: "${k}"\n  value: { string_value: "${v}" }\n}`)
    .join('\n');
}

/** The config.pbtxt text for a variant. */
export function configPbtxt(o: ConfigOptions): string {
  const { config, variant } = o;
  const v = config.vocabSize;
  const headDim = config.nEmbd / config.nHead;
  const lines: string[] = [`name: "${o.name}"`, 'platform: "onnxruntime_onnx"'];
  const instance = `instance_group [\n  {\n    kind: ${o.instanceKind === 'gpu' ? 'KIND_GPU' : 'KIND_CPU'}\n    count: 1\n  }\n]`;

  if (o.seedSignature) {
    // The notebook's interface: past_key_values leads with n_layer, so no batch dimension.
    lines.push(
      'max_batch_size: 0',
      `input [\n${[tensor('input_ids:0', 'TYPE_INT32', [-1, -1]), tensor('attention_mask:0', 'TYPE_INT32', [-1, -1])].join(',\n')}\n]`,
      `output [\n${[
        tensor('past_key_values', 'TYPE_FP32', [config.nLayer, 2, -1, config.nHead, -1, headDim]),
        tensor('logits', 'TYPE_FP32', [-1, -1, v]),
      ].join(',\n')}\n]`,
      instance,
      buildParameters(o),
    );
    return `${lines.join('\n')}\n`;
  }

  const mbs = o.maxBatchSize;
  if (!Number.isInteger(mbs) || mbs < 1)
    throw new Error(`max batch size must be >= 1 (got ${mbs})`);
  lines.push(`max_batch_size: ${mbs}`);
  const inputs = [
    tensor('input_ids', 'TYPE_INT64', [-1]),
    tensor('attention_mask', 'TYPE_INT64', [-1]),
  ];
  if (variant === 'kv') inputs.push(tensor('position_ids', 'TYPE_INT64', [-1]));
  lines.push(`input [\n${inputs.join(',\n')}\n]`);
  // Output dims must be exactly what onnxruntime infers (Triton compares them exactly): the kv
  // graph's last-position logits are [batch, 1, vocab] (gpt2-graph.ts).
  const greedy = [tensor('next_token', 'TYPE_INT64', [1]), tensor('logprob', 'TYPE_FP32', [1])];
  const outputs =
    variant === 'kv' && o.fullLogits !== true
      ? [tensor('logits', 'TYPE_FP32', [1, v]), ...greedy]
      : variant === 'logits' || variant === 'kv'
        ? [tensor('logits', 'TYPE_FP32', [-1, v])]
        : variant === 'last'
          ? [tensor('last_logits', 'TYPE_FP32', [v])]
          : greedy;
  lines.push(`output [\n${outputs.join(',\n')}\n]`);

  if (variant === 'kv') {
    // Implicit state (Triton ≥ 21.11; initial_state ≥ 22.01): present.* of step n feeds
    // past_key_values.* of step n+1. Each state starts as ONE zero position (a zero-length
    // initial state is unverified on ORT); clients mask it with attention_mask[0] = 0 — see
    // signature.ts. Names pair up in the same sorted order on both sides
    // (triton-inference-server/server issue #8586).
    const states: string[] = [];
    for (let i = 0; i < config.nLayer; i++) {
      for (const kind of ['key', 'value']) {
        states.push(
          [
            '    {',
            `      input_name: "past_key_values.${i}.${kind}"`,
            `      output_name: "present.${i}.${kind}"`,
            '      data_type: TYPE_FP32',
            `      dims: ${dims([config.nHead, -1, headDim])}`,
            '      initial_state: {',
            '        data_type: TYPE_FP32',
            `        dims: ${dims([config.nHead, 1, headDim])}`,
            '        zero_data: true',
            `        name: "empty_past_${i}_${kind}"`,
            '      }',
            '    }',
          ].join('\n'),
        );
      }
    }
    lines.push(
      [
        'sequence_batching {',
        `  max_sequence_idle_microseconds: ${KV_IDLE_MICROSECONDS}`,
        '  direct { }',
        `  state [\n${states.join(',\n')}\n  ]`,
        '}',
      ].join('\n'),
    );
  } else {
    lines.push(
      [
        'dynamic_batching {',
        `  max_queue_delay_microseconds: ${QUEUE_DELAY_MICROSECONDS}`,
        '  default_queue_policy {',
        `    max_queue_size: ${MAX_QUEUE_SIZE}`,
        '  }',
        '}',
      ].join('\n'),
    );
  }
  lines.push(instance, buildParameters(o));
  return `${lines.join('\n')}\n`;
}

export async function writeModelRepository(
  opts: RepositoryOptions,
): Promise<{ modelDir: string; modelFile: string; report: BuildReport }> {
  if (!MODEL_NAME.test(opts.name)) {
    throw new Error(`model name "${opts.name}" must be letters, digits, '.', '_' or '-'`);
  }
  const seedSignature = opts.seedSignature ?? false;
  const pbtxt = configPbtxt({
    name: opts.name,
    config: opts.config,
    variant: opts.variant,
    seedSignature,
    fullLogits: opts.fullLogits ?? false,
    fused: opts.fused ?? false,
    quantize: opts.quantize,
    instanceKind: opts.instanceKind ?? 'gpu',
    maxBatchSize:
      opts.maxBatchSize ??
      (opts.variant === 'kv' ? DEFAULT_KV_MAX_BATCH_SIZE : DEFAULT_MAX_BATCH_SIZE),
  });
  const modelDir = join(opts.repository, opts.name);
  const versionDir = join(modelDir, '1');
  await mkdir(versionDir, { recursive: true });
  const modelFile = join(versionDir, 'model.onnx');
  // An earlier build with external data left a directory here that a file cannot replace.
  if ((await stat(modelFile).catch(() => undefined))?.isDirectory()) {
    await rm(modelFile, { recursive: true });
  }
  const report = await buildOnnxModel(
    {
      config: opts.config,
      weights: opts.weights,
      variant: opts.variant,
      seedSignature,
      fused: opts.fused,
      quantize: opts.quantize,
      fullLogits: opts.fullLogits,
      externalData: opts.externalData,
    },
    modelFile,
  );
  let served = modelFile;
  if (report.dataFile !== undefined) {
    // Triton's layout for external data: a directory 1/model.onnx/ holding the model and its
    // data file (Triton's model_repository.md).
    const staged = join(versionDir, 'model.staged');
    await rm(staged, { recursive: true, force: true });
    await mkdir(staged);
    await rename(modelFile, join(staged, 'model.onnx'));
    await rename(report.dataFile, join(staged, basename(report.dataFile)));
    await rename(staged, modelFile);
    served = join(modelFile, 'model.onnx');
  }
  await writeFile(join(modelDir, 'config.pbtxt'), pbtxt);
  return { modelDir, modelFile: served, report };
}
