/**
 * Downloads GPT-2 family checkpoints from the Hugging Face hub.
 *
 * URL layout: `<endpoint>/<repo>/resolve/<revision>/<file>`. The hub answers a HEAD on that URL
 * (without following its redirect) with `X-Repo-Commit`, and for LFS files (the weights) with
 * `X-Linked-Size` and `X-Linked-Etag: "<sha256 of the content>"` before redirecting to its CDN;
 * small git files carry a git-blob `ETag` (not a sha256) and `Content-Length`. So: size is always
 * checked, sha256 whenever the hub states one. Downloads go to `<file>.part` and resume with
 * `Range: bytes=<have>-` after a dropped connection (also across runs); the file appears under its
 * name only once complete and verified. The token goes to the hub only: fetch drops the
 * Authorization header on the cross-origin redirect to the CDN.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_REVISION = 'main';
/** What a GPT-2 build needs: the hyperparameters and the weights. */
export const DEFAULT_FILES: readonly string[] = ['config.json', 'model.safetensors'];
/** Attempts per file; each retry resumes where the last one stopped. */
const MAX_ATTEMPTS = 5;
const RETRY_DELAY_MS = 1000;
const PROGRESS_INTERVAL_MS = 200;
/** Same-host redirects followed by the metadata request (repo renames). */
const MAX_HUB_REDIRECTS = 5;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/;

export interface PullOptions {
  /** e.g. `gpt2`, `distilgpt2`, `openai-community/gpt2-medium`. */
  repo: string;
  dir: string;
  revision?: string;
  files?: readonly string[];
  /** HF_ENDPOINT. */
  endpoint?: string;
  /** HF_TOKEN; sent as a bearer token to the hub. */
  token?: string;
  /** Where to draw the progress bar; omit for none. The CLI passes stderr when it is a TTY. */
  progress?: NodeJS.WritableStream;
  retryDelayMs?: number;
}

export interface PulledFile {
  file: string;
  path: string;
  bytes: number;
  /** Checked against the hub's value when it published one. */
  sha256: string;
  verified: 'sha256' | 'size';
  /** Bytes that were already on disk from an earlier, interrupted download. */
  resumedFrom: number;
  skipped: boolean;
}

interface Remote {
  size: number;
  sha256: string | undefined;
  commit: string | undefined;
}

/** A download failure worth retrying (network, 5xx), as opposed to a definite answer. */
class TransientError extends Error {}

