/**
 * The kv steps of the embedded backend over an onnxruntime session and a KvCache: each new
 * sequence's prompt is prefilled once (several together when they arrive together), then each
 * step feeds only the new token with that sequence's cache. Decodes of several sequences run as
 * one batch — pasts left-padded to a common length, padding masked out with attention_mask zeros
 * and positions given explicitly (the Optimum convention allows this) — so that on CPU the
 * weights are read once per step for all of them. The greedy choice comes from the graph's
 * next_token and logprob outputs where the model has them, else from its logits here.
 */
import type * as ort from 'onnxruntime-node';
import type { KvSignature } from '../../contract/signature.js';
import { BackendError, type StepCost, type StepRequest, type StepResult } from '../backend.js';
import { greedyAtLastPosition, type IdArray, ids, PAD_ID } from './feeds.js';
import { floatData, type KvCache } from './kv-cache.js';

/** A decode row longer than this many times the median decode row runs outside the group… */
const ALONE_LENGTH_FACTOR = 4;
/** …once it is longer than this: below it, padding costs less than another run. */
const ALONE_MIN_LENGTH = 256;

/** A kv step's results, in the order of the batch, and the time its runs took. */
export interface KvStep {
  readonly results: (StepResult | undefined)[];
  readonly cost: StepCost;
}

/**
 * One step of a kv model. A prefill chunk (`wantToken: false`) runs like any other request — its
 * tokens extend the sequence's cache — but no greedy choice is made for it (that is a pass over
 * the vocabulary saved). The runs that feed prompt tokens are timed apart from the decodes.
 */
export async function stepKv(
  session: ort.InferenceSession,
  sig: KvSignature,
  cache: KvCache,
  batch: readonly StepRequest[],
  batchTogether: boolean,
): Promise<KvStep> {
  const results = new Array<StepResult | undefined>(batch.length);
  const cost = { prefillMs: 0, decodeMs: 0 };
  const timed = async <T>(part: keyof typeof cost, run: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await run();
    } finally {
      cost[part] += performance.now() - started;
    }
  };
  const decode: number[] = [];
  for (const [b, r] of batch.entries()) {
    const length = cache.length(r.sequenceId);
    // A one-token prompt chunk that wants no token is prompt work, not a decode.
    if (length !== undefined && r.tokens.length === length + 1 && wanted(r)) decode.push(b);
  }
  const grouped =
    batchTogether && decode.length > 1
      ? groupable(decode, (b) => cache.length((batch[b] as StepRequest).sequenceId) as number)
      : [];
  const batched = grouped.length > 1;
  const decodeRows = grouped.map((b) => batch[b] as StepRequest);
  // Rows leaving the decode group are copied out here: decode work when this step decodes, else
  // part of the step's prompt work (a decode cost with no decode would read as a tiny usual gap).
  await timed(decode.length > 0 ? 'decodeMs' : 'prefillMs', async () =>
    cache.keepGroupOnlyFor(batched ? decodeRows.map((r) => r.sequenceId) : undefined),
  );
  // New sequences are prefilled together (one read of the weights for all their prompts);
  // anything else that is not a batched decode runs one sequence at a time.
  const prefill = batch.flatMap((r, b) => (cache.has(r.sequenceId) ? [] : [b]));
  const batchedPrefill = prefill.length > 1 && batchTogether;
  if (batchedPrefill) {
    const rows = prefill.map((b) => batch[b] as StepRequest);
    const out = await timed('prefillMs', () => prefillTogether(session, sig, cache, rows));
    prefill.forEach((b, i) => {
      results[b] = out[i];
    });
  }
  for (const [b, r] of batch.entries()) {
    if ((batched && grouped.includes(b)) || (batchedPrefill && prefill.includes(b))) continue;
    const part = decode.includes(b) ? 'decodeMs' : 'prefillMs';
    results[b] = await timed(part, () => runOne(session, sig, cache, r));
  }
  if (batched) {
    const out = await timed('decodeMs', () => runGroup(session, sig, cache, decodeRows));
    grouped.forEach((b, i) => {
      results[b] = out[i];
    });
  }
  return { results, cost };
}

