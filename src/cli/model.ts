/**
 * `gpt2-gateway model pull | build | inspect` (issue 2, item 5).
 * Errors are one line on stderr and a non-zero exit; every subcommand has --help.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { understandSignature } from '../contract/signature.js';
import { type BuildReport, buildOnnxModel, VARIANTS, type WeightSource } from '../model/build.js';
import {
  type BuildPlan,
  BuildRuleError,
  DEFAULT_MODEL_NAME,
  DEFAULT_REPOSITORY,
  DEFAULT_SEED,
  DEFAULT_VARIANT,
  planBuild,
} from '../model/build-rules.js';
import { type Gpt2Config, parseHfConfig } from '../model/configs.js';
import { DEFAULT_ENDPOINT, DEFAULT_FILES, DEFAULT_REVISION, pullModel } from '../model/hub.js';
import { readModelSummary, tritonView } from '../model/metadata.js';
import { writeModelRepository } from '../model/model-repository.js';
import { writeTransformersJsLayout } from '../model/transformers-js-layout.js';
import { DEFAULT_TRITON_RELEASE, firstReleaseFor } from '../model/triton-releases.js';
import { oneLine } from './one-line.js';

const DEFAULT_REPO_ID = 'gpt2';
const DEFAULT_WEIGHTS_ROOT = 'weights';

const USAGE = `Usage: gpt2-gateway model <command> [options]

Commands:
  pull      download GPT-2 weights (config.json, model.safetensors) from the Hugging Face hub
  build     build a GPT-2 ONNX model from downloaded or random weights
  inspect   show a model's inputs, outputs, parameter count and Triton metadata

Run 'gpt2-gateway model <command> --help' for a command's options.
`;

const PULL_USAGE = `Usage: gpt2-gateway model pull [REPO] [options]

Downloads a GPT-2 family checkpoint (default REPO: ${DEFAULT_REPO_ID}; e.g. distilgpt2,
openai-community/gpt2-medium) with size and sha256 checks. Interrupted downloads resume.

Options:
  --dir DIR          where to put the files (default: ${DEFAULT_WEIGHTS_ROOT}/<REPO>)
  --revision REV     branch, tag or commit (default: ${DEFAULT_REVISION})
  --file NAME        a file to fetch; repeatable (default: ${DEFAULT_FILES.join(', ')})
  -h, --help         show this help

Environment:
  HF_ENDPOINT        hub URL (default: ${DEFAULT_ENDPOINT})
  HF_TOKEN           access token for gated or private repos
`;

const BUILD_USAGE = `Usage: gpt2-gateway model build (--weights DIR | --random) [options]

Weights (one of):
  --weights DIR          a directory with config.json and model.safetensors (from 'model pull')
  --random               seeded random weights
  --config tiny|gpt2     size for --random (default: gpt2, the real 124M architecture)
  --seed N               seed for --random (default: ${DEFAULT_SEED})

Model:
  --variant V            ${VARIANTS.join(' | ')} (default: ${DEFAULT_VARIANT})
  --seed-signature       logits only: the notebook's interface (input_ids:0, attention_mask:0
                         INT32; outputs past_key_values and logits)
  --fused                use onnxruntime's fused operators (MultiHeadAttention, SkipLayerNorm,
                         FastGelu): same interface, onnxruntime only. On CPU it is no faster
                         than the standard graph, which onnxruntime fuses itself (bench:kv);
                         meant for GPU trials. Default: the standard-operator graph.
  --quantize int8        block-wise int8 weights in the transformer blocks (onnxruntime
                         MatMulNBits): a quarter of the bytes per step on CPU; logits
                         are approximate (int8 activations too). LM head and embeddings stay fp32
  --full-logits          kv only: logits for every input position [batch, seq, vocab]. Default:
                         each row's last position only [batch, 1, vocab], all greedy decoding
                         needs (a 512-token prompt's full logits are 103 MB)

Output (default: a Triton model repository entry):
  --repo DIR             model repository (default: ${DEFAULT_REPOSITORY})
  --name NAME            model name (default: ${DEFAULT_MODEL_NAME})
  --instance gpu|cpu     config.pbtxt instance_group kind (default: gpu)
  --max-batch-size N     config.pbtxt max_batch_size (default: 8; kv: 1; not with
                         --seed-signature, whose interface has no batch dimension)
  --triton RELEASE       the Triton release (YY.MM) the entry must load on (default:
                         ${DEFAULT_TRITON_RELEASE}, the chart's image): options it cannot load are
                         refused, naming the first release that can (--fused: ${firstReleaseFor({ variant: 'logits', fused: true }).release},
                         --quantize int8: ${firstReleaseFor({ variant: 'logits', quantize: 'int8' }).release}, kv: ${firstReleaseFor({ variant: 'kv' }).release})
  --layout L             triton (default) | transformers-js (kv only: writes --out DIR with
                         config.json, tokenizer.json and onnx/model.onnx)
  --out PATH             write only the .onnx file to PATH (or, with --layout transformers-js,
                         the directory); the repository-entry flags above do not apply
  -h, --help             show this help

A flag that does not apply to the options chosen is refused (exit 2), never ignored.
`;

const INSPECT_USAGE = `Usage: gpt2-gateway model inspect PATH [options]

PATH is a model.onnx file or a Triton model directory (<repo>/<name>, using 1/model.onnx).
Prints what Triton's GET /v2/models/<name> would return, the parameter count and how the
gateway would drive the model.

Options:
  --name NAME    model name to report (default: the directory name, or the file's base name)
  --json         print one JSON object instead of text
  -h, --help     show this help
`;

class UsageError extends Error {}

/** Where the command writes; tests pass their own. */
export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
  /** Draw a progress bar here (the CLI: stderr when it is a TTY). */
  progress?: NodeJS.WritableStream;
}

