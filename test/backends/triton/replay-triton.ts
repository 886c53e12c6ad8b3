/**
 * A stand-in for Triton that answers with the exact bytes Triton 21.08 (2.13.0) sends
 * (docs/triton-notes.md): status 400 for every error with `{"error": ...}`, empty health bodies,
 * the notebook's recorded model metadata, binary outputs framed by hand (not by our encoder, so
 * the two sides of a test cannot share a bug). Faults are injected per call.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export const VOCAB = 50257;

/**
 * The notebook's recorded metadata, verbatim as Triton 21.08 reports it for the model of Seldon
 * Core's GPT-2 example (outputs: past_key_values first).
 */
export const NOTEBOOK_METADATA =
  '{"name":"gpt2","versions":["1"],"platform":"onnxruntime_onnx","inputs":[{"name":"input_ids:0","datatype":"INT32","shape":[-1,-1]},{"name":"attention_mask:0","datatype":"INT32","shape":[-1,-1]}],"outputs":[{"name":"past_key_values","datatype":"FP32","shape":[12,2,-1,12,-1,64]},{"name":"logits","datatype":"FP32","shape":[-1,-1,50257]}]}';
/** The same with the outputs the other way round (Triton does not keep the order stable). */
export const NOTEBOOK_METADATA_LOGITS_FIRST =
  '{"name":"gpt2","versions":["1"],"platform":"onnxruntime_onnx","inputs":[{"name":"input_ids:0","datatype":"INT32","shape":[-1,-1]},{"name":"attention_mask:0","datatype":"INT32","shape":[-1,-1]}],"outputs":[{"name":"logits","datatype":"FP32","shape":[-1,-1,50257]},{"name":"past_key_values","datatype":"FP32","shape":[12,2,-1,12,-1,64]}]}';

/** The fake model: the greedy next token after `last` and the logit row it comes from. */
export function expectedNext(last: number): number {
  return (last * 7 + 3) % VOCAB;
}
function logitRow(last: number, row: Float32Array, offset: number): void {
  for (let v = 0; v < VOCAB; v++) row[offset + v] = ((v * 31 + last) % 101) / 100;
  row[offset + expectedNext(last)] = 5;
}
/** log softmax of the fake row at its maximum, in float64 like the gateway computes it. */
export function expectedLogprob(last: number): number {
  const row = new Float32Array(VOCAB);
  logitRow(last, row, 0);
  let sum = 0;
  for (const x of row) sum += Math.exp(x - 5);
  return -Math.log(sum);
}

export interface RecordedCall {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
  readonly socket: Socket;
}

export type Fault =
  | 'stall-before-headers'
  | 'stall-mid-body'
  | 'reset'
  | 'malformed-json'
  | 'wrong-header-length'
  /** What the Seldon v1 executor does to a binary answer (docs/triton-notes.md): Go's json.HTMLEscape over the
   * whole body, and Inference-Header-Content-Length dropped. */
  | 'seldon-executor'
  | { status: number; body: string; headers?: Record<string, string> };

export interface ReplayOptions {
  metadata?: string;
  /** JSON for GET .../config; undefined = answer 400 like the Seldon executor's missing route. */
  config?: string;
  serverVersion?: string;
  modelReady?: boolean;
}

export class ReplayTriton {
  readonly calls: RecordedCall[] = [];
  readonly sockets = new Set<Socket>();
  /** Faults for the next infer calls, consumed in order. */
  readonly faults: Fault[] = [];
  options: ReplayOptions;
  #server: Server;
  /** Requests held while frozen, answered on thaw(). */
  #held: (() => void)[] | undefined;

  private constructor(server: Server, options: ReplayOptions) {
    this.#server = server;
    this.options = options;
  }

