// Atomic backend updates under load, on the real kernel: while a client keeps 16 connections in flight,
// the service's backends change 24 times (each change a new complete slot set, then one flip). No
// connection may fail (a half-written slot list would refuse it with EPERM), and none that starts after a
// flip may reach a backend the flip removed.

import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LbBackendIr, LbServiceIr } from '../../src/model/serviceLb.js';
import { describeKernel, kernelSuite } from './helpers.js';
import { type LbWorld, type LoadAttempt, service, startLbWorld } from './lbHarness.js';

const VIP = '10.96.4.1';
const NAMES = ['s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7'];

/** A deterministic sequence of backend subsets (1..8 of them), each different from the one before. */
function subsets(n: number): string[][] {
  let x = 0x2545f491;
  const out: string[][] = [];
  while (out.length < n) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const mask = (x >>> 8) & 0xff;
    const set = NAMES.filter((_, i) => mask & (1 << i));
    const prev = out[out.length - 1];
    if (set.length > 0 && set.join() !== prev?.join()) out.push(set);
  }
  return out;
}

interface Epoch {
  /** The backends of this update. */
  readonly set: ReadonlySet<string>;
  /** When reconcile() was called (its flip is later) and when its flip had been made. */
  readonly called: bigint;
  readonly flipped: bigint;
}

describeKernel(kernelSuite('atomic backend updates under concurrent connect() load'), () => {
  let w: LbWorld;

  beforeAll(async () => {
    w = await startLbWorld(Object.fromEntries(NAMES.map((n) => [n, 'tcp:127.0.0.1'])), {
      reconciler: { maglevTableSize: 1021 },
    });
  });

  afterAll(async () => {
    await w?.stop();
  });

  it.each(['random', 'maglev'] as const)(
    'never fails a connection nor sends one to a removed backend while backends change (%s)',
    async (algorithm) => {
      const svc = (names: readonly string[]): LbServiceIr =>
        service(
          'default/churn/80',
          VIP,
          80,
          names.map((n): LbBackendIr => w.backend(n)),
          { algorithm },
        );
      const epochs: Epoch[] = [];
      const initial = process.hrtime.bigint();
      await w.reconcile([svc(NAMES)]);
      epochs.push({ set: new Set(NAMES), called: initial, flipped: process.hrtime.bigint() });

      const load = w.spawnClient(['load', VIP, '80', '4000', '16', '40000']);
      await new Promise((r) => setTimeout(r, 300));
      for (const names of subsets(24)) {
        const called = process.hrtime.bigint();
        const report = await w.reconcile([svc(names)]);
        expect(report.errors).toEqual([]);
        if (report.flippedAt === undefined) throw new Error('no flip');
        epochs.push({ set: new Set(names), called, flipped: report.flippedAt });
        await new Promise((r) => setTimeout(r, 80));
      }
      const code = await load.exited;
      expect(code).toBe(0);
      const attempts = load.lines.filter((l) => l !== '').map((l) => JSON.parse(l) as LoadAttempt);

      expect(attempts.length).toBeGreaterThan(1000);
      expect(attempts.filter((a) => !a.ok)).toEqual([]);

      // Epoch k's set is live from its flip until the next flip; during reconcile k + 1 (from its call to
      // its flip) either may be. An attempt may reach any backend of a set live at some time in [s, e].
      let strict = 0;
      const wrong: unknown[] = [];
      for (const a of attempts) {
        const s = BigInt(a.s);
        const e = BigInt(a.e);
        const allowed = new Set<string>();
        epochs.forEach((ep, k) => {
          const next = epochs[k + 1];
          const from = ep.called;
          const until = next === undefined ? e : next.flipped;
          if (from <= e && until >= s) for (const n of ep.set) allowed.add(n);
          // Wholly after flip k and before call k + 1: only set k will do.
          if (s >= ep.flipped && (next === undefined || e <= next.called)) strict++;
        });
        if (!allowed.has(a.backend ?? '')) wrong.push({ ...a, allowed: [...allowed] });
      }
      expect(wrong).toEqual([]);
      // Most attempts fall wholly inside one epoch: the check above is sharp for them.
      expect(strict).toBeGreaterThan(attempts.length / 2);
    },
    30_000,
  );
});
