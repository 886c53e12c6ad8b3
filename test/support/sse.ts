/**
 * Parses a text/event-stream body into events, strictly: the opening `: accepted` comment, then
 * events of exactly `event:` + `data:`.
 */
export interface SseEvent {
  event: string;
  data: unknown;
}

export function parseSse(body: string): SseEvent[] {
  if (!body.endsWith('\n\n')) throw new Error(`stream does not end with a blank line: ${body}`);
  const [first, ...rest] = body.slice(0, -2).split('\n\n');
  if (first !== ': accepted') throw new Error(`stream does not open with ': accepted': ${body}`);
  return rest.map((block) => {
    const match = /^event: (\w+)\ndata: (.*)$/.exec(block);
    if (match === null) throw new Error(`malformed SSE event: ${JSON.stringify(block)}`);
    return { event: match[1]!, data: JSON.parse(match[2]!) as unknown };
  });
}
