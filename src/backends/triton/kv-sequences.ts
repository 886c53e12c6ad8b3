/**
 * The life of kv sequences under Triton's implicit state (Triton docs, "Stateful Models" and the
 * sequence batcher; docs/triton-notes.md). Each generation gets its own correlation id; its first
 * call carries sequence_start, every call only the tokens Triton has not seen, and the sequence
 * is always ended — on completion, cancellation and error alike — because an open sequence holds
 * a slot of the sequence batcher until Triton reaps it as idle.
 */
import { getRandomValues } from 'node:crypto';
import type { KvSignature } from '../../contract/signature.js';
import type { Parameters } from '../../kserve/messages.js';
import { BackendError, type StepRequest, type StepResult } from '../backend.js';
import type { Logger } from './health.js';
import type { Infer } from './infer-call.js';
import { kvInputs, readRow } from './tensors.js';

interface KvSequence {
  readonly correlationId: number;
  /** Tokens the upstream has seen for this sequence (its implicit state covers them). */
  seen: number;
  lastToken: number;
  /** A START went out, so an END is owed. */
  started: boolean;
}

/**
 * A non-zero correlation id that fits a uint64 and a JS number (53 random bits), unique across
 * gateway replicas that share one Triton.
 */
function newCorrelationId(): number {
  const [r] = getRandomValues(new BigUint64Array(1));
  return Number((r ?? 1n) >> 11n) || 1;
}

function parameters(seq: KvSequence, start: boolean, end: boolean): Parameters {
  return { sequence_id: seq.correlationId, sequence_start: start, sequence_end: end };
}

export class KvSequences {
  readonly #signature: KvSignature;
  readonly #infer: Infer;
  readonly #log: Logger;
  readonly #live = new Map<number, KvSequence>();
  readonly #ending = new Set<Promise<void>>();

  constructor(signature: KvSignature, infer: Infer, log: Logger) {
    this.#signature = signature;
    this.#infer = infer;
    this.#log = log;
  }

  /** The gateway's ids of the sequences not yet released. */
  get live(): number[] {
    return [...this.#live.keys()];
  }

  async step(r: StepRequest, signal: AbortSignal | undefined): Promise<StepResult> {
    let seq = this.#live.get(r.sequenceId);
    if (seq === undefined) {
      seq = { correlationId: newCorrelationId(), seen: 0, lastToken: 0, started: false };
      this.#live.set(r.sequenceId, seq);
    }
    const fresh = r.tokens.slice(seq.seen);
    if (fresh.length === 0)
      throw new BackendError('BACKEND_ERROR', `sequence ${r.sequenceId} brought no new token`);
    const start = !seq.started;
    seq.started = true;
    const outputs = await this.#infer(
      kvInputs(this.#signature, fresh, seq.seen),
      parameters(seq, start, false),
      signal,
    );
    seq.seen += fresh.length;
    seq.lastToken = fresh[fresh.length - 1] as number;
    return readRow(this.#signature, outputs, 0, 1, fresh.length, fresh.length);
  }

  /**
   * Ends the sequence in the background: the scheduler awaits release() before answering the
   * client and stepping the others, and the END call is a whole round trip plus a forward pass.
   * settled() waits for every END still in flight.
   */
  release(sequenceId: number): void {
    const seq = this.#live.get(sequenceId);
    this.#live.delete(sequenceId);
    if (seq === undefined || !seq.started) return;
    const ending = this.#end(seq, sequenceId).finally(() => this.#ending.delete(ending));
    this.#ending.add(ending);
  }

  /** Resolves once every END sent so far has been answered. */
  async settled(): Promise<void> {
    while (this.#ending.size > 0) await Promise.all([...this.#ending]);
  }

  async #end(seq: KvSequence, sequenceId: number): Promise<void> {
    // Triton has no END without an inference: send the last token once more, ignore the answer.
    try {
      await this.#infer(
        kvInputs(this.#signature, [seq.lastToken], seq.seen),
        parameters(seq, false, true),
        undefined,
        'sequence_end',
      );
    } catch (err) {
      this.#log.warn(
        { err, sequenceId, correlationId: seq.correlationId },
        'ending a Triton sequence failed; Triton will reap it when idle',
      );
    }
  }
}
