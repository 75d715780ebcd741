import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Backoff } from '../../src/sources/kubernetes/backoff.js';
import { Coalescer } from '../../src/sources/kubernetes/coalescer.js';

// Pure logic on fake time. The same behaviour against a real API server and Envoy is in
// test/kube/agent.test.ts (a route edit reaches Envoy) and measured in bench/kube-route-edit.ts.

describe('Coalescer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function make(holdOffMs = 10, maxDelayMs = 100) {
    const flushes: number[] = [];
    const c = new Coalescer({
      holdOffMs,
      maxDelayMs,
      flush: () => flushes.push(Date.now()),
      timers: {
        now: () => Date.now(),
        setTimeout: (fn, ms) => setTimeout(fn, ms),
        clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
      },
    });
    return { c, flushes, t0: Date.now() };
  }

  it('builds nothing before open(), then once at open() however many events came before', () => {
    const { c, flushes, t0 } = make();
    for (let i = 0; i < 50; i++) c.notify();
    vi.advanceTimersByTime(1000);
    expect(flushes).toEqual([]);
    c.open();
    expect(flushes).toEqual([t0 + 1000]);
    vi.advanceTimersByTime(1000);
    expect(flushes).toHaveLength(1);
    expect(c.stats).toEqual({ flushes: 1, events: 50 });
  });

  it('builds one hold-off after a single event', () => {
    const { c, flushes, t0 } = make();
    c.open();
    c.notify();
    vi.advanceTimersByTime(9);
    expect(flushes).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(flushes).toEqual([t0, t0 + 10]);
  });

  it('restarts the hold-off on each event of a burst, but builds by the maximum delay', () => {
    const { c, flushes, t0 } = make();
    c.open();
    // An event every 5 ms for 300 ms: the hold-off never expires, so the maximum delay decides.
    for (let i = 0; i < 60; i++) {
      c.notify();
      vi.advanceTimersByTime(5);
    }
    vi.advanceTimersByTime(10);
    // Every burst starts with the first event after a build and ends by the maximum delay: builds at
    // 100, 200 and 300 ms (the last event, at 295 ms, would otherwise wait for 305 ms).
    expect(flushes.map((t) => t - t0)).toEqual([0, 100, 200, 300]);
    vi.advanceTimersByTime(100);
    expect(flushes).toHaveLength(4);
  });

  it('builds events 20 ms apart separately (each after its own hold-off)', () => {
    const { c, flushes, t0 } = make();
    c.open();
    c.notify();
    vi.advanceTimersByTime(20);
    c.notify();
    vi.advanceTimersByTime(20);
    expect(flushes.map((t) => t - t0)).toEqual([0, 10, 30]);
  });

  it('does nothing after stop()', () => {
    const { c, flushes } = make();
    c.open();
    c.notify();
    c.stop();
    vi.advanceTimersByTime(1000);
    c.notify();
    vi.advanceTimersByTime(1000);
    expect(flushes).toHaveLength(1);
  });

  it('refuses a maximum delay shorter than the hold-off, with the values in the message', () => {
    expect(() => new Coalescer({ holdOffMs: 50, maxDelayMs: 10, flush: () => {} })).toThrow(
      'Cannot coalesce with a hold-off of 50 ms and a maximum delay of 10 ms: need 0 <= holdOffMs <= maxDelayMs',
    );
  });
});

describe('Backoff', () => {
  it('doubles from the initial delay to the cap, jittered within the upper half of each step', () => {
    const lows = new Backoff({ initialMs: 200, maxMs: 1000, random: () => 0 });
    expect([1, 2, 3, 4, 5].map(() => lows.next())).toEqual([100, 200, 400, 500, 500]);
    const highs = new Backoff({ initialMs: 200, maxMs: 1000, random: () => 0.999999 });
    const h = [1, 2, 3, 4].map(() => Math.round(highs.next()));
    expect(h).toEqual([200, 400, 800, 1000]);
    expect(highs.failures).toBe(4);
    highs.reset();
    expect(highs.failures).toBe(0);
    expect(Math.round(highs.next())).toBe(200);
  });

  it('refuses a cap below the initial delay', () => {
    expect(() => new Backoff({ initialMs: 100, maxMs: 10 })).toThrow(
      'Cannot back off from 100 ms to at most 10 ms: need 0 < initialMs <= maxMs',
    );
  });
});
