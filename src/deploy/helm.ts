/**
 * A typed wrapper over the real `helm` binary. Arguments go to execFile as an array — never a
 * shell string — so release names and values cannot inject commands (helm-ts builds shell
 * strings; the README says why it is not used).
 */
import { execFile } from 'node:child_process';

const DEFAULT_BINARY = 'helm';
/** Rendered manifests and `-o json` releases can be large; helm's own output is never streamed. */
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 10 * 60_000;

export interface HelmOptions {
  /** Path of the helm executable (default: `helm` on PATH). */
  binary?: string;
  kubeconfig?: string;
  kubeContext?: string;
  /** Kill helm after this long (ms). */
  timeoutMs?: number;
}

export interface ValuesOptions {
  namespace: string;
  valuesFiles?: readonly string[];
  /** `key=value` pairs passed as --set. */
  set?: readonly string[];
}

/** The parts of a helm release (`helm status -o json`) we use. */
export interface HelmRelease {
  name: string;
  namespace: string;
  revision: number;
  status: string;
  description: string;
  chart: string;
}

export class HelmError extends Error {
  override readonly name = 'HelmError';
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
  }
}

export class Helm {
  readonly #binary: string;
  readonly #globalArgs: string[];
  readonly #timeoutMs: number;

  constructor(options: HelmOptions = {}) {
    this.#binary = options.binary ?? DEFAULT_BINARY;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#globalArgs = [];
    if (options.kubeconfig !== undefined) this.#globalArgs.push('--kubeconfig', options.kubeconfig);
    if (options.kubeContext !== undefined)
      this.#globalArgs.push('--kube-context', options.kubeContext);
  }

  /** Runs helm with these arguments; resolves with stdout, rejects with a HelmError. */
  run(args: readonly string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        this.#binary,
        [...args, ...this.#globalArgs],
        { maxBuffer: MAX_OUTPUT_BYTES, timeout: this.#timeoutMs, encoding: 'utf8' },
        (err, stdout, stderr) => {
          if (err === null) {
            resolve(stdout);
            return;
          }
          const code = typeof err.code === 'number' ? err.code : null;
          if (err.code === 'ENOENT') {
            reject(
              new HelmError(
                `cannot run '${this.#binary}': not found (install helm or pass --helm PATH)`,
                null,
                '',
              ),
            );
            return;
          }
          const said = stderr.trim().split('\n').filter(Boolean).at(-1) ?? err.message;
          const why = err.killed ? `killed after ${this.#timeoutMs} ms` : said;
          reject(new HelmError(`helm ${args[0] ?? ''} failed: ${why}`, code, stderr));
        },
      );
    });
  }

  template(release: string, chart: string, options: ValuesOptions): Promise<string> {
    return this.run(['template', release, chart, ...valuesArgs(options)]);
  }

  lint(chart: string, valuesFiles: readonly string[] = []): Promise<string> {
    return this.run(['lint', '--strict', chart, ...valuesFiles.flatMap((f) => ['--values', f])]);
  }

  /** `helm upgrade --install`; waiting for readiness is ours (see wait.ts), not helm's. */
  async upgradeInstall(
    release: string,
    chart: string,
    options: ValuesOptions & { createNamespace?: boolean },
  ): Promise<HelmRelease> {
    const args = ['upgrade', '--install', release, chart, ...valuesArgs(options), '-o', 'json'];
    if (options.createNamespace === true) args.push('--create-namespace');
    return parseRelease(await this.run(args));
  }

  /** The release, or null when helm says it does not exist. */
  async status(release: string, namespace: string): Promise<HelmRelease | null> {
    try {
      return parseRelease(
        await this.run(['status', release, '--namespace', namespace, '-o', 'json']),
      );
    } catch (err) {
      if (err instanceof HelmError && /not found/i.test(err.stderr)) return null;
      throw err;
    }
  }

  async uninstall(release: string, namespace: string): Promise<void> {
    await this.run(['uninstall', release, '--namespace', namespace]);
  }
}

function valuesArgs(options: ValuesOptions): string[] {
  const args = ['--namespace', options.namespace];
  for (const file of options.valuesFiles ?? []) args.push('--values', file);
  for (const pair of options.set ?? []) args.push('--set', pair);
  return args;
}

function parseRelease(stdout: string): HelmRelease {
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    throw new HelmError(`helm printed something that is not JSON: ${stdout.slice(0, 200)}`, 0, '');
  }
  const r = asRecord(json);
  const info = asRecord(r.info);
  const chart = asRecord(asRecord(r.chart).metadata);
  if (typeof r.name !== 'string' || typeof info.status !== 'string') {
    throw new HelmError('helm printed a release without name or info.status', 0, '');
  }
  return {
    name: r.name,
    namespace: typeof r.namespace === 'string' ? r.namespace : '',
    revision: typeof r.version === 'number' ? r.version : 0,
    status: info.status,
    description: typeof info.description === 'string' ? info.description : '',
    chart:
      typeof chart.name === 'string' ? `${chart.name}-${String(chart.version ?? '')}` : 'unknown',
  };
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}
