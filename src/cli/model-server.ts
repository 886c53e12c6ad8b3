/**
 * `gpt2-gateway model-server --repo DIR [--port 8000] [--host 0.0.0.0] [--model NAME]...`:
 * serve a Triton model repository over KServe v2 REST on the CPU.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_MAX_INPUT_BYTES, ModelServer } from '../model-server/model-server.js';
import { integerFlag, runCommand, UsageError } from './command.js';

const DEFAULT_PORT = 8000;
const DEFAULT_HOST = '0.0.0.0';

const HELP = `Usage: gpt2-gateway model-server --repo DIR [options]

Serve a Triton model repository (<repo>/<name>/1/model.onnx + config.pbtxt) over the KServe v2
REST API as Triton offers it, running the models on the CPU with onnxruntime.

Options:
  --repo DIR                 model repository (required)
  --port N                   HTTP port (default ${DEFAULT_PORT}, as Triton)
  --host ADDR                listen address (default ${DEFAULT_HOST})
  --model NAME               serve only this model (repeatable; default: every model)
  --http-max-input-size N    largest request body in bytes (default ${DEFAULT_MAX_INPUT_BYTES})
  --legacy-status-codes      answer 400 to every error, as Triton 21.08 (Seldon's default) does
  -h, --help                 show this help
`;

export async function run(argv: string[]): Promise<number> {
  return runCommand('model-server', HELP, parse, argv, async (flags) => {
    if (flags.help) return 0;
    const server = await ModelServer.create({
      repository: flags.repo,
      maxInputBytes: flags.maxInputBytes,
      legacyStatusCodes: flags.legacyStatusCodes,
      ...(flags.models ? { models: flags.models } : {}),
    });
    return serve(server, flags.port, flags.host);
  });
}

type Flags =
  | { help: true }
  | {
      help?: false;
      repo: string;
      port: number;
      host: string;
      models: string[] | undefined;
      maxInputBytes: number;
      legacyStatusCodes: boolean;
    };

function parse(argv: string[]): Flags {
  let values: ReturnType<typeof parseFlags>['values'];
  try {
    values = parseFlags(argv).values;
  } catch (err) {
    throw new UsageError(`${(err as Error).message} (see --help)`);
  }
  if (values.help === true) return { help: true };
  if (values.repo === undefined) throw new UsageError('--repo DIR is required (see --help)');
  return {
    repo: values.repo,
    port: integerFlag('--port', values.port ?? String(DEFAULT_PORT), { min: 0, max: 65_535 }),
    host: values.host ?? DEFAULT_HOST,
    models: values.model,
    maxInputBytes: integerFlag(
      '--http-max-input-size',
      values['http-max-input-size'] ?? String(DEFAULT_MAX_INPUT_BYTES),
      { min: 1 },
    ),
    legacyStatusCodes: values['legacy-status-codes'] === true,
  };
}

function parseFlags(args: string[]) {
  return parseArgs({
    args,
    options: {
      repo: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      model: { type: 'string', multiple: true },
      'http-max-input-size': { type: 'string' },
      'legacy-status-codes': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
}

/** Listens until SIGTERM or SIGINT, then closes the server. */
async function serve(server: ModelServer, port: number, host: string): Promise<number> {
  const bound = await server.listen(port, host);
  const names = [...server.models.values()].map(
    (m) =>
      `${m.name} (v${m.version}, max_batch_size ${m.config.max_batch_size}${m.config.sequence_batching ? ', sequence batching' : ''})`,
  );
  process.stdout.write(`model-server: serving ${names.join(', ')} on http://${host}:${bound}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await server.close();
  return 0;
}
