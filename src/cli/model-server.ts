/**
 * `gpt2-gateway model-server --repo DIR [--port 8000] [--host 0.0.0.0] [--model NAME]...`:
 * serve a Triton model repository over KServe v2 REST on the CPU (issue 4).
 */
import { parseArgs } from 'node:util';
import { DEFAULT_MAX_INPUT_BYTES, ModelServer } from '../model-server/model-server.js';
import { oneLine } from './one-line.js';

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
  let values: ReturnType<typeof parse>['values'];
  function parse(args: string[]) {
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
  try {
    values = parse(argv).values;
  } catch (err) {
    process.stderr.write(
      `gpt2-gateway model-server: ${oneLine((err as Error).message)} (see --help)\n`,
    );
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  const fail = (msg: string): number => {
    process.stderr.write(`gpt2-gateway model-server: ${msg}\n`);
    return 2;
  };
  if (values.repo === undefined) return fail('--repo DIR is required (see --help)');
  const port = Number(values.port ?? DEFAULT_PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    return fail(`--port must be an integer 0..65535, not '${values.port}'`);
  const maxInput = Number(values['http-max-input-size'] ?? DEFAULT_MAX_INPUT_BYTES);
  if (!Number.isInteger(maxInput) || maxInput < 1)
    return fail(`--http-max-input-size must be a positive integer`);

  let server: ModelServer;
  try {
    server = await ModelServer.create({
      repository: values.repo,
      maxInputBytes: maxInput,
      legacyStatusCodes: values['legacy-status-codes'] === true,
      ...(values.model ? { models: values.model } : {}),
    });
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
  const bound = await server.listen(port, values.host ?? DEFAULT_HOST);
  const names = [...server.models.values()].map(
    (m) =>
      `${m.name} (v${m.version}, max_batch_size ${m.config.max_batch_size}${m.config.sequence_batching ? ', sequence batching' : ''})`,
  );
  process.stdout.write(
    `model-server: serving ${names.join(', ')} on http://${values.host ?? DEFAULT_HOST}:${bound}\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await server.close();
  return 0;
}
