/** Parses a duration the way people type it on a command line: 500ms, 90s, 15m, 1h, or bare seconds. */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (m === null || m[1] === undefined) {
    throw new Error(`${flag} '${text}' is not a duration: use e.g. 500ms, 30s, 15m or 1h`);
  }
  const ms = Number(m[1]) * (UNIT_MS[m[2] ?? 's'] ?? 1000);
  if (ms <= 0) throw new Error(`${flag} must be more than zero`);
  return ms;
}
