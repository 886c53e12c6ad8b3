/**
 * A consecutive-failure circuit breaker: after `failureThreshold` transport failures in a row the
 * upstream is presumed down and calls fail fast for `cooldownMs`; then one trial call is let
 * through (half-open) and its outcome closes or re-opens the circuit. Time is injected so tests
 * need no sleeps.
 */

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  readonly failureThreshold: number;
  readonly cooldownMs: number;
  readonly now?: () => number;
  readonly onStateChange?: (state: BreakerState) => void;
}

export class CircuitBreaker {
  #state: BreakerState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #trialInFlight = false;
  readonly #opts: BreakerOptions;
  readonly #now: () => number;

  constructor(opts: BreakerOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** Milliseconds until a trial call will be allowed (0 unless open). */
  retryAfterMs(): number {
    if (this.#state !== 'open') return 0;
    return Math.max(0, this.#openedAt + this.#opts.cooldownMs - this.#now());
  }

  /** Whether a call may go out now; a true answer in half-open reserves the one trial. */
  tryAcquire(): boolean {
    if (this.#state === 'closed') return true;
    if (this.#state === 'open') {
      if (this.retryAfterMs() > 0) return false;
      this.#set('half-open');
    }
    if (this.#trialInFlight) return false;
    this.#trialInFlight = true;
    return true;
  }

  success(): void {
    this.#failures = 0;
    this.#trialInFlight = false;
    if (this.#state !== 'closed') this.#set('closed');
  }

  failure(): void {
    this.#trialInFlight = false;
    this.#failures++;
    if (this.#state === 'half-open' || this.#failures >= this.#opts.failureThreshold) {
      this.#openedAt = this.#now();
      if (this.#state !== 'open') this.#set('open');
    }
  }

  /** A call that reserved the trial but ended without telling us anything about the upstream. */
  release(): void {
    this.#trialInFlight = false;
  }

  #set(state: BreakerState): void {
    this.#state = state;
    this.#opts.onStateChange?.(state);
  }
}
