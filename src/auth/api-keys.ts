/**
 * API keys as credentials: the keys file, a constant-time key store, the file's live reload, and
 * the credential a request presents.
 *
 * The file holds `<client-name>:<key>` lines. The client name is what logs, metrics and the rate
 * limiter see; the key is never written anywhere (no error, no log line names it, only line
 * numbers and client names).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

/** Kubernetes updates a mounted Secret within about a minute; polling every 5 s is plenty. */
export const DEFAULT_POLL_INTERVAL_MS = 5_000;
/** Client names become log fields and rate-limit keys: a short, plain charset keeps them safe. */
export const CLIENT_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** Thousands of keys fit in far less; anything bigger is the wrong file. */
export const MAX_KEYS_FILE_BYTES = 1024 * 1024;

/** A problem with the keys file; `line` (from 1) when one line is at fault. Never holds key text. */
export class ApiKeysFileError extends Error {
  override readonly name = 'ApiKeysFileError';
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(line === undefined ? message : `API keys file line ${line}: ${message}`);
  }
}

export interface ApiKeyEntry {
  readonly clientName: string;
  readonly key: string;
}

/**
 * Parses the keys file. Blank lines and lines starting with `#` are skipped; the line is trimmed
 * (so CRLF files work) but whitespace inside a key is an error rather than a silent change.
 * Throws ApiKeysFileError naming the first bad line.
 */
export function parseApiKeys(text: string): ApiKeyEntry[] {
  const entries: ApiKeyEntry[] = [];
  const lineOfName = new Map<string, number>();
  const lineOfKey = new Map<string, number>();
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (const [index, raw] of lines.entries()) {
    const lineNo = index + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon === -1) {
      throw new ApiKeysFileError('expected `<client-name>:<key>`, found no colon', lineNo);
    }
    const clientName = line.slice(0, colon);
    const key = line.slice(colon + 1);
    if (clientName === '') throw new ApiKeysFileError('the client name is empty', lineNo);
    // The bad name is not echoed: a line written the wrong way round would put a key there.
    if (!CLIENT_NAME_PATTERN.test(clientName)) {
      throw new ApiKeysFileError(
        'the client name must be 1 to 64 characters of A-Z, a-z, 0-9, `.`, `_` and `-`',
        lineNo,
      );
    }
    if (key === '')
      throw new ApiKeysFileError(`the key of client "${clientName}" is empty`, lineNo);
    if (/\s/.test(key)) {
      throw new ApiKeysFileError(`the key of client "${clientName}" contains whitespace`, lineNo);
    }
    const nameSeen = lineOfName.get(clientName);
    if (nameSeen !== undefined) {
      throw new ApiKeysFileError(
        `client "${clientName}" is already defined on line ${nameSeen}`,
        lineNo,
      );
    }
    const keySeen = lineOfKey.get(key);
    if (keySeen !== undefined) {
      // Two clients with one key could not be told apart; name the other line, not the key.
      throw new ApiKeysFileError(
        `the key of client "${clientName}" is the same as the key on line ${keySeen}`,
        lineNo,
      );
    }
    lineOfName.set(clientName, lineNo);
    lineOfKey.set(key, lineNo);
    entries.push({ clientName, key });
  }
  if (entries.length === 0) {
    throw new ApiKeysFileError('the file holds no keys (only blank lines and comments)');
  }
  return entries;
}

/** Compares two equal-length digests; injectable so tests can count the comparisons. */
export type DigestCompare = (a: Buffer, b: Buffer) => boolean;

export interface ApiKeyStoreOptions {
  readonly compare?: DigestCompare;
}

interface StoredKey {
  readonly clientName: string;
  readonly digest: Buffer;
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/**
 * Keys by client, held as SHA-256 digests. verify() hashes the presented key (so both sides have
 * the same length, which timingSafeEqual needs, and the key's length does not show in the
 * timing) and compares it against every stored digest without stopping at a match, so the time
 * taken does not reveal which entry matched or whether any did.
 */
export class ApiKeyStore {
  #keys: readonly StoredKey[];
  readonly #compare: DigestCompare;

  constructor(entries: readonly ApiKeyEntry[], options: ApiKeyStoreOptions = {}) {
    this.#compare = options.compare ?? timingSafeEqual;
    this.#keys = ApiKeyStore.#digest(entries);
  }

  static #digest(entries: readonly ApiKeyEntry[]): StoredKey[] {
    return entries.map((e) => ({ clientName: e.clientName, digest: sha256(e.key) }));
  }

