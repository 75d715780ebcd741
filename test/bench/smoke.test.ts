import { describe, expect, it } from 'vitest';
import { benches } from '../../bench/run.js';

/**
 * A smoke run of every benchmark in bench/run.ts, in its quick mode (tiny inputs), so that the harness
 * does not rot between real runs. It asserts the shape of each result (the tables are printed as in a
 * real run), never the timings: benchmarks measure, tests do not.
 */

/** The rows of a result section: a table (array of rows) or a single row. */
function rowsOf(section: unknown): Record<string, unknown>[] {
  if (Array.isArray(section)) return section as Record<string, unknown>[];
  if (typeof section === 'object' && section !== null) return [section as Record<string, unknown>];
  return [];
}

/** Benchmarks with a smoke file of their own (they need the kernel, and assert more than the shape). */
const OWN_SMOKE_TEST = new Set(['service-lb', 'request-latency']);

describe('benchmarks, quick mode', () => {
  it('registers every benchmark', () => {
    expect(Object.keys(benches)).toEqual(
      expect.arrayContaining(['gateway-translate', 'xds-translate-push', 'xds-fanout', ...OWN_SMOKE_TEST]),
    );
  });

  it.each(Object.keys(benches).filter((n) => !OWN_SMOKE_TEST.has(n)))(
    '%s runs and returns its machine and its tables',
    async (name) => {
      const load = benches[name];
      if (load === undefined) throw new Error(`no benchmark ${name}`);
      const bench = await load();
      expect(bench.name).toBe(name);
      const result = await bench.run({ quick: true });
      expect(result.name).toBe(name);
      expect(result.machine).toMatchObject({ cores: expect.any(Number), node: process.version });
      const sections = Object.entries(result).filter(([k]) => k !== 'name' && k !== 'machine');
      const rows = sections.flatMap(([, v]) => rowsOf(v));
      expect(rows.length).toBeGreaterThan(0);
      // Some figure was measured (a bench may mark one it could not take, e.g. RSS, as NaN or a note).
      const measured = rows
        .flatMap((r) => Object.values(r))
        .filter((v) => typeof v === 'number' && Number.isFinite(v));
      expect(measured.length).toBeGreaterThan(0);
    },
    120_000,
  );

  it('gateway-translate measures a full build and one change per size, against a cold baseline', async () => {
    const bench = await benches['gateway-translate']?.();
    const result = (await bench?.run({ quick: true })) as unknown as {
      full: Record<string, number>;
      oneChange: Record<string, number | string>[];
    };
    expect(result.full['routes']).toBe(17);
    expect(result.full['full ms (median)']).toBeGreaterThan(0);
    expect(result.full['full MiB allocated']).toBeGreaterThan(0);
    expect(result.oneChange.map((r) => [r['size'], r['routes']])).toEqual([
      ['1x', 17],
      ['2x', 34],
    ]);
    for (const row of result.oneChange) {
      expect(row['one change / cold']).toBeCloseTo(
        (row['one change ms'] as number) / (row['cold ms (baseline)'] as number),
        6,
      );
    }
  });
});
