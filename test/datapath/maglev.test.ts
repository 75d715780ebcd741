// Maglev lookup tables (pure): the known properties of the construction.

import { describe, expect, it } from 'vitest';
import { backendBytes, murmur3 } from '../../src/datapath/lbHash.js';
import { isPrime, MAGLEV_DEFAULT_TABLE_SIZE, maglevTable } from '../../src/datapath/maglev.js';

const backends = (n: number, from = 0): Buffer[] =>
  Array.from({ length: n }, (_, i) => backendBytes(`10.1.${(from + i) >> 8}.${(from + i) & 255}`, 8080));

const counts = (table: readonly number[], n: number): number[] => {
  const out = new Array<number>(n).fill(0);
  for (const i of table) out[i] = (out[i] ?? 0) + 1;
  return out;
};

describe('murmur3 (x86, 32-bit)', () => {
  it.each([
    ['', 0, 0x00000000],
    ['', 1, 0x514e28b7],
    ['hello', 0, 0x248bfa47],
    ['The quick brown fox jumps over the lazy dog', 0, 0x2e4ff723],
  ])('hashes %j with seed %d to the reference value', (text, seed, want) => {
    expect(murmur3(Buffer.from(text), seed)).toBe(want);
  });
});

describe('maglevTable', () => {
  it.each([
    [1, 251],
    [3, 1021],
    [5, MAGLEV_DEFAULT_TABLE_SIZE],
    [10, MAGLEV_DEFAULT_TABLE_SIZE],
    [40, MAGLEV_DEFAULT_TABLE_SIZE],
    [100, 16381],
  ])(
    'gives each of %d backends floor(M/N) or ceil(M/N) of M = %d slots, and every slot a backend',
    (n, m) => {
      const table = maglevTable(backends(n), m);
      expect(table).toHaveLength(m);
      for (const c of counts(table, n)) {
        expect(c).toBeGreaterThanOrEqual(Math.floor(m / n));
        expect(c).toBeLessThanOrEqual(Math.ceil(m / n));
      }
    },
  );

  it('is a function of the backends and M only', () => {
    expect(maglevTable(backends(7), 1021)).toEqual(maglevTable(backends(7), 1021));
    expect(maglevTable(backends(7), 1021)).not.toEqual(maglevTable(backends(7, 100), 1021));
  });

  it.each([5, 10])(
    'moves the slots of a removed backend and few others (N = %d, M = 4093): each removal in turn',
    (n) => {
      const all = backends(n);
      const before = maglevTable(all, MAGLEV_DEFAULT_TABLE_SIZE);
      for (let removed = 0; removed < n; removed++) {
        const after = maglevTable(
          all.filter((_, i) => i !== removed),
          MAGLEV_DEFAULT_TABLE_SIZE,
        );
        // Index i of the shorter list is backend i, or i + 1 past the removed one.
        const who = (i: number): number => (i >= removed ? i + 1 : i);
        let others = 0;
        for (let s = 0; s < before.length; s++) {
          const was = before[s] as number;
          const now = who(after[s] as number);
          expect(now).not.toBe(removed);
          if (was !== removed && now !== was) others++;
        }
        // The paper's bound is "small"; measured here: at most 0.7% (N=5) and 1.3% (N=10) of M.
        expect(others / before.length).toBeLessThan(n === 5 ? 0.01 : 0.02);
      }
    },
  );

  it('keeps most slots of the old backends when one is added', () => {
    const before = maglevTable(backends(8), MAGLEV_DEFAULT_TABLE_SIZE);
    const after = maglevTable(backends(9), MAGLEV_DEFAULT_TABLE_SIZE);
    let moved = 0;
    for (let s = 0; s < before.length; s++) if (after[s] !== 8 && after[s] !== before[s]) moved++;
    expect(moved / before.length).toBeLessThan(0.02);
    expect(counts(after, 9)[8]).toBeGreaterThanOrEqual(Math.floor(MAGLEV_DEFAULT_TABLE_SIZE / 9));
  });

  it('refuses a size that is not prime, too large, or smaller than the backends', () => {
    expect(isPrime(4093)).toBe(true);
    expect(isPrime(4095)).toBe(false);
    expect(() => maglevTable(backends(2), 4095)).toThrow(
      'Cannot build a Maglev table of 4095 slots: the size must be a prime in 2..65521',
    );
    expect(() => maglevTable(backends(2), 131071)).toThrow(/must be a prime in 2\.\.65521/);
    expect(() => maglevTable(backends(12), 11)).toThrow(
      'Cannot build a Maglev table of 11 slots for 12 backends: it needs 1..11 backends',
    );
    expect(() => maglevTable([], 11)).toThrow(/for 0 backends/);
  });
});