const PROCESS_IO: CommandIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  get progress() {
    return process.stderr.isTTY ? process.stderr : undefined;
  },
};

/** parseArgs with every problem turned into a UsageError (one line, exit 2). */
function parse<T extends ParseArgsConfig>(
  config: T,
  maxPositionals = 0,
): ReturnType<typeof parseArgs<T>> {
  let r: ReturnType<typeof parseArgs<T>>;
  try {
    r = parseArgs(config);
  } catch (err) {
    throw new UsageError(oneLine((err as Error).message) || 'bad arguments');
  }
  const extra = (r.positionals as string[])[maxPositionals];
  if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`);
  return r;
}

const HELP = { help: { type: 'boolean', short: 'h' } } as const;

async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${(err as Error).message})`);
  }
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function describeBuild(r: BuildReport, where: string): string {
  return `wrote ${where}${r.dataFile ? ` (weights in ${basename(r.dataFile)})` : ''}: variant ${r.variant}${r.seedSignature ? ' (seed signature)' : ''}${r.fullLogits ? ' (full logits)' : ''}${r.fused ? ' (fused)' : ''}${r.quantize ? ` (${r.quantize})` : ''}, ${r.parameters.toLocaleString('en-US')} parameters, ${mb(r.bytes)}, weights ${r.weights}, ${r.seconds.toFixed(1)} s\n`;
}

