/**
 * `gpt2-gateway model-server`: a model repository served over the KServe v2 REST subset Triton
 * offers (docs/triton-notes.md): health, server and model metadata, model config, infer with JSON
 * and binary tensors, `outputs` selection, binary_data_output, `{"error": "..."}` bodies, and
 * implicit sequence state. Plain node:http, because Triton ignores Content-Type and frames binary
 * bodies itself, which a JSON-first framework would get in the way of.
 */
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  decodeInferRequest,
  encodeInferResponse,
  HEADER_LENGTH_HEADER,
} from '../kserve/infer-body.js';
import { modelConfigToJson } from '../kserve/model-config.js';
import { WireFormatError } from '../kserve/tensor-codec.js';
import { InferenceError, statusOf } from './inference-error.js';
import { ServedModel } from './served-model.js';

/** Triton's --http-max-input-size default. */
export const DEFAULT_MAX_INPUT_BYTES = 64 * 1024 * 1024;
/** The Triton release whose HTTP behaviour this server follows (status codes of 24.01). */
export const EMULATED_TRITON_VERSION = '2.42.0';
const SERVER_NAME = 'gpt2-gateway-model-server';
const EXTENSIONS = [
  'classification',
  'sequence',
  'model_configuration',
  'binary_tensor_data',
  'parameters',
];

export interface ModelServerOptions {
  readonly repository: string;
  /** Serve only these models (default: every directory of the repository). */
  readonly models?: readonly string[];
  readonly maxInputBytes?: number;
  /** Answer 400 for every error, as Triton 21.08 (Seldon's default) does. */
  readonly legacyStatusCodes?: boolean;
  readonly now?: () => number;
}

const MODEL_ROUTE = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/ready|\/config|\/infer)?$/;

export class ModelServer {
  readonly #models: ReadonlyMap<string, ServedModel>;
  readonly #o: ModelServerOptions;
  readonly #server: Server;

  private constructor(models: Map<string, ServedModel>, o: ModelServerOptions) {
    this.#models = models;
    this.#o = o;
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  /** Load every model; a model that fails to load fails the start, saying which and why. */
  static async create(o: ModelServerOptions): Promise<ModelServer> {
    const names =
      o.models ??
      (
        await readdir(o.repository, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
          throw new Error(
            `cannot read model repository ${o.repository}: ${err.code ?? err.message}`,
          );
        })
      )
        .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
        .map((e) => e.name);
    if (names.length === 0)
      throw new Error(
        `model repository ${o.repository} has no models (expected <repo>/<name>/1/model.onnx)`,
      );
    const models = new Map<string, ServedModel>();
    try {
      for (const name of names)
        models.set(name, await ServedModel.load(o.repository, name, o.now ? { now: o.now } : {}));
    } catch (err) {
      for (const m of models.values()) await m.close();
      throw err;
    }
    return new ModelServer(models, o);
  }

