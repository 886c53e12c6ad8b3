/** `gpt2-gateway serve`: run the HTTP gateway; configuration comes from the environment only. */
import { settingsHelp } from '../config.js';
import { runServer } from '../server.js';
import { runCommand } from './command.js';

/** The variables and their defaults come from the config table, so the two cannot disagree. */
const HELP = `Usage: gpt2-gateway serve

Starts the HTTP gateway (POST /complete, POST /tokenize, GET /info, /healthz, /readyz, /metrics).
Configured by environment variables (see README "Configuration"):
${settingsHelp('gateway')}
Triton backend (BACKEND=triton; README "Triton backend"):
${settingsHelp('triton')}
`;

export async function run(argv: string[]): Promise<number> {
  return runCommand('serve', HELP, parse, argv, () => runServer(process.env));
}

function parse(argv: string[]): { help: boolean } {
  const help = argv.includes('--help') || argv.includes('-h');
  const extra = argv.find((arg) => arg !== '--help' && arg !== '-h');
  if (!help && extra !== undefined) {
    throw new Error(`unexpected argument '${extra}' (it takes none; see --help)`);
  }
  return { help };
}
