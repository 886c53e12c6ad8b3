/**
 * The one application/json parser of the app: the body must be UTF-8 (RFC 8259 §8.1) and every
 * string in it well-formed Unicode, or the request is refused with 400. fastify's own parser
 * decodes invalid bytes to U+FFFD and JSON.parse keeps a lone surrogate escape ("\ud800"), which
 * the tokenizer's UTF-8 encoder then turns into U+FFFD: either way the model would see text the
 * client never sent (RFC 8259 §8.2 leaves such strings' behaviour "unpredictable"; we refuse).
 * Registered once for the whole app, so every route that takes text gets it.
 * RFC 8259: https://www.rfc-editor.org/rfc/rfc8259#section-8
 */
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../contract/errors.js';

/** fatal: a malformed sequence throws instead of decoding to U+FFFD. Reusable: no stream state. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** ES2024 (Node ≥ 20); TypeScript's ES2023 lib does not declare it yet. */
const isWellFormed = (String.prototype as unknown as { isWellFormed(this: string): boolean })
  .isWellFormed;

const WELL_FORMED_HINT =
  'a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape without its pair); send well-formed Unicode text';

export function installStrictJsonParser(app: FastifyInstance): void {
  // fastify's parser keeps its checks (empty body, syntax, __proto__ / constructor.prototype
  // poisoning) and its error codes, which the error handler already turns into INVALID_JSON.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    // No route takes this body: the 404 or 405 is the answer, whatever the bytes (fastify runs
    // the parser for its not-found handler too, which would turn a typo'd URL into a 400).
    if (request.is404) {
      done(null, undefined);
      return;
    }
    const bytes = body as Buffer;
    let text: string;
    try {
      text = UTF8.decode(bytes);
    } catch {
      done(invalidUtf8(bytes), undefined);
      return;
    }
    parseJson(request, text, (err, value: unknown) => {
      if (err !== null) {
        done(err, undefined);
        return;
      }
      const where = findLoneSurrogate(value);
      if (where === undefined) done(null, value);
      else {
        const subject = where.key ? 'a field name' : `'${where.path}'`;
        done(
          new GatewayError('LONE_SURROGATE', `${subject} contains ${WELL_FORMED_HINT}`),
          undefined,
        );
      }
    });
  });
}

function invalidUtf8(bytes: Uint8Array): GatewayError {
  const offset = firstInvalidUtf8(bytes);
  const byte = (bytes[offset] ?? 0).toString(16).padStart(2, '0');
  return new GatewayError(
    'INVALID_UTF8',
    `the body is not valid UTF-8 (byte 0x${byte} at offset ${offset}); send the JSON body encoded as UTF-8`,
  );
}

/**
 * Offset of the first byte that starts an ill-formed sequence (Unicode 15 Table 3-7, the table
 * TextDecoder applies). Only runs after TextDecoder has refused the body, to name the place.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i] ?? 0;
    if (lead < 0x80) {
      i += 1;
      continue;
    }
    // [continuation bytes, lowest and highest allowed second byte] per lead byte.
    let need: number;
    let low = 0x80;
    let high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) need = 1;
    else if (lead === 0xe0) [need, low] = [2, 0xa0];
    else if (lead === 0xed)
      [need, high] = [2, 0x9f]; // U+D800-U+DFFF are not encodable
    else if (lead >= 0xe1 && lead <= 0xef) need = 2;
    else if (lead === 0xf0) [need, low] = [3, 0x90];
    else if (lead >= 0xf1 && lead <= 0xf3) need = 3;
    else if (lead === 0xf4)
      [need, high] = [3, 0x8f]; // nothing above U+10FFFF
    else return i;
    for (let k = 1; k <= need; k++) {
      const next = bytes[i + k];
      const min = k === 1 ? low : 0x80;
      const max = k === 1 ? high : 0xbf;
      if (next === undefined || next < min || next > max) return i;
    }
    i += need + 1;
  }
  return bytes.length;
}

/**
 * The first string (value or key) that is not well-formed UTF-16, with its field as a client
 * writes it (`stop[1]`). Iterative: a deeply nested body must not overflow the stack.
 */
function findLoneSurrogate(root: unknown): { path: string; key: boolean } | undefined {
  const pending: { value: unknown; path: string }[] = [{ value: root, path: '' }];
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    const { value, path } = item;
    if (typeof value === 'string') {
      if (!isWellFormed.call(value)) return { path, key: false };
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) {
        pending.push({ value: value[i], path: `${path}[${i}]` });
      }
    } else if (typeof value === 'object' && value !== null) {
      const entries = Object.entries(value);
      for (const [key] of entries) if (!isWellFormed.call(key)) return { path, key: true };
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i] as [string, unknown];
        pending.push({ value: child, path: path === '' ? key : `${path}.${key}` });
      }
    }
  }
  return undefined;
}