async function pull(argv: string[], env: NodeJS.ProcessEnv, io: CommandIo): Promise<number> {
  const { values, positionals } = parse(
    {
      args: argv,
      allowPositionals: true,
      options: {
        ...HELP,
        dir: { type: 'string' },
        revision: { type: 'string' },
        file: { type: 'string', multiple: true },
      },
    } as const,
    1,
  );
  if (values.help) {
    io.out(PULL_USAGE);
    return 0;
  }
  const repo = positionals[0] ?? DEFAULT_REPO_ID;
  const dir = values.dir ?? join(DEFAULT_WEIGHTS_ROOT, repo);
  const files = await pullModel({
    repo,
    dir,
    revision: values.revision,
    files: values.file,
    endpoint: env.HF_ENDPOINT || undefined,
    token: env.HF_TOKEN || undefined,
    progress: io.progress,
  });
  for (const f of files) {
    io.out(
      `${f.skipped ? 'up to date' : 'downloaded'} ${f.path} (${mb(f.bytes)}, ${f.verified === 'sha256' ? `sha256 ${f.sha256} verified` : 'size verified'})\n`,
    );
  }
  io.out(`next: gpt2-gateway model build --weights ${dir}\n`);
  return 0;
}

async function build(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parse({
    args: argv,
    options: {
      ...HELP,
      weights: { type: 'string' },
      random: { type: 'boolean' },
      config: { type: 'string' },
      seed: { type: 'string' },
      variant: { type: 'string' },
      'seed-signature': { type: 'boolean' },
      fused: { type: 'boolean' },
      quantize: { type: 'string' },
      repo: { type: 'string' },
      name: { type: 'string' },
      instance: { type: 'string' },
      'max-batch-size': { type: 'string' },
      layout: { type: 'string' },
      out: { type: 'string' },
      'full-logits': { type: 'boolean' },
      triton: { type: 'string' },
    },
  } as const);
  if (values.help) {
    io.out(BUILD_USAGE);
    return 0;
  }
  // Every rule about which flags go together lives in planBuild; here only parsing and I/O.
  let plan: BuildPlan;
  try {
    plan = planBuild({
      weights: values.weights,
      random: values.random,
      config: values.config,
      seed: values.seed,
      variant: values.variant,
      seedSignature: values['seed-signature'],
      fused: values.fused,
      quantize: values.quantize,
      fullLogits: values['full-logits'],
      repo: values.repo,
      name: values.name,
      instance: values.instance,
      maxBatchSize: values['max-batch-size'],
      layout: values.layout,
      out: values.out,
      triton: values.triton,
    });
  } catch (err) {
    if (err instanceof BuildRuleError) throw new UsageError(err.message);
    throw err;
  }

  let config: Gpt2Config;
  let weights: WeightSource;
  if (plan.weights.kind === 'random') {
    config = plan.weights.config;
    weights = { kind: 'random', seed: plan.weights.seed };
  } else {
    const dir = plan.weights.dir;
    config = parseHfConfig(await readJsonFile(join(dir, 'config.json')));
    const file = join(dir, 'model.safetensors');
    await stat(file).catch(() => {
      throw new Error(`${file} not found (run 'gpt2-gateway model pull' first)`);
    });
    weights = { kind: 'safetensors', file };
  }
  const opts = { config, weights, ...plan.model };
  const output = plan.output;
  if (output.kind === 'transformers-js') {
    const { modelFile, report } = await writeTransformersJsLayout(opts, output.dir);
    io.out(describeBuild(report, `${modelFile} (+ config.json, tokenizer.json in ${output.dir})`));
    return 0;
  }
  if (output.kind === 'file') {
    const report = await buildOnnxModel(opts, output.file);
    io.out(describeBuild(report, output.file));
    return 0;
  }
  const { modelDir, modelFile, report } = await writeModelRepository({
    ...opts,
    repository: output.repository,
    name: output.name,
    instanceKind: output.instanceKind,
    maxBatchSize: output.maxBatchSize,
  });
  io.out(
    describeBuild(
      report,
      `${modelFile} and ${join(modelDir, 'config.pbtxt')} (checked for Triton ${output.triton})`,
    ),
  );
  return 0;
}

