/**
 * Which Triton release can load which model: the one place that knows (pure, no I/O).
 *
 * A Triton container release (`24.01`) ships one Triton server core (`2.42.0`, what `GET /v2`
 * reports) and one onnxruntime (1.16.3), and the onnxruntime backend loads our graphs with it.
 * The table comes from Triton's container release notes and the frameworks support matrix,
 * https://docs.nvidia.com/deeplearning/triton-inference-server/release-notes/ ("Contents of the
 * Triton Inference Server container"). What each model needs was measured by opening every
 * variant with the onnxruntime releases Triton ships (test/triton-compat/).
 */

/** The chart's default image tag (chart/values.yaml seldon.triton.image); a test holds them equal. */
export const DEFAULT_TRITON_RELEASE = '24.01';

export interface TritonRelease {
  /** Container release, `YY.MM`. */
  readonly release: string;
  /** Triton server core version, as `GET /v2` reports it. */
  readonly server: string;
  /** The onnxruntime the release's onnxruntime backend is built with. */
  readonly onnxruntime: string;
}

/**
 * Releases from 21.08 (Seldon Core v1's default image) on. Triton publishes one release a month
 * and the server core's minor version goes up by one with each, so the two columns also check
 * each other (a test does).
 */
export const TRITON_RELEASES: readonly TritonRelease[] = Object.freeze(
  (
    [
      ['21.08', '2.13.0', '1.8.1'],
      ['21.09', '2.14.0', '1.8.1'],
      ['21.10', '2.15.0', '1.8.1'],
      ['21.11', '2.16.0', '1.9.0'],
      ['21.12', '2.17.0', '1.10.0'],
      ['22.01', '2.18.0', '1.10.0'],
      ['22.02', '2.19.0', '1.10.0'],
      ['22.03', '2.20.0', '1.10.0'],
      ['22.04', '2.21.0', '1.11.0'],
      ['22.05', '2.22.0', '1.11.1'],
      ['22.06', '2.23.0', '1.11.1'],
      ['22.07', '2.24.0', '1.12.0'],
      ['22.08', '2.25.0', '1.12.0'],
      ['22.09', '2.26.0', '1.12.1'],
      ['22.10', '2.27.0', '1.12.1'],
      ['22.11', '2.28.0', '1.13.1'],
      ['22.12', '2.29.0', '1.13.1'],
      ['23.01', '2.30.0', '1.13.1'],
      ['23.02', '2.31.0', '1.14.0'],
      ['23.03', '2.32.0', '1.14.1'],
      ['23.04', '2.33.0', '1.14.1'],
      ['23.05', '2.34.0', '1.15.0'],
      ['23.06', '2.35.0', '1.15.0'],
      ['23.07', '2.36.0', '1.15.1'],
      ['23.08', '2.37.0', '1.15.1'],
      ['23.09', '2.38.0', '1.16.0'],
      ['23.10', '2.39.0', '1.16.0'],
      ['23.11', '2.40.0', '1.16.2'],
      ['23.12', '2.41.0', '1.16.3'],
      ['24.01', '2.42.0', '1.16.3'],
      ['24.02', '2.43.0', '1.16.3'],
      ['24.03', '2.44.0', '1.17.1'],
      ['24.04', '2.45.0', '1.17.3'],
      ['24.05', '2.46.0', '1.18.0'],
      ['24.06', '2.47.0', '1.18.0'],
      ['24.07', '2.48.0', '1.18.1'],
      ['24.08', '2.49.0', '1.18.1'],
      ['24.09', '2.50.0', '1.19.2'],
      ['24.10', '2.51.0', '1.19.2'],
      ['24.11', '2.52.0', '1.20.1'],
      ['24.12', '2.53.0', '1.20.1'],
      ['25.01', '2.54.0', '1.20.1'],
      ['25.02', '2.55.0', '1.20.1'],
      ['25.03', '2.56.0', '1.21.0'],
      ['25.04', '2.57.0', '1.21.0'],
      ['25.05', '2.58.0', '1.22.0'],
      ['25.06', '2.59.0', '1.22.0'],
    ] as const
  ).map(([release, server, onnxruntime]) => Object.freeze({ release, server, onnxruntime })),
);

