#!/usr/bin/env node
/**
 * gpt2-gateway command line. Each command lives in src/cli/<command>.ts and exports
 * `run(argv: string[]): Promise<number>` (argv without the command name; returns the exit code).
 * They are imported lazily so that `model inspect` does not load fastify and `serve` does not
 * load the model builder.
 */
import { pathToFileURL } from 'node:url';

interface CommandModule {
  run(argv: string[]): Promise<number>;
}

const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  serve: { summary: 'start the HTTP gateway', load: () => import('./cli/serve.js') },
  model: {
    summary: 'pull, build and inspect GPT-2 ONNX models',
    load: () => import('./cli/model.js'),
  },
  'model-server': {
    summary: 'serve a model repository over KServe v2 REST (Triton-compatible, CPU)',
    load: () => import('./cli/model-server.js'),
  },
  deploy: {
    summary: 'install or upgrade the Helm release and wait for it',
    load: () => import('./cli/deploy.js'),
  },
  status: {
    summary: 'show the state of a deployed release',
    load: () => import('./cli/status.js'),
  },
  undeploy: { summary: 'uninstall the Helm release', load: () => import('./cli/undeploy.js') },
  loadtest: {
    summary: 'constant-rate load test of /complete',
    load: () => import('./cli/loadtest.js'),
  },
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(
    ([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`,
  );
  return `Usage: gpt2-gateway <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'gpt2-gateway <command> --help' for a command's options.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    const { VERSION } = await import('./version.js');
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    process.stderr.write(`gpt2-gateway: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return (await command.load()).run(rest);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`gpt2-gateway: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
