/** The clock and timers a Coalescer uses; injected so that its unit test runs on fake time. */
export interface CoalescerTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface CoalescerOptions {
  /** A build starts this long after the last event of a burst. */
  readonly holdOffMs: number;
  /** …and at the latest this long after its first event, however long the burst goes on. */
  readonly maxDelayMs: number;
  /** The build. Exceptions are the caller's to handle; the coalescer keeps working after one. */
  readonly flush: () => void;
  readonly timers?: CoalescerTimers;
}

const realTimers: CoalescerTimers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * Turns a stream of change events into few builds: one build `holdOffMs` after the last event, or
 * `maxDelayMs` after the first one of a burst, whichever is sooner. Nothing is built before `open()`
 * (the first build waits for every informer to sync); `open()` builds at once.
 */
export class Coalescer {
  readonly #holdOff: number;
  readonly #maxDelay: number;
  readonly #flush: () => void;
  readonly #timers: CoalescerTimers;
  #open = false;
  #stopped = false;
  /** When the first event of the current burst arrived; undefined while idle. */
  #burstStart: number | undefined;
  #timer: unknown;
  #flushes = 0;
  #events = 0;

  constructor(opts: CoalescerOptions) {
    if (!(opts.holdOffMs >= 0) || !(opts.maxDelayMs >= opts.holdOffMs)) {
      throw new RangeError(
        `Cannot coalesce with a hold-off of ${opts.holdOffMs} ms and a maximum delay of ${opts.maxDelayMs} ms: need 0 <= holdOffMs <= maxDelayMs`,
      );
    }
    this.#holdOff = opts.holdOffMs;
    this.#maxDelay = opts.maxDelayMs;
    this.#flush = opts.flush;
    this.#timers = opts.timers ?? realTimers;
  }

  /** Builds so far, and events seen (for /status and tests). */
  get stats(): { readonly flushes: number; readonly events: number } {
    return { flushes: this.#flushes, events: this.#events };
  }

  get isOpen(): boolean {
    return this.#open;
  }

  /** Something changed. */
  notify(): void {
    if (this.#stopped) return;
    this.#events++;
    if (!this.#open) return;
    const now = this.#timers.now();
    this.#burstStart ??= now;
    const at = Math.min(now + this.#holdOff, this.#burstStart + this.#maxDelay);
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = this.#timers.setTimeout(() => this.#fire(), Math.max(0, at - now));
  }

  /** Allows builds from now on, and builds at once. */
  open(): void {
    if (this.#stopped || this.#open) return;
    this.#open = true;
    this.#fire();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #fire(): void {
    this.#timer = undefined;
    this.#burstStart = undefined;
    if (this.#stopped) return;
    this.#flushes++;
    this.#flush();
  }
}