async function inspect(argv: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parse(
    {
      args: argv,
      allowPositionals: true,
      options: { ...HELP, name: { type: 'string' }, json: { type: 'boolean' } },
    } as const,
    1,
  );
  if (values.help) {
    io.out(INSPECT_USAGE);
    return 0;
  }
  const path = positionals[0];
  if (path === undefined) throw new UsageError('give the model file or model directory to inspect');
  let file = path;
  let name = values.name;
  const info = await stat(path).catch(() => {
    throw new Error(`${path} not found`);
  });
  if (info.isDirectory()) {
    // A Triton model directory (1/model.onnx) or a transformers.js one (onnx/model.onnx).
    const candidates = [join(path, '1', 'model.onnx'), join(path, 'onnx', 'model.onnx')];
    const found: string[] = [];
    for (const c of candidates) {
      const st = await stat(c).catch(() => undefined);
      // 1/model.onnx may be a directory (a model with external data, Triton's layout).
      if (st?.isDirectory()) found.push(join(c, 'model.onnx'));
      else if (st !== undefined) found.push(c);
    }
    if (found[0] === undefined) {
      throw new Error(`${path} holds no model (looked for 1/model.onnx and onnx/model.onnx)`);
    }
    file = found[0];
    name ??= basename(resolve(path));
  }
  name ??= basename(file).replace(/\.onnx$/, '');
  const summary = await readModelSummary(file, name);
  // A repository entry is served per its config.pbtxt: implicit-state tensors disappear.
  const configText = info.isDirectory()
    ? await readFile(join(path, 'config.pbtxt'), 'utf8').catch(() => undefined)
    : undefined;
  const served =
    configText === undefined ? summary.metadata : tritonView(summary.metadata, configText);
  const hidesState =
    served.inputs.length !== summary.metadata.inputs.length ||
    served.outputs.length !== summary.metadata.outputs.length;
  let understood: string;
  let signature: unknown;
  try {
    const sig = understandSignature(summary.metadata);
    signature = sig;
    understood = `${sig.variant}${sig.seedPastKeyValues ? ' (seed signature)' : ''}`;
  } catch (err) {
    understood = `not drivable: ${(err as Error).message}`;
  }
  if (values.json) {
    io.out(
      `${JSON.stringify({ metadata: served, fileMetadata: summary.metadata, parameters: summary.parameters, fileBytes: summary.fileBytes, opsets: summary.opsets, producer: summary.producer, properties: summary.properties, signature: signature ?? null, understood })}\n`,
    );
    return 0;
  }
  const tensors = (ts: typeof summary.metadata.inputs) =>
    ts.map((t) => `  ${t.name}  ${t.datatype}  [${t.shape.join(', ')}]`).join('\n');
  io.out(
    [
      `model:       ${file}`,
      `variant:     ${understood}`,
      `parameters:  ${summary.parameters.toLocaleString('en-US')}`,
      `file size:   ${mb(summary.fileBytes)}`,
      `opsets:      ${summary.opsets.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).join(', ')}`,
      `producer:    ${summary.producer || '(unknown)'}`,
      'inputs:',
      tensors(summary.metadata.inputs),
      'outputs:',
      tensors(summary.metadata.outputs),
      `Triton GET /v2/models/${name}${hidesState ? ' (implicit state kept by Triton, per config.pbtxt)' : ''}:`,
      JSON.stringify(served),
      '',
    ].join('\n'),
  );
  return 0;
}

export async function run(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  io: CommandIo = PROCESS_IO,
): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    switch (sub) {
      case 'pull':
        return await pull(rest, env, io);
      case 'build':
        return await build(rest, io);
      case 'inspect':
        return await inspect(rest, io);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        io.out(USAGE);
        return sub === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown model command '${sub}'`);
    }
  } catch (err) {
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    const known = sub === 'pull' || sub === 'build' || sub === 'inspect';
    const hint =
      err instanceof UsageError
        ? ` (see 'gpt2-gateway model ${known ? `${sub} ` : ''}--help')`
        : '';
    io.err(`gpt2-gateway model: ${message}${hint}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}