/** What decides where a model loads: the options `model build` was given. */
export interface ModelFacts {
  readonly variant: 'logits' | 'last' | 'next-token' | 'kv';
  readonly fused?: boolean;
  readonly quantize?: 'int8';
}

export interface Requirement {
  /** The first release that loads it. */
  readonly release: string;
  /** Why, in a few words: what is missing before that release. */
  readonly reason: string;
}

/** The oldest release any model is known to load on (the table's first row). */
const FLOOR: Requirement = {
  release: '21.08',
  reason: 'the oldest release this builder knows',
};
/** Implicit state with `initial_state` (Triton 22.01 release notes; our kv config needs it). */
const KV: Requirement = {
  release: '22.01',
  reason: "a kv model's implicit state needs initial_state",
};
/** MultiHeadAttention as --fused uses it: unknown to onnxruntime 1.10, other inputs in 1.14. */
const FUSED: Requirement = {
  release: '23.05',
  reason: '--fused needs onnxruntime 1.15 (MultiHeadAttention)',
};
/** 8-bit MatMulNBits: onnxruntime 1.16 rejects accuracy_level, 1.17–1.21 only take 4 bits. */
const INT8: Requirement = {
  release: '25.05',
  reason: '--quantize int8 needs onnxruntime 1.22 (8-bit MatMulNBits)',
};

interface ReleaseKey {
  year: number;
  month: number;
}

const RELEASE_PATTERN = /^(\d{2})\.(\d{2})(?:[.-].*)?$/;
const SERVER_PATTERN = /^2\.(\d+)\.\d+/;

/**
 * `24.01`, `24.01-py3`, or an image reference ending in such a tag
 * (`nvcr.io/nvidia/tritonserver:24.01-py3`). Throws on anything else.
 */
export function parseRelease(text: string): string {
  const tag = text.includes(':') ? text.slice(text.lastIndexOf(':') + 1) : text;
  const m = RELEASE_PATTERN.exec(tag);
  const month = Number(m?.[2]);
  if (m === null || month < 1 || month > 12) {
    throw new Error(`'${text}' is not a Triton release (YY.MM, e.g. ${DEFAULT_TRITON_RELEASE})`);
  }
  return `${m[1]}.${m[2]}`;
}

function key(release: string): ReleaseKey {
  const [y, m] = release.split('.');
  return { year: Number(y), month: Number(m) };
}

/** Negative, zero or positive as `a` is older than, the same as, or newer than `b`. */
export function compareReleases(a: string, b: string): number {
  const ka = key(parseRelease(a));
  const kb = key(parseRelease(b));
  return ka.year - kb.year || ka.month - kb.month;
}

/**
 * The table row for a release. A release newer than the table gets the newest row's runtime
 * (onnxruntime only moves forward) under its own name; one older than 21.08 is unknown.
 */
export function releaseInfo(release: string): TritonRelease | undefined {
  const r = parseRelease(release);
  const row = TRITON_RELEASES.find((t) => t.release === r);
  if (row !== undefined) return row;
  const newest = TRITON_RELEASES[TRITON_RELEASES.length - 1]!;
  if (compareReleases(r, newest.release) > 0) {
    return { release: r, server: 'unknown', onnxruntime: `>= ${newest.onnxruntime}` };
  }
  return undefined;
}

/**
 * The container release of a server core version from `GET /v2` (`2.42.0` → `24.01`).
 * Triton moves the core's minor version with each monthly release, so a version newer than the
 * table still maps to its month.
 */
