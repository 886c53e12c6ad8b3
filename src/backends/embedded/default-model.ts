/**
 * With no MODEL_NAME, the embedded backend serves a deterministic random-weight GPT-2 of the real
 * `gpt2` architecture (124M parameters, kv variant), built once and cached in the model
 * repository (issue 3, point 2): timings are realistic, the text is meaningless, and the log and
 * GET /info say so and how to load real weights.
 */
import { access } from 'node:fs/promises';
import type { Logger } from 'pino';
import { NAMED_CONFIGS } from '../../model/configs.js';
import { writeModelRepository } from '../../model/model-repository.js';

export const DEFAULT_MODEL_NAME = 'gpt2-random-kv';
/** Fixed, so every machine builds the same weights and the same request gives the same tokens. */
export const DEFAULT_MODEL_SEED = 42;

export const RANDOM_WEIGHTS_NOTICE =
  `No MODEL_NAME set: serving '${DEFAULT_MODEL_NAME}', a GPT-2 (124M, real architecture) with RANDOM ` +
  'weights. Its timings are realistic but its text is meaningless. For real text: ' +
  '`node dist/src/cli.js model pull gpt2`, then `node dist/src/cli.js model build --weights ' +
  'weights/gpt2 --variant kv --instance cpu --name gpt2-kv`, then start with MODEL_NAME=gpt2-kv; ' +
  'or set BACKEND=triton to use a Triton server.';

/**
 * Builds <repository>/<name>/1/model.onnx (random gpt2, kv) unless it is already there.
 * `fused` selects onnxruntime's fused operators (the bench compares both graphs).
 */
export async function ensureDefaultModel(
  repository: string,
  modelFile: string,
  logger: Pick<Logger, 'info'>,
  options: { name?: string; fused?: boolean } = {},
): Promise<void> {
  try {
    await access(modelFile);
    return;
  } catch {
    // Not built yet: build it below.
  }
  logger.info(
    { modelFile },
    'building the default random-weight GPT-2 once (about 500 MB; cached for later starts)',
  );
  const started = performance.now();
  await writeModelRepository({
    config: NAMED_CONFIGS.gpt2,
    weights: { kind: 'random', seed: DEFAULT_MODEL_SEED },
    variant: 'kv',
    repository,
    name: options.name ?? DEFAULT_MODEL_NAME,
    instanceKind: 'cpu',
    fused: options.fused ?? false,
  });
  logger.info(
    { seconds: Math.round((performance.now() - started) / 100) / 10 },
    'default model built',
  );
}