  /** The client whose key this is, or undefined. */
  verify(presentedKey: string): string | undefined {
    const presented = sha256(presentedKey);
    let match: string | undefined;
    for (const stored of this.#keys) {
      // No early exit: every stored key costs one comparison whatever the outcome.
      const equal = this.#compare(presented, stored.digest);
      if (equal) match = stored.clientName;
    }
    return match;
  }

  /** Swaps in a new set of keys at once (a reload); requests in flight keep their result. */
  replace(entries: readonly ApiKeyEntry[]): void {
    this.#keys = ApiKeyStore.#digest(entries);
  }

  get clientNames(): readonly string[] {
    return this.#keys.map((k) => k.clientName);
  }

  get size(): number {
    return this.#keys.length;
  }
}

/** What a reload did; carries client names and line numbers, never keys. */
export type ApiKeysReloadEvent =
  | { readonly kind: 'reloaded'; readonly clientNames: readonly string[] }
  | { readonly kind: 'rejected'; readonly error: Error };

export interface ApiKeysFileOptions extends ApiKeyStoreOptions {
  /** How often the file's content hash is checked; fs.watch alone misses events on some volumes. */
  readonly pollIntervalMs?: number;
  /** Called after every reload attempt that found changed content. */
  readonly onReload?: (event: ApiKeysReloadEvent) => void;
}

/** A keys file kept in step with its content: the store always holds the last good version. */
export interface ApiKeysFile {
  readonly path: string;
  readonly store: ApiKeyStore;
  /** Reads the file now; resolves once the store is updated (or the new content rejected). */
  reload(): Promise<void>;
  /** Stops watching and polling. */
  close(): void;
}

/**
 * Loads the keys file (rejecting with ApiKeysFileError when it cannot be read or parsed, which
 * stops the start) and keeps the store in step with it.
 *
 * A Kubernetes Secret volume rotates by writing a new timestamped directory and renaming the
 * `..data` symlink onto it; the file itself is a symlink through `..data`, so the file is never
 * written in place and a watch on the file would follow the old inode. Hence the watch is on the
 * directory, and a poll of the file's content hash backs it up where inotify events are not
 * delivered (some network and FUSE volumes). A new version that does not parse leaves the old keys
 * in place and is reported through onReload; the same broken content is reported once.
 */
export async function openApiKeysFile(
  path: string,
  options: ApiKeysFileOptions = {},
): Promise<ApiKeysFile> {
  const first = await readKeysFile(path);
  const store = new ApiKeyStore(parseApiKeys(first.text), options);
  let lastHash = first.hash;
  let closed = false;
  let running: Promise<void> | undefined;
  let again = false;
  const notify = (event: ApiKeysReloadEvent): void => {
    try {
      options.onReload?.(event);
    } catch {
      // A failing reporter must not stop the reloads (nor become an unhandled rejection).
    }
  };

  const attempt = async (): Promise<void> => {
    let next: { text: string; hash: string };
    try {
      next = await readKeysFile(path);
    } catch (err) {
      // Mid-rotation the path can vanish for an instant; report a change of state only once.
      const hash = `unreadable:${err instanceof Error ? err.message : String(err)}`;
      if (hash === lastHash) return;
      lastHash = hash;
      notify({ kind: 'rejected', error: toSafeError(err) });
      return;
    }
    if (next.hash === lastHash || closed) return;
    lastHash = next.hash;
    try {
      const entries = parseApiKeys(next.text);
      store.replace(entries);
      notify({ kind: 'reloaded', clientNames: store.clientNames });
    } catch (err) {
      notify({ kind: 'rejected', error: toSafeError(err) });
    }
  };

  // One read at a time; a change noticed during a read triggers one more read after it.
  const reload = (): Promise<void> => {
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await attempt();
        } while (again && !closed);
      } finally {
        running = undefined;
      }
    })();
    return running;
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, () => void reload());
    // A watch that fails later (directory removed, too many watches) leaves the poll in charge.
    watcher.on('error', () => {
      watcher?.close();
      watcher = undefined;
    });
  } catch {
    watcher = undefined;
  }
  // Not unref'd: the owner (the server) closes it on shutdown, like any other resource it opens.
  const pollMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const timer = setInterval(() => void reload(), pollMs);

  return {
    path,
    store,
    reload,
    close() {
      closed = true;
      clearInterval(timer);
      watcher?.close();
    },
  };
}

