/** The embedded backend for a config: MODEL_REPOSITORY/MODEL_NAME, or the default random model. */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../../config.js';
import type { CreatedBackend } from '../created-backend.js';
import { DEFAULT_MODEL_NAME, ensureDefaultModel, RANDOM_WEIGHTS_NOTICE } from './default-model.js';
import { WorkerBackend } from './worker-backend.js';

/** Triton's rule: serve the highest numeric version directory that holds model.onnx. */
async function latestVersionFile(modelDir: string): Promise<string> {
  let entries: string[];
  try {
    entries = await readdir(modelDir);
  } catch {
    throw new Error(
      `no model at ${modelDir}: build one with 'gpt2-gateway model build' or unset MODEL_NAME`,
    );
  }
  const versions = entries.filter((e) => /^\d+$/.test(e)).sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const file = join(modelDir, version, 'model.onnx');
    const inside = await readdir(join(modelDir, version)).catch((): string[] => []);
    if (inside.includes('model.onnx')) return file;
  }
  throw new Error(`${modelDir} has no <version>/model.onnx`);
}

export async function createEmbeddedBackend(
  config: Config,
  logger: Logger,
): Promise<CreatedBackend> {
  const repository = config.modelRepository;
  const maxBatchSize = config.maxBatchSize;
  // Inference runs in a worker thread: onnxruntime-node's session.run blocks its caller.
  const common = { maxBatchSize, stepTimeoutMs: config.embeddedStepTimeoutMs, logger };
  if (config.modelName !== undefined) {
    const modelDir = join(repository, config.modelName);
    const backend = new WorkerBackend({
      modelFile: () => latestVersionFile(modelDir),
      modelName: config.modelName,
      ...common,
    });
    return { backend, model: { randomWeights: false } };
  }
  const modelFile = join(repository, DEFAULT_MODEL_NAME, '1', 'model.onnx');
  const backend = new WorkerBackend({
    modelFile: async () => {
      await ensureDefaultModel(repository, modelFile, logger);
      return modelFile;
    },
    modelName: DEFAULT_MODEL_NAME,
    ...common,
  });
  return { backend, model: { randomWeights: true, notice: RANDOM_WEIGHTS_NOTICE } };
}
