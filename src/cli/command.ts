import { oneLine } from './one-line.js';

/**
 * The shell every gpt2-gateway command shares: a parse error is a one-line usage error (exit 2),
 * `--help` prints the help (exit 0), and a failure of the command itself is one line (exit 1).
 */
export async function runCommand<V extends { help?: boolean }>(
  name: string,
  help: string,
  parse: (argv: string[]) => V,
  argv: string[],
  body: (values: V) => Promise<number>,
): Promise<number> {
  let values: V;
  try {
    values = parse(argv);
  } catch (err) {
    process.stderr.write(`gpt2-gateway ${name}: ${oneLine((err as Error).message)}\n`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(help);
    return 0;
  }
  try {
    return await body(values);
  } catch (err) {
    process.stderr.write(
      `gpt2-gateway ${name}: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    return 1;
  }
}
