/** A small stand-in for the gateway's POST /complete: JSON or SSE, every Nth answer a 503. */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export const OK_BODY = JSON.stringify({
  id: 'cmpl-1',
  model: 'gpt2',
  text: ' and I',
  finish_reason: 'length',
  usage: { prompt_tokens: 6, completion_tokens: 8, total_tokens: 14 },
  tokens: [],
  timings: {
    tokenize_ms: 0.2,
    queue_ms: 0.1,
    time_to_first_token_ms: 12.5,
    total_ms: 80,
    tokens_per_second: 100,
  },
});
export const BUSY_BODY = JSON.stringify({
  error: { code: 'QUEUE_FULL', message: 'try again later' },
});
export const STREAM_BODY =
  'event: token\ndata: {"id":1}\n\nevent: token\ndata: {"id":2}\n\nevent: token\ndata: {"id":3}\n\n' +
  'event: done\ndata: {"usage":{"prompt_tokens":6,"completion_tokens":3,"total_tokens":9}}\n\n';

export interface FakeGateway {
  url: string;
  bodies: unknown[];
  maxConcurrent: number;
  close(): Promise<void>;
}

export async function startFakeGateway(
  options: { busyEvery?: number; delayMs?: number; hang?: boolean } = {},
): Promise<FakeGateway> {
  let n = 0;
  let concurrent = 0;
  const state: FakeGateway = { url: '', bodies: [], maxConcurrent: 0, close: async () => {} };
  const server: Server = createServer(async (req: IncomingMessage, res) => {
    concurrent++;
    state.maxConcurrent = Math.max(state.maxConcurrent, concurrent);
    res.on('close', () => concurrent--);
    let raw = '';
    for await (const chunk of req) raw += String(chunk);
    if (req.method !== 'POST' || req.url !== '/complete') {
      res.writeHead(404).end();
      return;
    }
    const body = JSON.parse(raw) as { stream?: boolean };
    state.bodies.push(body);
    const index = ++n;
    if (options.hang === true) return;
    const answer = () => {
      if (options.busyEvery !== undefined && index % options.busyEvery === 0) {
        res.writeHead(503, { 'content-type': 'application/json' }).end(BUSY_BODY);
      } else if (body.stream === true) {
        res.writeHead(200, { 'content-type': 'text/event-stream' }).end(STREAM_BODY);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end(OK_BODY);
      }
    };
    if (options.delayMs === undefined) answer();
    else setTimeout(answer, options.delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}
