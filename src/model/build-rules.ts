/**
 * The rules of `model build`'s flags, in one place (pure): which combine, which need which, and
 * which Triton release the result must load on. A flag that does not apply to the chosen options
 * is an error that says why — never dropped silently (a `--max-batch-size 4` with
 * `--seed-signature` used to write `max_batch_size: 0` without a word).
 */
import { isVariant, VARIANTS } from './build.js';
import { type Gpt2Config, isNamedConfig, NAMED_CONFIGS } from './configs.js';
import {
  DEFAULT_TRITON_RELEASE,
  incompatibility,
  parseRelease,
  releaseInfo,
  TRITON_RELEASES,
} from './triton-releases.js';

export const DEFAULT_VARIANT = 'next-token';
export const DEFAULT_SEED = 0;
export const DEFAULT_RANDOM_CONFIG = 'gpt2';
export const DEFAULT_REPOSITORY = 'models';
export const DEFAULT_MODEL_NAME = 'gpt2';

type Variant = (typeof VARIANTS)[number];

/** A flag the user broke; the CLI prints it as a usage error (exit 2). */
export class BuildRuleError extends Error {
  override readonly name = 'BuildRuleError';
}

/** The flags as given: undefined = not given. Strings are unparsed. */
export interface BuildFlags {
  weights?: string;
  random?: boolean;
  config?: string;
  seed?: string;
  variant?: string;
  seedSignature?: boolean;
  fused?: boolean;
  quantize?: string;
  fullLogits?: boolean;
  repo?: string;
  name?: string;
  instance?: string;
  maxBatchSize?: string;
  layout?: string;
  out?: string;
  triton?: string;
}

export interface ModelChoice {
  variant: Variant;
  seedSignature: boolean;
  fused: boolean;
  quantize: 'int8' | undefined;
  fullLogits: boolean;
}

export type WeightsChoice =
  | { kind: 'random'; config: Gpt2Config; seed: number }
  | { kind: 'dir'; dir: string };

export type OutputChoice =
  | {
      kind: 'repository';
      repository: string;
      name: string;
      instanceKind: 'gpu' | 'cpu';
      /** undefined: the variant's default (model-repository.ts). */
      maxBatchSize: number | undefined;
      /** The Triton release the entry was checked against. */
      triton: string;
    }
  | { kind: 'file'; file: string }
  | { kind: 'transformers-js'; dir: string };

export interface BuildPlan {
  weights: WeightsChoice;
  model: ModelChoice;
  output: OutputChoice;
}

function fail(message: string): never {
  throw new BuildRuleError(message);
}

function int(value: string, flag: string, min: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < min) {
    fail(`${flag} must be an integer >= ${min} (got '${value}')`);
  }
  return n;
}

function weightsOf(f: BuildFlags): WeightsChoice {
  if ((f.weights === undefined) === (f.random !== true)) {
    fail('give exactly one of --weights DIR or --random');
  }
  if (f.weights !== undefined) {
    if (f.config !== undefined || f.seed !== undefined) {
      fail('--config and --seed go with --random; --weights reads DIR/config.json');
    }
    return { kind: 'dir', dir: f.weights };
  }
  const name = f.config ?? DEFAULT_RANDOM_CONFIG;
  if (!isNamedConfig(name)) {
    fail(`--config must be one of ${Object.keys(NAMED_CONFIGS).join(', ')} (got '${name}')`);
  }
  const seed = f.seed === undefined ? DEFAULT_SEED : int(f.seed, '--seed', 0);
  return { kind: 'random', config: NAMED_CONFIGS[name], seed };
}