/**
 * The decodes that run as one group: all but rows far longer than the median, which run alone.
 * Every row of a group is padded to the longest, and on CPU that costs more than one more run:
 * gpt2 on two cores decoded a 46-token and a 1000-token sequence in 27 + 75 ms apart, but in
 * 130-150 ms together, and 320 ms the step they were grouped (the copy that forms the group).
 */
function groupable(decode: readonly number[], lengthOf: (b: number) => number): number[] {
  const lengths = decode.map(lengthOf).sort((x, y) => x - y);
  const median = lengths[Math.floor((lengths.length - 1) / 2)] as number;
  const limit = Math.max(ALONE_MIN_LENGTH, ALONE_LENGTH_FACTOR * median);
  return decode.filter((b) => lengthOf(b) <= limit);
}

function wanted(r: StepRequest): boolean {
  return r.wantToken !== false;
}

/** Feeds for a kv run; the pasts in the order of the signature's layers (key, value). */
function kvFeeds(
  sig: KvSignature,
  shape: { rows: number; width: number; total: number },
  values: { tokens: number[]; mask: number[]; positions: number[] },
  past: readonly ort.Tensor[],
): Record<string, ort.Tensor> {
  const { rows, width, total } = shape;
  const feeds: Record<string, ort.Tensor> = {
    [sig.inputIds.name]: ids(sig.inputIds, values.tokens, [rows, width]),
    [sig.attentionMask.name]: ids(sig.attentionMask, values.mask, [rows, total]),
    [sig.positionIds.name]: ids(sig.positionIds, values.positions, [rows, width]),
  };
  sig.kv.layers.forEach((layer, i) => {
    feeds[layer.pastKey] = past[2 * i] as ort.Tensor;
    feeds[layer.pastValue] = past[2 * i + 1] as ort.Tensor;
  });
  return feeds;
}

/** The present outputs' names, in the order of the signature's layers (key, value). */
function presentNames(sig: KvSignature): string[] {
  return sig.kv.layers.flatMap((layer) => [layer.presentKey, layer.presentValue]);
}

/**
 * What a run fetches: the presents, and, when a row wants its token, the graph's greedy outputs
 * where it has them (12 bytes a row, the pass over the vocabulary done by onnxruntime) or else the
 * logits (201 KB a row, the pass done here).
 */
function fetchNames(sig: KvSignature, rows: readonly StepRequest[]): string[] {
  const presents = presentNames(sig);
  if (!rows.some(wanted)) return presents;
  const { greedy, logits } = sig.outputs;
  return greedy === undefined
    ? [logits.name, ...presents]
    : [greedy.nextToken.name, greedy.logprob.name, ...presents];
}

/** Row b's greedy choice from a run's outputs, as fetchNames() asked for them. */
function chosen(
  sig: KvSignature,
  out: ort.InferenceSession.OnnxValueMapType,
  b: number,
): StepResult {
  const { greedy, logits } = sig.outputs;
  if (greedy === undefined) return greedyAtLastPosition(out[logits.name], b);
  const token = out[greedy.nextToken.name]?.data as IdArray | undefined;
  const logprob = floatData(out[greedy.logprob.name], greedy.logprob.name)[b];
  if (token?.[b] === undefined || logprob === undefined) {
    throw new BackendError('BACKEND_BAD_RESPONSE', `the model returned no next_token for row ${b}`);
  }
  return { tokenId: Number(token[b]), logprob };
}

/** The presents of a run, in the order of presentNames(). */
function presentsOf(sig: KvSignature, out: ort.InferenceSession.OnnxValueMapType): ort.Tensor[] {
  return presentNames(sig).map((name) => {
    const t = out[name];
    if (t === undefined)
      throw new BackendError('BACKEND_BAD_RESPONSE', `the model returned no ${name}`);
    return t;
  });
}

