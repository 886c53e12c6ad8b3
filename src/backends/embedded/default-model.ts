/**
 * With no MODEL_NAME, the embedded backend serves a deterministic random-weight GPT-2 of the real
 * `gpt2` architecture (124M parameters, kv variant), built once and cached in the model
 * repository: timings are realistic, the text is meaningless, and the log and
 * GET /info say so and how to load real weights.
 */
import { access } from 'node:fs/promises';
import type { Logger } from 'pino';
import { type Gpt2Config, NAMED_CONFIGS } from '../../model/configs.js';
import { GRAPH_VERSION } from '../../model/gpt2-graph.js';
import { readModelSummary } from '../../model/metadata.js';
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
 * The metadata a current build of the default model carries. A cached file that differs (an
 * older checkout's graph, e.g. kv logits for every position before graph version 2) is rebuilt,
 * not silently served.
 */
function expectedProperties(fused: boolean): Record<string, string> {
  return {
    'gpt2.variant': 'kv',
    'gpt2.graph': fused ? 'fused' : 'standard',
    'gpt2.graph_version': String(GRAPH_VERSION),
    'gpt2.logits': 'last',
  };
}

/** Why the cached file cannot be served as is, or undefined when it can. */
async function staleness(modelFile: string, fused: boolean): Promise<string | undefined> {
  let properties: Record<string, string>;
  try {
    properties = (await readModelSummary(modelFile, DEFAULT_MODEL_NAME)).properties;
  } catch (err) {
    return (err as Error).message;
  }
  for (const [key, want] of Object.entries(expectedProperties(fused))) {
    const got = properties[key];
    if (got !== want)
      return `${key} is ${got === undefined ? 'missing' : `'${got}'`}, not '${want}'`;
  }
  return undefined;
}

/**
 * Builds <repository>/<name>/1/model.onnx (random gpt2, kv) unless a current build is there
 * (checked on the file's metadata, which skips the weights: milliseconds).
 * `fused` selects onnxruntime's fused operators (the bench compares both graphs); `config`
 * defaults to the real gpt2 architecture (tests pass a tiny one).
 */
export async function ensureDefaultModel(
  repository: string,
  modelFile: string,
  logger: Pick<Logger, 'info'>,
  options: { name?: string; fused?: boolean; config?: Gpt2Config } = {},
): Promise<void> {
  const fused = options.fused ?? false;
  let reason = 'not built yet';
  if (
    await access(modelFile).then(
      () => true,
      () => false,
    )
  ) {
    const stale = await staleness(modelFile, fused);
    if (stale === undefined) return;
    reason = `the cached build is stale: ${stale}`;
  }
  logger.info(
    { modelFile, reason },
    'building the default random-weight GPT-2 once (about 500 MB; cached for later starts)',
  );
  const started = performance.now();
  await writeModelRepository({
    config: options.config ?? NAMED_CONFIGS.gpt2,
    weights: { kind: 'random', seed: DEFAULT_MODEL_SEED },
    variant: 'kv',
    repository,
    name: options.name ?? DEFAULT_MODEL_NAME,
    instanceKind: 'cpu',
    fused,
  });
  logger.info(
    { seconds: Math.round((performance.now() - started) / 100) / 10 },
    'default model built',
  );
}