function unquoteEtag(v: string | null): string | undefined {
  if (v === null) return undefined;
  return v.replace(/^W\//, '').replace(/^"|"$/g, '');
}

export function fileUrl(endpoint: string, repo: string, revision: string, file: string): string {
  const path = file.split('/').map(encodeURIComponent).join('/');
  return `${endpoint.replace(/\/+$/, '')}/${repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}

function authHeaders(token: string | undefined): Record<string, string> {
  return token === undefined || token === '' ? {} : { authorization: `Bearer ${token}` };
}

function httpProblem(status: number, what: string, token: string | undefined): Error {
  if (status === 401 || status === 403) {
    return new Error(
      `${what}: the hub answered ${status}${token ? ' (is HF_TOKEN valid for this repo?)' : ' (a gated or private repo needs HF_TOKEN)'}`,
    );
  }
  if (status === 404)
    return new Error(`${what}: not found (check the repo id, revision and file name)`);
  if (status >= 500 || status === 429)
    return new TransientError(`${what}: the hub answered ${status}`);
  return new Error(`${what}: the hub answered ${status}`);
}

async function head(url: string, what: string, token: string | undefined): Promise<Remote> {
  let res: Response | undefined;
  let current = url;
  for (let hop = 0; hop <= MAX_HUB_REDIRECTS; hop++) {
    try {
      // Redirects are not followed blindly: the LFS headers are on the hub's own answer, before
      // its redirect to the CDN.
      res = await fetch(current, {
        method: 'HEAD',
        redirect: 'manual',
        headers: { ...authHeaders(token), 'accept-encoding': 'identity' },
      });
    } catch (err) {
      throw new TransientError(
        `${what}: cannot reach ${new URL(current).origin} (${(err as Error).cause ?? (err as Error).message})`,
      );
    }
    // A renamed repo (gpt2 → openai-community/gpt2) answers 307 to a path on the hub itself:
    // follow those, as huggingface_hub does; a redirect elsewhere is the CDN.
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || location === null) break;
    const next = new URL(location, current);
    if (next.origin !== new URL(current).origin || res.headers.has('x-linked-size')) break;
    current = next.href;
  }
  if (res === undefined) throw new Error(`${what}: no answer`);
  if (res.status >= 400) throw httpProblem(res.status, what, token);
  const linkedSize = res.headers.get('x-linked-size');
  const length = linkedSize ?? res.headers.get('content-length');
  const size = length === null ? Number.NaN : Number(length);
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new Error(
      `${what}: the hub did not state the file size (no X-Linked-Size or Content-Length)`,
    );
  }
  const etag =
    unquoteEtag(res.headers.get('x-linked-etag')) ?? unquoteEtag(res.headers.get('etag'));
  return {
    size,
    sha256: etag !== undefined && SHA256_HEX.test(etag) ? etag : undefined,
    commit: res.headers.get('x-repo-commit') ?? undefined,
  };
}

async function hashFile(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

function formatMB(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

class ProgressBar {
  private last = 0;
  private readonly started = performance.now();
  constructor(
    private readonly out: NodeJS.WritableStream | undefined,
    private readonly label: string,
    private readonly total: number,
    private readonly startAt: number,
  ) {}

  update(done: number, force = false): void {
    if (this.out === undefined) return;
    const now = performance.now();
    if (!force && now - this.last < PROGRESS_INTERVAL_MS) return;
    this.last = now;
    const frac = this.total === 0 ? 1 : done / this.total;
    const width = 30;
    const filled = Math.round(frac * width);
    const rate = (done - this.startAt) / Math.max((now - this.started) / 1000, 1e-3);
    this.out.write(
      `\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${formatMB(done)}/${formatMB(this.total)} MB ${formatMB(rate)} MB/s`,
    );
  }

  finish(done: number): void {
    this.update(done, true);
    this.out?.write('\n');
  }
}

/** One GET from `have` onwards, appended to the part file; returns the new length. */
async function fetchRest(
  url: string,
  part: string,
  have: number,
  remote: Remote,
  what: string,
  token: string | undefined,
  bar: ProgressBar,
): Promise<number> {
  const headers: Record<string, string> = { ...authHeaders(token), 'accept-encoding': 'identity' };
  if (have > 0) headers.range = `bytes=${have}-`;
  let res: Response;
  try {
    res = await fetch(url, { headers, redirect: 'follow' });
  } catch (err) {
    throw new TransientError(
      `${what}: connection failed (${(err as Error).cause ?? (err as Error).message})`,
    );
  }
  if (res.status >= 400) {
    await res.body?.cancel();
    throw httpProblem(res.status, what, token);
  }
  let at = have;
  if (have > 0 && res.status !== 206) at = 0; // the server ignored Range: start over
  const fh = await open(part, at === 0 ? 'w' : 'a');
  let tooLong = false;
  try {
    if (res.body === null) throw new TransientError(`${what}: empty response`);
    try {
      for await (const chunk of res.body) {
        if (at + chunk.length > remote.size) {
          tooLong = true;
          break;
        }
        await fh.write(chunk);
        at += chunk.length;
        bar.update(at);
      }
    } catch (err) {
      throw new TransientError(
        `${what}: connection dropped at byte ${at} (${(err as Error).message})`,
      );
    }
  } finally {
    await fh.close();
  }
  if (tooLong) {
    await rm(part, { force: true });
    throw new Error(
      `${what}: the server sent more than the ${remote.size} bytes the hub announced`,
    );
  }
  return at;
}

async function pullFile(
  o: Required<Pick<PullOptions, 'repo' | 'dir' | 'revision' | 'endpoint' | 'retryDelayMs'>> &
    PullOptions,
  file: string,
): Promise<PulledFile> {
  const what = `${o.repo}@${o.revision}/${file}`;
  const url = fileUrl(o.endpoint, o.repo, o.revision, file);
  const target = join(o.dir, file);
  const part = `${target}.part`;
  await mkdir(dirname(target), { recursive: true });
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    try {
      const remote = await head(url, what, o.token);
      const existing = await sizeOf(target);
      if (existing === remote.size) {
        const hash = createHash('sha256');
        await hashFile(target, hash);
        const digest = hash.digest('hex');
        if (remote.sha256 === undefined || digest === remote.sha256) {
          return {
            file,
            path: target,
            bytes: existing,
            sha256: digest,
            verified: remote.sha256 ? 'sha256' : 'size',
            resumedFrom: 0,
            skipped: true,
          };
        }
      }
      let have = (await sizeOf(part)) ?? 0;
      if (have > remote.size) {
        await rm(part);
        have = 0;
      }
      const resumedFrom = have;
      const bar = new ProgressBar(o.progress, file, remote.size, have);
      let got = have;
      if (have < remote.size) got = await fetchRest(url, part, have, remote, what, o.token, bar);
      else await open(part, 'a').then((fh) => fh.close());
      bar.finish(got);
      if (got !== remote.size) {
        throw new TransientError(`${what}: got ${got} of ${remote.size} bytes`);
      }
      const hash = createHash('sha256');
      await hashFile(part, hash);
      const digest = hash.digest('hex');
      if (remote.sha256 !== undefined && digest !== remote.sha256) {
        await rm(part, { force: true });
        throw new Error(
          `${what}: sha256 mismatch (expected ${remote.sha256}, got ${digest}); the corrupt download was deleted, run the command again`,
        );
      }
      await rename(part, target);
      return {
        file,
        path: target,
        bytes: got,
        sha256: digest,
        verified: remote.sha256 ? 'sha256' : 'size',
        resumedFrom,
        skipped: false,
      };
    } catch (err) {
      if (!(err instanceof TransientError)) throw err;
      lastError = err;
      if (attempt < MAX_ATTEMPTS && o.retryDelayMs > 0) await sleep(o.retryDelayMs * attempt);
    }
  }
  throw new Error(
    `${lastError?.message} (gave up after ${MAX_ATTEMPTS} attempts; run again to resume)`,
  );
}

export async function pullModel(opts: PullOptions): Promise<PulledFile[]> {
  if (!REPO_ID.test(opts.repo)) {
    throw new Error(
      `"${opts.repo}" is not a hub repo id (like gpt2 or openai-community/gpt2-medium)`,
    );
  }
  const o = {
    ...opts,
    revision: opts.revision ?? DEFAULT_REVISION,
    endpoint: opts.endpoint ?? DEFAULT_ENDPOINT,
    retryDelayMs: opts.retryDelayMs ?? RETRY_DELAY_MS,
  };
  const out: PulledFile[] = [];
  for (const file of opts.files ?? DEFAULT_FILES) {
    if (file.split('/').some((seg) => seg === '..' || seg === '')) {
      throw new Error(`file name "${file}" must be a path inside the repo`);
    }
    out.push(await pullFile(o, file));
  }
  return out;
}