/** One sequence with a cache of its own: feed the tokens the cache has not seen. */
async function runOne(
  session: ort.InferenceSession,
  sig: KvSignature,
  cache: KvCache,
  r: StepRequest,
): Promise<StepResult | undefined> {
  const own = cache.own(r.sequenceId);
  const fresh = r.tokens.slice(own.length);
  if (fresh.length === 0) {
    throw new BackendError('BACKEND_BAD_RESPONSE', `sequence ${r.sequenceId} has no new tokens`);
  }
  const total = own.length + fresh.length;
  const feeds = kvFeeds(
    sig,
    { rows: 1, width: fresh.length, total },
    {
      tokens: fresh,
      mask: new Array<number>(total).fill(1),
      positions: fresh.map((_, k) => own.length + k),
    },
    own.past,
  );
  const out = await session.run(feeds, fetchNames(sig, [r]));
  const result = wanted(r) ? chosen(sig, out, 0) : undefined;
  // The presents become the next step's pasts as they are: no copy.
  cache.storeOwn(r.sequenceId, presentsOf(sig, out), total);
  return result;
}

/**
 * Prompts of several new sequences in one run: left-padded to the longest, padding masked,
 * positions counted from each prompt's first real token. Each keeps its own cache, without
 * the padding.
 */
async function prefillTogether(
  session: ort.InferenceSession,
  sig: KvSignature,
  cache: KvCache,
  rows: readonly StepRequest[],
): Promise<(StepResult | undefined)[]> {
  const W = Math.max(...rows.map((r) => r.tokens.length));
  const tokens: number[] = [];
  const mask: number[] = [];
  const positions: number[] = [];
  for (const r of rows) {
    const pad = W - r.tokens.length;
    for (let k = 0; k < W; k++) {
      tokens.push(k < pad ? PAD_ID : (r.tokens[k - pad] as number));
      mask.push(k < pad ? 0 : 1);
      positions.push(k < pad ? 0 : k - pad);
    }
  }
  const feeds = kvFeeds(
    sig,
    { rows: rows.length, width: W, total: W },
    { tokens, mask, positions },
    cache.emptyPast(rows.length),
  );
  const out = await session.run(feeds, fetchNames(sig, rows));
  const presents = presentNames(sig).map((name) => floatData(out[name], name));
  cache.storeRows(
    rows.map((r) => r.sequenceId),
    rows.map((r) => r.tokens.length),
    presents,
    W,
  );
  return rows.map((r, b) => (wanted(r) ? chosen(sig, out, b) : undefined));
}

/**
 * One-token decodes of several sequences in one run. Rows are left-padded to the longest
 * cache and the padding masked out; positions are explicit, so each row computes exactly what
 * it would alone.
 */
async function runGroup(
  session: ort.InferenceSession,
  sig: KvSignature,
  cache: KvCache,
  rows: readonly StepRequest[],
): Promise<(StepResult | undefined)[]> {
  const members = rows.map((r) => r.sequenceId);
  const group = cache.groupPast(members);
  const lengths = members.map((id) => cache.length(id) as number);
  const P = group.width;
  const mask: number[] = [];
  for (const length of lengths) {
    for (let k = 0; k < P + 1; k++) mask.push(k < P - length ? 0 : 1);
  }
  const feeds = kvFeeds(
    sig,
    { rows: rows.length, width: 1, total: P + 1 },
    { tokens: rows.map((r) => r.tokens.at(-1) as number), mask, positions: lengths },
    group.past,
  );
  const out = await session.run(feeds, fetchNames(sig, rows));
  cache.advanceGroup(members, presentsOf(sig, out), lengths);
  return rows.map((r, b) => (wanted(r) ? chosen(sig, out, b) : undefined));
}
