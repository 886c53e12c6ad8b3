/**
 * Stop sequences over streamed text. A stop string may span tokens, so text that
 * could be the start of one is held back until it is known not to be; the returned text never
 * includes the stop string (OpenAI's semantics), and nothing is emitted that later turns out to
 * belong to one.
 */
export class StopMatcher {
  #held = '';
  readonly #longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.#longest = Math.max(0, ...stops.map((s) => s.length));
  }

  /** Feed newly decoded text; get the text now safe to emit and whether a stop string matched. */
  push(text: string): { emit: string; stopped: boolean } {
    if (this.stops.length === 0) return { emit: text, stopped: false };
    const buffer = this.#held + text;
    let first = -1;
    for (const stop of this.stops) {
      const at = buffer.indexOf(stop);
      if (at !== -1 && (first === -1 || at < first)) first = at;
    }
    if (first !== -1) {
      this.#held = '';
      return { emit: buffer.slice(0, first), stopped: true };
    }
    // Hold the longest tail that is a proper prefix of some stop string.
    let keep = Math.min(buffer.length, this.#longest - 1);
    for (; keep > 0; keep--) {
      const tail = buffer.slice(buffer.length - keep);
      if (this.stops.some((stop) => stop.startsWith(tail))) break;
    }
    this.#held = buffer.slice(buffer.length - keep);
    return { emit: buffer.slice(0, buffer.length - keep), stopped: false };
  }

  /** The held-back text, once generation ended for another reason. */
  flush(): string {
    const held = this.#held;
    this.#held = '';
    return held;
  }
}