  get models(): ReadonlyMap<string, ServedModel> {
    return this.#models;
  }

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    this.#server.listen(port, host);
    await once(this.#server, 'listening');
    return (this.#server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    if (this.#server.listening) {
      this.#server.closeAllConnections();
      this.#server.close();
      await once(this.#server, 'close');
    }
    for (const m of this.#models.values()) await m.close();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await this.#route(req, res);
    } catch (err) {
      const e =
        err instanceof InferenceError
          ? err
          : new InferenceError('INTERNAL', err instanceof Error ? err.message : String(err));
      this.#json(res, statusOf(e.kind, this.#o.legacyStatusCodes === true), { error: e.message });
    }
  }

  #json(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  }

  /** Health answers: 200 with an empty body, or 400 (KServe v2 spec: "4xx = false"). */
  #health(res: ServerResponse, ok: boolean): void {
    res.writeHead(ok ? 200 : 400, { 'content-length': 0 });
    res.end();
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const get = method === 'GET';
    if (path === '/v2/health/live' || path === '/v2/health/ready') {
      if (!get) return this.#methodNotAllowed(req, res);
      return this.#health(res, true);
    }
    if (path === '/v2') {
      if (!get) return this.#methodNotAllowed(req, res);
      return this.#json(res, 200, {
        name: SERVER_NAME,
        version: EMULATED_TRITON_VERSION,
        extensions: EXTENSIONS,
      });
    }
    const m = MODEL_ROUTE.exec(path);
    if (m === null) {
      req.resume();
      // 24.01 answers an unknown path 404 {"error":"Not Found"}; 21.08 400 with no body.
      if (this.#o.legacyStatusCodes === true) return this.#health(res, false);
      return this.#json(res, 404, { error: 'Not Found' });
    }
    const [, rawName = '', version, action] = m;
    const model = this.#model(decodeURIComponent(rawName), version);
    if (action === '/infer') {
      if (method !== 'POST') return this.#methodNotAllowed(req, res);
      return this.#infer(req, res, model);
    }
    if (!get) return this.#methodNotAllowed(req, res);
    if (action === '/ready') return this.#health(res, true);
    if (action === '/config') return this.#json(res, 200, modelConfigToJson(model.config));
    return this.#json(res, 200, model.metadata);
  }

  #methodNotAllowed(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    res.writeHead(405, { 'content-length': 0 });
    res.end();
  }

  #model(name: string, version: string | undefined): ServedModel {
    const model = this.#models.get(name);
    if (model === undefined)
      throw new InferenceError('NOT_FOUND', `Request for unknown model: '${name}' is not found`);
    if (version !== undefined && version !== '' && version !== model.version) {
      throw new InferenceError(
        'NOT_FOUND',
        `Request for unknown model: '${name}' version ${version} is not found`,
      );
    }
    return model;
  }

  async #readBody(req: IncomingMessage): Promise<Buffer> {
    const limit = this.#o.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      req.resume();
      throw new InferenceError(
        'INVALID_ARG',
        `request body size ${declared} exceeds the maximum allowed value of ${limit} bytes (--http-max-input-size)`,
      );
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.byteLength;
      if (size > limit) {
        req.resume();
        throw new InferenceError(
          'INVALID_ARG',
          `request body exceeds the maximum allowed value of ${limit} bytes (--http-max-input-size)`,
        );
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }

  async #infer(req: IncomingMessage, res: ServerResponse, model: ServedModel): Promise<void> {
    const enc = req.headers['content-encoding'];
    if (enc !== undefined && enc !== 'identity') {
      req.resume();
      res.setHeader('accept-encoding', 'identity');
      throw new InferenceError(
        'UNSUPPORTED',
        `Unsupported compression type '${enc}' (this server takes identity only)`,
      );
    }
    const body = await this.#readBody(req);
    const h = req.headers[HEADER_LENGTH_HEADER];
    let decoded: ReturnType<typeof decodeInferRequest>;
    try {
      decoded = decodeInferRequest(body, Array.isArray(h) ? h[0] : h);
    } catch (err) {
      if (err instanceof WireFormatError) {
        // Triton tags JSON parse failures INTERNAL (500 on >= 24.01); the rest INVALID_ARG.
        throw new InferenceError(
          /does not parse/.test(err.message) ? 'INTERNAL' : 'INVALID_ARG',
          err.message,
        );
      }
      throw err;
    }
    const outputs = await model.infer(decoded);
    const { body: out, headerLength } = encodeInferResponse({
      ...(decoded.json.id !== undefined ? { id: decoded.json.id } : {}),
      modelName: model.name,
      modelVersion: model.version,
      outputs,
    });
    const headers: Record<string, string | number> = { 'content-length': out.byteLength };
    if (headerLength === undefined) headers['content-type'] = 'application/json';
    else {
      headers['content-type'] = 'application/octet-stream';
      headers[HEADER_LENGTH_HEADER] = headerLength;
    }
    res.writeHead(200, headers);
    res.end(out);
  }
}
