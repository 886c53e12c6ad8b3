/**
 * GET / (the playground page) and GET /playground/<file> (its script and style sheet): a few
 * static files that `npm run build` writes to dist/web/playground, read once when the app is
 * built and served from memory with a strong ETag. They carry no data, so they take no key and
 * no rate limit; everything the page does goes through /info and /complete like any client.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../../contract/errors.js';

/** Where the build puts the page, from dist/src/http/routes/ (also where the image copies it). */
export const PLAYGROUND_DIRECTORY = fileURLToPath(
  new URL('../../../web/playground/', import.meta.url),
);
export const PLAYGROUND_ASSET_PREFIX = '/playground/';

/**
 * Only the gateway's own origin, and no inline script or style (the page has none): an injected
 * string can never run. `data:` images only for the empty favicon.
 */
export const PLAYGROUND_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

export interface PlaygroundOptions {
  /** Tests point this at a folder of their own; default: the built page. */
  readonly directory?: string;
}

/** The served files, by file name; undefined when the folder is missing. */
function readAssets(directory: string): Map<string, Asset> | undefined {
  let names: string[];
  try {
    names = readdirSync(directory);
  } catch {
    return undefined;
  }
  const assets = new Map<string, Asset>();
  for (const name of names.sort()) {
    const contentType = CONTENT_TYPES[extname(name)];
    if (contentType === undefined) continue;
    const body = readFileSync(join(directory, name));
    // Strong validator: the bytes' hash, so a rebuilt page is never served from a stale cache.
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    assets.set(name, { body, contentType, etag });
  }
  return assets;
}

/**
 * If-None-Match (RFC 9110 §13.1.2, https://www.rfc-editor.org/rfc/rfc9110#section-13.1.2): `*` or
 * any listed tag, compared weakly, matches.
 */
function notModified(request: FastifyRequest, etag: string): boolean {
  const header = request.headers['if-none-match'];
  if (typeof header !== 'string') return false;
  return header
    .split(',')
    .map((tag) => tag.trim().replace(/^W\//, ''))
    .some((tag) => tag === '*' || tag === etag);
}

function send(request: FastifyRequest, reply: FastifyReply, asset: Asset): FastifyReply {
  reply
    .header('content-security-policy', PLAYGROUND_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    // Always revalidate: the names are not content-hashed, the ETag makes the check cheap.
    .header('cache-control', 'no-cache')
    .header('etag', asset.etag);
  if (notModified(request, asset.etag)) return reply.code(304).send();
  return reply.type(asset.contentType).send(asset.body);
}

export async function playgroundRoutes(
  app: FastifyInstance,
  options: PlaygroundOptions = {},
): Promise<void> {
  const directory = options.directory ?? PLAYGROUND_DIRECTORY;
  const assets = readAssets(directory);
  const index = assets?.get('index.html');
  if (assets === undefined || index === undefined) {
    // A gateway without its page still serves the API; say why / is missing instead of failing.
    app.log.warn({ directory }, 'playground page not built (run `npm run build`); GET / is 404');
    app.get('/', async () => {
      throw new GatewayError(
        'NOT_FOUND',
        `the playground page is not built into this installation (no ${join(directory, 'index.html')}); run \`npm run build\``,
      );
    });
    return;
  }
  app.get('/', (request, reply) => send(request, reply, index));
  for (const [name, asset] of assets) {
    if (name === 'index.html') continue;
    app.get(`${PLAYGROUND_ASSET_PREFIX}${name}`, (request, reply) => send(request, reply, asset));
  }
}
