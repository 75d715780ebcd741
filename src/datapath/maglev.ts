/**
 * Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
 * Balancer", NSDI 2016, section 3.4): a lookup table of M slots (M prime) in which every backend holds
 * about M/N slots, built so that removing one backend reassigns mostly that backend's slots. The BPF
 * program indexes the table with the flow hash (lbHash.ts), so a flow keeps its backend while that
 * backend stays, and every node builds the same table from the same backends.
 *
 * Pure: the table depends only on the backends (in the order given) and M.
 */

import { murmur3 } from './lbHash.js';

/** The default table size: a prime that spreads up to ~40 backends within about 1% of M/N each. */
export const MAGLEV_DEFAULT_TABLE_SIZE = 4093;
/** The largest table size: the largest prime a service value's 16-bit count holds. */
export const MAGLEV_MAX_TABLE_SIZE = 65521;

// Seeds of the two hashes that give each backend its offset and its skip through the table.
const OFFSET_SEED = 0x6d61676c; // "magl"
const SKIP_SEED = 0x65762121; // "ev!!"

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/**
 * The lookup table: for each of the M slots, the index (into `backends`) of the backend it holds.
 * `backends` are byte strings that identify each backend (lbHash.backendBytes); their order decides
 * ties, so callers pass them sorted. Throws a RangeError if M is not a prime in 2..MAGLEV_MAX_TABLE_SIZE,
 * or if there are no backends or more backends than slots.
 */
export function maglevTable(backends: readonly Uint8Array[], size: number): number[] {
  if (!isPrime(size) || size > MAGLEV_MAX_TABLE_SIZE) {
    throw new RangeError(
      `Cannot build a Maglev table of ${size} slots: the size must be a prime in 2..${MAGLEV_MAX_TABLE_SIZE}`,
    );
  }
  const n = backends.length;
  if (n === 0 || n > size) {
    throw new RangeError(
      `Cannot build a Maglev table of ${size} slots for ${n} backends: it needs 1..${size} backends`,
    );
  }
  const offset = new Uint32Array(n);
  const skip = new Uint32Array(n);
  backends.forEach((b, i) => {
    offset[i] = murmur3(b, OFFSET_SEED) % size;
    skip[i] = (murmur3(b, SKIP_SEED) % (size - 1)) + 1;
  });
  // next[i]: how far backend i has walked its permutation (offset + j * skip) mod M.
  const next = new Uint32Array(n);
  const table = new Int32Array(size).fill(-1);
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      const o = offset[i] as number;
      const s = skip[i] as number;
      let c = (o + (next[i] as number) * s) % size;
      while ((table[c] as number) >= 0) {
        next[i] = (next[i] as number) + 1;
        c = (o + (next[i] as number) * s) % size;
      }
      table[c] = i;
      next[i] = (next[i] as number) + 1;
      filled++;
      if (filled === size) return Array.from(table);
    }
  }
}
