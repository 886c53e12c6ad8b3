/**
 * Server-Sent Events framing (WHATWG HTML §9.2): `event:` names the kind, `data:` carries one JSON
 * document on one line (JSON.stringify never emits raw newlines), a blank line ends the event.
 * The stream opens with one comment line (`: accepted`).
 */
import { PassThrough } from 'node:stream';
import type { FastifyReply } from 'fastify';

export type SseEventName = 'token' | 'done' | 'error';

export function formatSseEvent(name: SseEventName, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** Starts an event stream on `reply` (status 200) and returns a writer for its events. */
export function openEventStream(reply: FastifyReply): {
  send(name: SseEventName, data: unknown): void;
  end(): void;
} {
  const stream = openSseStream(reply);
  return {
    send(name, data) {
      stream.write(formatSseEvent(name, data));
    },
    end: () => stream.end(),
  };
}

/**
 * The stream under any event framing (the OpenAI routes write data-only events): status 200,
 * the SSE headers, the `: accepted` comment, then whatever the caller writes.
 */
export function openSseStream(reply: FastifyReply): {
  write(text: string): void;
  end(): void;
} {
  const stream = new PassThrough();
  reply
    .code(200)
    .header('content-type', 'text/event-stream; charset=utf-8')
    .header('cache-control', 'no-cache')
    // nginx (and the AKS ingress) would otherwise buffer the whole stream.
    .header('x-accel-buffering', 'no')
    .send(stream);
  // A comment line (ignored by SSE clients) sends the headers now: the client learns that it
  // was admitted even while its generation waits in the queue for its first token.
  stream.write(': accepted\n\n');
  return {
    write(text) {
      if (!stream.writableEnded) stream.write(text);
    },
    end() {
      if (!stream.writableEnded) stream.end();
    },
  };
}
