/**
 * Server-Sent Events from a fetch body (WHATWG HTML §9.2.6): blocks end with a blank line,
 * `event:` names a block, `data:` lines join with newlines, lines starting with `:` are comments
 * (the gateway opens every stream with `: accepted`).
 */
export interface SseEvent {
  /** The event name, `message` when unnamed, or `comment` for a block of comments only. */
  readonly name: string;
  readonly data: string;
}

function parseBlock(block: string): SseEvent | undefined {
  let name = 'message';
  const data: string[] = [];
  let comment = false;
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) comment = true;
    else if (line.startsWith('event:')) name = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (data.length > 0) return { name, data: data.join('\n') };
  return comment ? { name: 'comment', data: '' } : undefined;
}

export async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  // stream: true keeps a UTF-8 character split across two chunks whole.
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const event = parseBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event !== undefined) yield event;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