function modelOf(f: BuildFlags): ModelChoice {
  const variant = f.variant ?? DEFAULT_VARIANT;
  if (!isVariant(variant)) {
    fail(`--variant must be one of ${VARIANTS.join(', ')} (got '${variant}')`);
  }
  const seedSignature = f.seedSignature === true;
  const fused = f.fused === true;
  if (f.quantize !== undefined && f.quantize !== 'int8') {
    fail(`--quantize must be int8 (got '${f.quantize}')`);
  }
  const quantize = f.quantize === 'int8' ? ('int8' as const) : undefined;
  const fullLogits = f.fullLogits === true;
  if (seedSignature) {
    if (variant !== 'logits') fail('--seed-signature needs --variant logits');
    if (fused) fail('--seed-signature and --fused do not combine');
    if (quantize) fail('--seed-signature and --quantize do not combine');
  }
  if (fullLogits && variant !== 'kv') {
    fail('--full-logits needs --variant kv (the logits variant always has them)');
  }
  return { variant, seedSignature, fused, quantize, fullLogits };
}

/** Flags that shape only a Triton repository entry (config.pbtxt and the release check). */
const ENTRY_FLAGS = [
  ['repo', '--repo'],
  ['name', '--name'],
  ['instance', '--instance'],
  ['maxBatchSize', '--max-batch-size'],
] as const;

function outputOf(f: BuildFlags, model: ModelChoice): OutputChoice {
  const layout = f.layout ?? 'triton';
  if (layout !== 'triton' && layout !== 'transformers-js') {
    fail(`--layout must be triton or transformers-js (got '${layout}')`);
  }
  if (layout === 'transformers-js') {
    if (f.out === undefined) fail('--layout transformers-js needs --out DIR');
    if (model.variant !== 'kv') {
      fail('--layout transformers-js needs --variant kv (transformers.js drives past/present)');
    }
  }
  if (f.out !== undefined) {
    for (const [key, flag] of ENTRY_FLAGS) {
      if (f[key] !== undefined) {
        fail(`${flag} shapes a model repository entry (config.pbtxt); it does not go with --out`);
      }
    }
    if (f.triton !== undefined) {
      fail(
        '--triton checks a model repository entry against a Triton release; it does not go with --out',
      );
    }
    return layout === 'transformers-js'
      ? { kind: 'transformers-js', dir: f.out }
      : { kind: 'file', file: f.out };
  }

  const instance = f.instance ?? 'gpu';
  if (instance !== 'gpu' && instance !== 'cpu') {
    fail(`--instance must be gpu or cpu (got '${instance}')`);
  }
  let maxBatchSize: number | undefined;
  if (f.maxBatchSize !== undefined) {
    maxBatchSize = int(f.maxBatchSize, '--max-batch-size', 1);
    if (model.seedSignature) {
      fail(
        "--max-batch-size does not go with --seed-signature: the notebook's interface has no batch dimension (max_batch_size is 0)",
      );
    }
  }
  return {
    kind: 'repository',
    repository: f.repo ?? DEFAULT_REPOSITORY,
    name: f.name ?? DEFAULT_MODEL_NAME,
    instanceKind: instance,
    maxBatchSize,
    triton: tritonOf(f, model),
  };
}

/** The target release; refuses a model that release cannot load, naming the first that can. */
function tritonOf(f: BuildFlags, model: ModelChoice): string {
  let release: string;
  try {
    release = parseRelease(f.triton ?? DEFAULT_TRITON_RELEASE);
  } catch (err) {
    fail(`--triton: ${(err as Error).message}`);
  }
  if (releaseInfo(release) === undefined) {
    fail(
      `--triton ${release} is older than any release this builder knows (${TRITON_RELEASES[0]!.release} on)`,
    );
  }
  const why = incompatibility(release, model);
  if (why !== undefined) {
    fail(
      f.triton === undefined
        ? `${why} (--triton defaults to ${DEFAULT_TRITON_RELEASE}, the chart's image; pass --triton <release> for the one you run, or --out to write only the .onnx file)`
        : why,
    );
  }
  return release;
}

/** Checks every flag and returns what to build, or throws the first BuildRuleError. */
export function planBuild(flags: BuildFlags): BuildPlan {
  const weights = weightsOf(flags);
  const model = modelOf(flags);
  const output = outputOf(flags, model);
  return { weights, model, output };
}