  static async start(options: ReplayOptions = {}, port = 0): Promise<ReplayTriton> {
    let self: ReplayTriton | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => self?.handle(req, res, Buffer.concat(chunks)));
    });
    self = new ReplayTriton(server, options);
    const r = self;
    server.on('connection', (s: Socket) => {
      r.sockets.add(s);
      s.on('close', () => r.sockets.delete(s));
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    return self;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  infers(): RecordedCall[] {
    return this.calls.filter((c) => c.url.endsWith('/infer'));
  }

  /** Resolves once the connection that carried the last infer call is closed. */
  async lastInferConnectionClosed(): Promise<void> {
    const s = this.infers().at(-1)?.socket;
    if (s !== undefined && !s.destroyed) await once(s, 'close');
  }

  /**
   * Like a SIGSTOPped Triton: connections are still accepted (the kernel completes the
   * handshake), but nothing is answered until thaw().
   */
  freeze(): void {
    this.#held ??= [];
  }

  get frozen(): boolean {
    return this.#held !== undefined;
  }

  /** Answers what was held (clients that gave up have gone) and everything after. */
  thaw(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const answer of held) answer();
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, 'close');
  }

  handle(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    if (this.#held !== undefined) {
      this.#held.push(() => {
        if (!res.destroyed) this.handle(req, res, body);
      });
      return;
    }
    this.calls.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body,
      socket: req.socket,
    });
    const send = (status: number, text: string | Buffer, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-length': String(Buffer.byteLength(text)), ...headers });
      res.end(text);
    };
    const error = (msg: string) =>
      send(400, JSON.stringify({ error: msg }), { 'content-type': 'application/json' });
    const o = this.options;
    switch (req.url) {
      case '/v2/health/ready':
        send(200, '');
        return;
      case '/v2':
        send(
          200,
          JSON.stringify({
            name: 'triton',
            version: o.serverVersion ?? '2.13.0',
            extensions: ['classification', 'sequence', 'binary_tensor_data'],
          }),
          { 'content-type': 'application/json' },
        );
        return;
      case '/v2/models/gpt2/ready':
        send(o.modelReady === false ? 400 : 200, '');
        return;
      case '/v2/models/gpt2':
        send(200, o.metadata ?? NOTEBOOK_METADATA, { 'content-type': 'application/json' });
        return;
      case '/v2/models/gpt2/config':
        if (o.config === undefined) send(400, '');
        else send(200, o.config, { 'content-type': 'application/json' });
        return;
      case '/v2/models/gpt2/infer':
        this.#infer(req, res, body, send, error);
        return;
      default:
        // 21.08: a path that matches no route is 400 with an empty body (docs/triton-notes.md).
        send(400, '');
        return;
    }
  }

  #infer(
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    send: (status: number, text: string | Buffer, headers?: Record<string, string>) => void,
    error: (msg: string) => void,
  ): void {
    const fault = this.faults.shift();
    if (fault === 'stall-before-headers') return;
    if (fault === 'reset') {
      req.socket.destroy();
      return;
    }
    if (typeof fault === 'object') {
      send(fault.status, fault.body, fault.headers);
      return;
    }
    if (fault === 'malformed-json') {
      send(200, '{"model_name":"gpt2","outputs":[{', { 'content-type': 'application/json' });
      return;
    }
    const h = req.headers['inference-header-content-length'];
    const headerLength = h === undefined ? body.byteLength : Number(h);
    let header: {
      inputs: {
        name: string;
        datatype: string;
        shape: number[];
        parameters?: { binary_data_size?: number };
        data?: number[];
      }[];
      outputs?: { name: string; parameters?: { binary_data?: boolean } }[];
    };
    try {
      header = JSON.parse(body.subarray(0, headerLength).toString());
    } catch {
      error('failed to parse the request JSON buffer: Invalid value. at 0');
      return;
    }
    const ids = header.inputs.find((i) => i.name === 'input_ids:0');
    if (ids === undefined) {
      error("unexpected inference input 'input_ids' for model 'gpt2'");
      return;
    }
    if (ids.datatype !== 'INT32') {
      error(
        `inference input 'input_ids:0' data-type is '${ids.datatype}', but model 'gpt2' expects 'INT32'`,
      );
      return;
    }
    const [rows = 0, width = 0] = ids.shape;
    let tokens: number[];
    if (ids.data !== undefined) tokens = ids.data.flat(3);
    else {
      const off = headerLength;
      tokens = Array.from({ length: rows * width }, (_, i) => body.readInt32LE(off + i * 4));
    }
    const mask = header.inputs.find((i) => i.name === 'attention_mask:0');
    let maskValues: number[];
    if (mask?.data !== undefined) maskValues = mask.data.flat(3);
    else
      maskValues = Array.from({ length: rows * width }, (_, i) =>
        body.readInt32LE(headerLength + rows * width * 4 + i * 4),
      );
    const logits = new Float32Array(rows * width * VOCAB);
    for (let r = 0; r < rows; r++) {
      for (let t = 0; t < width; t++) {
        // Like a real causal model, position t only sees tokens up to t; padded positions get zeros.
        if (maskValues[r * width + t] === 1)
          logitRow(tokens[r * width + t] ?? 0, logits, (r * width + t) * VOCAB);
      }
    }
    const binary = header.outputs?.[0]?.parameters?.binary_data === true;
    const shape = [rows, width, VOCAB];
    if (!binary) {
      send(
        200,
        JSON.stringify({
          model_name: 'gpt2',
          model_version: '1',
          outputs: [{ name: 'logits', datatype: 'FP32', shape, data: Array.from(logits) }],
        }),
        { 'content-type': 'application/json' },
      );
      return;
    }
    const bytes = Buffer.from(logits.buffer);
    const json = JSON.stringify({
      model_name: 'gpt2',
      model_version: '1',
      outputs: [
        {
          name: 'logits',
          datatype: 'FP32',
          shape,
          parameters: { binary_data_size: bytes.byteLength },
        },
      ],
    });
    const full = Buffer.concat([Buffer.from(json), bytes]);
    const jsonLength =
      fault === 'wrong-header-length' ? Buffer.byteLength(json) + 16 : Buffer.byteLength(json);
    const headers = {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(jsonLength),
    };
    if (fault === 'stall-mid-body') {
      res.writeHead(200, { ...headers, 'content-length': String(full.byteLength) });
      res.write(full.subarray(0, Math.floor(full.byteLength / 2)));
      return;
    }
    if (fault === 'seldon-executor') {
      const escaped: number[] = [];
      for (const byte of full) {
        if (byte === 0x3c || byte === 0x3e || byte === 0x26) {
          escaped.push(...Buffer.from(`\\u00${byte.toString(16)}`));
        } else escaped.push(byte);
      }
      send(200, Buffer.from(escaped), { 'content-type': 'application/octet-stream' });
      return;
    }
    send(200, full, headers);
  }
}
