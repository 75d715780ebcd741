/** Settings of a capped exponential backoff. */
export interface BackoffOptions {
  /** First delay. */
  readonly initialMs: number;
  /** No delay is longer. */
  readonly maxMs: number;
  /** Growth per failure (default 2). */
  readonly factor?: number;
  /** A number in [0, 1); default Math.random. Injected so tests are deterministic. */
  readonly random?: () => number;
}

/**
 * Capped exponential backoff with "equal jitter": each delay is half the current step plus a random part
 * of the other half, so that many clients that failed together (every agent, when the API server
 * restarts) do not retry together, yet none retries at once.
 */
export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #factor: number;
  readonly #random: () => number;
  #step: number;
  #failures = 0;

  constructor(opts: BackoffOptions) {
    if (!(opts.initialMs > 0) || !(opts.maxMs >= opts.initialMs)) {
      throw new RangeError(
        `Cannot back off from ${opts.initialMs} ms to at most ${opts.maxMs} ms: need 0 < initialMs <= maxMs`,
      );
    }
    this.#initial = opts.initialMs;
    this.#max = opts.maxMs;
    this.#factor = opts.factor ?? 2;
    this.#random = opts.random ?? Math.random;
    this.#step = this.#initial;
  }

  /** Failures since the last reset. */
  get failures(): number {
    return this.#failures;
  }

  /** The delay before the next attempt; each call counts one failure. */
  next(): number {
    const step = this.#step;
    this.#failures++;
    this.#step = Math.min(this.#max, step * this.#factor);
    return step / 2 + this.#random() * (step / 2);
  }

  /** After a success: the next failure waits the initial delay again. */
  reset(): void {
    this.#step = this.#initial;
    this.#failures = 0;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
