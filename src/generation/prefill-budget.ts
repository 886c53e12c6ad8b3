/**
 * How many prompt tokens the next step may feed (chunked prefill), sized from what the last steps
 * cost on the backend that runs them.
 *
 * A fixed chunk (PREFILL_CHUNK_TOKENS) bounds a step's prompt tokens, not its time: a chunk
 * attends to all of its prompt before it, and the running sequences' own decodes get slower as
 * their contexts grow. On two cores a 64-token chunk cost ~100 ms beside a 22 ms decode when its
 * prompt was new, and ~180 ms when 900 tokens of it were already in the cache; a decode over a
 * 1000-token context took 51 ms, so a step with both made a stream wait 12× its usual gap.
 *
 * So each step's chunk is sized to keep the step within `stepSlowdown` times the fastest decode
 * of the recent steps (the gap a stream has when nothing prefills): the room left beside this
 * step's decodes, divided by what a prompt token cost in the last steps that fed some. Never more
 * than `maxTokens`, never fewer than MIN_TOKENS (a prompt always makes progress), and `maxTokens`
 * whenever there is nothing to protect or nothing measured yet: no decode in the step to come, or
 * a backend that does not report its costs (Triton, which takes whole prompts anyway). The room
 * is judged from the decodes of the last step that had any.
 */
import type { StepCost } from '../backends/backend.js';

/**
 * The smallest chunk: a run reads all the weights whatever its tokens (~20 ms for gpt2 on two
 * cores), so much below this a step would pay nearly a decode's cost for little progress.
 */
export const MIN_PREFILL_CHUNK_TOKENS = 16;
/** Steps whose fastest decode is "the usual gap": about 2-5 s at the rates measured. */
const DECODE_WINDOW = 64;

export interface PrefillBudgetOptions {
  /** The most prompt tokens one step feeds, over all generations (PREFILL_CHUNK_TOKENS). */
  readonly maxTokens: number;
  /** A step that feeds prompt tokens aims at no more than this many times the fastest recent
   * decode; 0 turns the sizing off (every step may feed maxTokens). */
  readonly stepSlowdown: number;
}

export class PrefillBudget {
  readonly #options: PrefillBudgetOptions;
  /** Decode costs (ms) of the last DECODE_WINDOW steps that had decodes, the last one last. */
  readonly #decodes: number[] = [];
  /** Smoothed cost of one prompt token (ms), from the steps that fed some. */
  #msPerToken: number | undefined;

  constructor(options: PrefillBudgetOptions) {
    this.#options = options;
  }

  /** Prompt tokens the next step may feed; `decodes`: whether it also decodes for anyone. */
  tokens(decodes: boolean): number {
    const { maxTokens, stepSlowdown } = this.#options;
    const perToken = this.#msPerToken;
    const lastDecodeMs = this.#decodes.at(-1);
    if (!decodes || stepSlowdown === 0 || perToken === undefined || lastDecodeMs === undefined) {
      return maxTokens;
    }
    const usualGap = Math.min(...this.#decodes);
    const room = stepSlowdown * usualGap - lastDecodeMs;
    const fit = Math.floor(room / perToken);
    return Math.max(Math.min(MIN_PREFILL_CHUNK_TOKENS, maxTokens), Math.min(maxTokens, fit));
  }

  /** A step completed: the prompt tokens it fed, and its cost as the backend measured it. */
  observe(promptTokens: number, cost: StepCost | undefined): void {
    if (cost === undefined) return;
    if (cost.decodeMs > 0) {
      this.#decodes.push(cost.decodeMs);
      if (this.#decodes.length > DECODE_WINDOW) this.#decodes.shift();
    }
    if (promptTokens > 0 && cost.prefillMs > 0) {
      const perToken = cost.prefillMs / promptTokens;
      // Half the last step, half the history: quick to follow a prompt's growing context, and
      // one noisy step moves the chunk by at most half.
      this.#msPerToken =
        this.#msPerToken === undefined ? perToken : (this.#msPerToken + perToken) / 2;
    }
  }
}
