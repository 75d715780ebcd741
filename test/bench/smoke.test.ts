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

/** Results of the runs above, for the checks of particular benchmarks below (each runs once per file). */
const results = new Map<string, Record<string, unknown>>();
async function resultOf(name: string): Promise<Record<string, unknown>> {
  const known = results.get(name);
  if (known !== undefined) return known;
  const bench = await benches[name]?.();
  if (bench === undefined) throw new Error(`no benchmark ${name}`);
  const result = (await bench.run({ quick: true })) as Record<string, unknown>;
  results.set(name, result);
  return result;
}

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
      results.set(name, result as Record<string, unknown>);
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

  it('xds-translate-push measures each size in its own process, one change, and the file source', async () => {
    const r = (await resultOf('xds-translate-push')) as {
      push: Record<string, number>[];
      oneChange: Record<string, number>[];
      fileEdit: Record<string, number>[];
    };
    // The sizes, then the routes spread over hostnames (one virtual host each for 10 routes).
    expect(r.push.map((row) => [row['routes'], row['hostnames']])).toEqual([
      [10, 0],
      [100, 0],
      [100, 10],
    ]);
    for (const row of r.push) {
      expect(row['until ACK ms']).toBeGreaterThan(0);
      // RSS read from /proc in the child (a fresh process per size), before and after the build.
      expect(row['skein RSS MiB']).toBeGreaterThan(0);
      expect(row['skein RSS before MiB']).toBeGreaterThan(0);
      expect(row['envoy RSS MiB']).toBeGreaterThan(0);
    }
    for (const row of r.oneChange) {
      expect(row['edits']).toBe(2);
      // One route changed: its route configuration is encoded again, and with hostnames the proxyless
      // flavour's route configuration of that hostname too.
      expect(row['resources encoded']).toBe(row['hostnames'] === 0 ? 1 : 2);
      expect(row['edit → served ms']).toBeGreaterThanOrEqual(row['until ACK ms'] ?? Number.NaN);
      expect(row['until ACK ms']).toBeGreaterThanOrEqual(row['apply ms (Skein)'] ?? Number.NaN);
    }
    expect(r.fileEdit.map((row) => [row['routes'], row['files']])).toEqual([
      [10, 2],
      [100, 11],
    ]);
    for (const row of r.fileEdit) expect(row['file edit → served ms']).toBeGreaterThan(0);
  }, 120_000);

  it('xds-fanout pushes one change to 1 and to K clients, delta and state of the world', async () => {
    const r = (await resultOf('xds-fanout')) as { fanout: Record<string, number | string>[] };
    expect(r.fanout.map((row) => [row['ADS'], row['clients']])).toEqual([
      ['delta', 1],
      ['delta', 20],
      ['delta', '20 / 1'],
      ['sotw', 1],
      ['sotw', 20],
      ['sotw', '20 / 1'],
    ]);
  }, 120_000);
});