export function releaseOfServer(serverVersion: string): string | undefined {
  const m = SERVER_PATTERN.exec(serverVersion.trim());
  if (m === null) return undefined;
  const minor = Number(m[1]);
  const row = TRITON_RELEASES.find((t) => Number(SERVER_PATTERN.exec(t.server)?.[1]) === minor);
  if (row !== undefined) return row.release;
  const first = TRITON_RELEASES[0]!;
  const firstMinor = Number(SERVER_PATTERN.exec(first.server)?.[1]);
  if (minor < firstMinor) return undefined;
  const months = key(first.release).year * 12 + key(first.release).month - 1 + minor - firstMinor;
  const year = Math.floor(months / 12);
  return `${String(year).padStart(2, '0')}.${String((months % 12) + 1).padStart(2, '0')}`;
}

/** Every requirement a model has, oldest first; the last one is the first release for it. */
export function requirementsOf(facts: ModelFacts): Requirement[] {
  const reqs = [FLOOR];
  if (facts.variant === 'kv') reqs.push(KV);
  if (facts.fused === true) reqs.push(FUSED);
  if (facts.quantize === 'int8') reqs.push(INT8);
  return reqs.sort((a, b) => compareReleases(a.release, b.release));
}

/** The first Triton release that can load a model built with these options, and why. */
export function firstReleaseFor(facts: ModelFacts): Requirement {
  const reqs = requirementsOf(facts);
  return reqs[reqs.length - 1]!;
}

function describe(facts: ModelFacts): string {
  return [
    `a ${facts.variant} model`,
    ...(facts.fused === true ? ['--fused'] : []),
    ...(facts.quantize === 'int8' ? ['--quantize int8'] : []),
  ].join(' with ');
}

/**
 * Why Triton `release` cannot load this model, or undefined when it can. The message names the
 * first release that can: "Triton 24.01 (onnxruntime 1.16.3) cannot load a kv model with
 * --quantize int8: --quantize int8 needs onnxruntime 1.22 (8-bit MatMulNBits); use Triton 25.05
 * or later".
 */
export function incompatibility(release: string, facts: ModelFacts): string | undefined {
  return explain(release, facts, (r, runtime) => `Triton ${r} (${runtime})`);
}

/**
 * For the gateway's Triton backend at start-up: `serverVersion` is `GET /v2`'s `version`
 * (`2.42.0`). Undefined when the model can work there, or when the version is not one we can
 * place (then nothing is claimed either way).
 */
export function explainIncompatibility(
  serverVersion: string,
  facts: ModelFacts,
): string | undefined {
  const release = releaseOfServer(serverVersion);
  if (release === undefined) return undefined;
  return explain(
    release,
    facts,
    (r, runtime) => `Triton server ${serverVersion} (release ${r}, ${runtime})`,
  );
}

function explain(
  release: string,
  facts: ModelFacts,
  subject: (release: string, runtime: string) => string,
): string | undefined {
  const r = parseRelease(release);
  const info = releaseInfo(r);
  const need = firstReleaseFor(facts);
  if (info !== undefined && compareReleases(r, need.release) >= 0) return undefined;
  const runtime = info === undefined ? 'an unknown onnxruntime' : `onnxruntime ${info.onnxruntime}`;
  // Every requirement the release misses, so that one message fixes them all.
  const missing = requirementsOf(facts).filter(
    (q) => q !== FLOOR && compareReleases(r, q.release) < 0,
  );
  const reasons =
    missing.length === 0
      ? `releases before ${FLOOR.release} are unknown to this builder`
      : missing.map((q) => q.reason).join('; ');
  return `${subject(r, runtime)} cannot load ${describe(facts)}: ${reasons}; use Triton ${need.release} or later`;
}

/**
 * Facts from a model file's metadata (`gpt2.*` properties that `model build` writes; see
 * build.ts), for whoever has the file; undefined when the file was not built by us.
 */
export function modelFactsFromProperties(
  properties: Readonly<Record<string, string>>,
): ModelFacts | undefined {
  const variant = properties['gpt2.variant'];
  if (variant !== 'logits' && variant !== 'last' && variant !== 'next-token' && variant !== 'kv') {
    return undefined;
  }
  return {
    variant,
    fused: properties['gpt2.graph'] === 'fused',
    ...(properties['gpt2.weights_dtype'] === 'int8' ? { quantize: 'int8' as const } : {}),
  };
}
