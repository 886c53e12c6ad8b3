/**
 * One greedy generation: the tokens it produced, when, and why it ended. The scheduler drives it
 * one step at a time; it owns the stop rules (EOS, max_new_tokens, stop strings), incremental
 * decoding and per-token timings, so the same logic serves JSON and SSE responses on any backend.
 */
import type { StepResult } from '../backends/backend.js';
import type { Gpt2Tokenizer, StreamDecoder } from '../tokenizer/gpt2-tokenizer.js';
import { StopMatcher } from './stop-sequences.js';

export type FinishReason = 'length' | 'eos' | 'stop';

export interface GeneratedToken {
  /** Position in the completion, from 0. */
  readonly index: number;
  readonly id: number;
  /**
   * Text this token released: a character split across tokens comes with the token that
   * completes it, text that may start a stop string comes once it is known not to. Joining every
   * token's text gives exactly the completion's text.
   */
  readonly text: string;
  readonly logprob: number;
  /** Duration of the backend step (for the whole batch) that produced this token. */
  readonly backendStepMs: number;
  /** Since the previous token, or since the request arrived for the first token. */
  readonly sincePreviousMs: number;
}

export interface GenerationTimings {
  readonly queueMs: number;
  readonly timeToFirstTokenMs: number;
  /** Sum of the backend steps this generation took part in. */
  readonly backendMs: number;
  readonly totalMs: number;
}

export interface GenerationOutcome {
  readonly tokens: readonly GeneratedToken[];
  readonly text: string;
  readonly finishReason: FinishReason;
  readonly timings: GenerationTimings;
}

export interface GenerationSpec {
  readonly promptIds: readonly number[];
  readonly maxNewTokens: number;
  readonly stop: readonly string[];
  /** performance.now() when the request arrived; timings count from it. */
  readonly arrivalMs: number;
  /** Called for every token as it is produced (SSE). */
  readonly onToken?: (token: GeneratedToken) => void;
}

/** Milliseconds to the microsecond: what every timing the gateway reports is rounded to. */
export const roundMs = (ms: number): number => Math.round(ms * 1000) / 1000;

export class Generation {
  readonly sequence: number[];
  readonly tokens: GeneratedToken[] = [];
  #text = '';
  #finish: FinishReason | undefined;
  #startedMs: number | undefined;
  #lastTokenMs: number;
  #backendMs = 0;
  readonly #decoder: StreamDecoder;
  readonly #stops: StopMatcher;

  constructor(
    readonly spec: GenerationSpec,
    private readonly tokenizer: Gpt2Tokenizer,
    readonly submittedMs: number,
  ) {
    this.sequence = [...spec.promptIds];
    this.#decoder = tokenizer.createStreamDecoder();
    this.#stops = new StopMatcher(spec.stop);
    this.#lastTokenMs = spec.arrivalMs;
  }

  get finished(): boolean {
    return this.#finish !== undefined;
  }

  /** Marks the first step this generation takes part in (end of its queue time). */
  markStarted(nowMs: number): void {
    this.#startedMs ??= nowMs;
  }

  /** Takes one step's result; returns the token it produced. */
  accept(result: StepResult, stepMs: number, nowMs: number): GeneratedToken {
    this.sequence.push(result.tokenId);
    this.#backendMs += stepMs;
    let text = '';
    if (result.tokenId === this.tokenizer.eosTokenId) {
      this.#finish = 'eos';
    } else {
      const released = this.#stops.push(this.#decoder.push(result.tokenId));
      text = released.emit;
      if (released.stopped) this.#finish = 'stop';
      else if (this.tokens.length + 1 >= this.spec.maxNewTokens) this.#finish = 'length';
    }
    if (this.#finish === 'eos' || this.#finish === 'length') {
      const tail = this.#stops.push(this.#decoder.flush());
      text += tail.emit;
      if (tail.stopped) this.#finish = 'stop';
      else text += this.#stops.flush();
    }
    const token: GeneratedToken = {
      index: this.tokens.length,
      id: result.tokenId,
      text,
      logprob: result.logprob,
      backendStepMs: roundMs(stepMs),
      sincePreviousMs: roundMs(nowMs - this.#lastTokenMs),
    };
    this.#lastTokenMs = nowMs;
    this.#text += text;
    this.tokens.push(token);
    this.spec.onToken?.(token);
    return token;
  }

  outcome(nowMs: number): GenerationOutcome {
    if (this.#finish === undefined) throw new Error('generation has not finished');
    const first = this.tokens[0];
    const started = this.#startedMs ?? nowMs;
    return {
      tokens: this.tokens,
      text: this.#text,
      finishReason: this.#finish,
      timings: {
        queueMs: roundMs(started - this.submittedMs),
        timeToFirstTokenMs: first === undefined ? 0 : first.sincePreviousMs,
        backendMs: roundMs(this.#backendMs),
        totalMs: roundMs(nowMs - this.spec.arrivalMs),
      },
    };
  }
}