async function readKeysFile(path: string): Promise<{ text: string; hash: string }> {
  let bytes: Buffer;
  try {
    // A wrong path could name a large file: refuse it before reading it all into memory.
    const { size } = await stat(path);
    if (size > MAX_KEYS_FILE_BYTES) {
      throw new ApiKeysFileError(
        `the API keys file ${basename(path)} is ${size} bytes, more than ${MAX_KEYS_FILE_BYTES}`,
      );
    }
    bytes = await readFile(path);
  } catch (err) {
    if (err instanceof ApiKeysFileError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ApiKeysFileError(`cannot read the API keys file ${basename(path)} (${code})`);
  }
  return { text: bytes.toString('utf8'), hash: createHash('sha256').update(bytes).digest('hex') };
}

/** Our parse and read errors are key-free by construction; anything else is reduced to a name. */
function toSafeError(err: unknown): Error {
  if (err instanceof ApiKeysFileError) return err;
  return new ApiKeysFileError(
    `cannot load the API keys file (${err instanceof Error ? err.name : 'unknown error'})`,
  );
}

/** The credential a request carries, or why it carries none that can be checked. */
export type PresentedCredential =
  | { readonly kind: 'key'; readonly key: string; readonly source: 'authorization' | 'x-api-key' }
  | { readonly kind: 'missing' }
  /** An Authorization header with another scheme (Basic, Digest, ...). */
  | { readonly kind: 'wrong-scheme' }
  /** Present but unusable; `reason` says what to fix and never quotes the header. */
  | { readonly kind: 'malformed'; readonly reason: string };

type HeaderValue = string | string[] | undefined;

/**
 * Reads `Authorization: Bearer <key>` (RFC 6750 §2.1; the scheme is case-insensitive per RFC 9110
 * §11.1) or `x-api-key: <key>`. Both may be sent only if they agree.
 * https://www.rfc-editor.org/rfc/rfc6750#section-2.1, https://www.rfc-editor.org/rfc/rfc9110#section-11.1
 */
export function extractCredential(headers: {
  readonly authorization?: HeaderValue;
  readonly 'x-api-key'?: HeaderValue;
}): PresentedCredential {
  const auth = headers.authorization;
  const apiKey = headers['x-api-key'];
  let fromAuth: PresentedCredential | undefined;
  if (auth !== undefined) {
    if (Array.isArray(auth) || auth.trim() === '') {
      fromAuth = { kind: 'malformed', reason: 'send one non-empty Authorization header' };
    } else {
      const match = /^(\S+)(?:[ \t]+(.*))?$/.exec(auth.trim());
      const scheme = match?.[1] ?? '';
      const token = match?.[2]?.trim() ?? '';
      if (scheme.toLowerCase() !== 'bearer') fromAuth = { kind: 'wrong-scheme' };
      else if (token === '') {
        fromAuth = { kind: 'malformed', reason: 'the Bearer scheme carries no key' };
      } else if (/\s/.test(token)) {
        fromAuth = {
          kind: 'malformed',
          reason: 'the Bearer credential must be one key without spaces',
        };
      } else fromAuth = { kind: 'key', key: token, source: 'authorization' };
    }
  }
  let fromApiKey: PresentedCredential | undefined;
  if (apiKey !== undefined) {
    if (Array.isArray(apiKey)) {
      fromApiKey = { kind: 'malformed', reason: 'send one x-api-key header' };
    } else {
      const key = apiKey.trim();
      if (key === '') fromApiKey = { kind: 'malformed', reason: 'the x-api-key header is empty' };
      else if (/\s/.test(key)) {
        fromApiKey = { kind: 'malformed', reason: 'the x-api-key header must be one key' };
      } else fromApiKey = { kind: 'key', key, source: 'x-api-key' };
    }
  }
  if (fromAuth === undefined) return fromApiKey ?? { kind: 'missing' };
  if (fromApiKey === undefined) return fromAuth;
  if (fromAuth.kind === 'key' && fromApiKey.kind === 'key') {
    // Not a constant-time comparison: both values come from the same client, nothing is secret.
    if (fromAuth.key === fromApiKey.key) return fromAuth;
    return {
      kind: 'malformed',
      reason: 'Authorization and x-api-key carry different keys; send one of them',
    };
  }
  // One of the two is unusable: say what is wrong with it.
  return fromAuth.kind === 'key' ? fromApiKey : fromAuth;
}
