/**
 * The same requests as a vegeta targets file in its JSON format (one target per line, body
 * base64), so a run can be repeated with vegeta itself:
 *   vegeta attack -format=json -targets=FILE -rate=1 -duration=60s | vegeta report
 */
export function vegetaTargets(
  url: URL,
  bodies: readonly string[],
  headers: Readonly<Record<string, string>> = {},
): string {
  const header: Record<string, string[]> = { 'Content-Type': ['application/json'] };
  for (const [name, value] of Object.entries(headers)) header[name] = [value];
  return bodies
    .map((body) =>
      JSON.stringify({
        method: 'POST',
        url: url.href,
        body: Buffer.from(body).toString('base64'),
        header,
      }),
    )
    .map((line) => `${line}\n`)
    .join('');
}
