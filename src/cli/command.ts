/**
 * The shell every gpt2-gateway command shares, and its exit codes: a usage mistake (bad flag,
 * bad value, missing argument) is one line on stderr and exit 2; `--help` prints the help and
 * exits 0; a failure of the command itself is one line and exit 1.
 */
import { oneLine } from './one-line.js';

/** A mistake in the command line: exit 2. parse() may throw any error; a body throws this one. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export async function runCommand<V extends { help?: boolean }>(
  name: string,
  help: string,
  parse: (argv: string[]) => V,
  argv: string[],
  body: (values: V) => Promise<number>,
): Promise<number> {
  const say = (message: string) => process.stderr.write(`gpt2-gateway ${name}: ${message}\n`);
  let values: V;
  try {
    values = parse(argv);
  } catch (err) {
    say(oneLine((err as Error).message));
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(help);
    return 0;
  }
  try {
    return await body(values);
  } catch (err) {
    if (err instanceof UsageError) {
      say(oneLine(err.message));
      return 2;
    }
    say(err instanceof Error ? err.message : String(err));
    return 1;
  }
}

/**
 * The one parser of integer flags: `text` (as the user typed it, or the default) must be a whole
 * number within [min, max]; anything else, "1.5", "1e3", "0x10" or "" included, is a UsageError.
 */
export function integerFlag(
  flag: string,
  text: string,
  range: { readonly min: number; readonly max?: number },
): number {
  const n = /^-?\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
  const { min, max = Number.MAX_SAFE_INTEGER } = range;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const bounds = range.max === undefined ? `of at least ${min}` : `from ${min} to ${max}`;
    throw new UsageError(`${flag} '${text}' must be a whole number ${bounds}`);
  }
  return n === 0 ? 0 : n; // "-0" is 0, not -0
}
