// A smoke run of bench/request-latency.ts in quick mode (200 rps, 0.5 s per cell, one repeat), so the
// benchmark keeps working. It asserts that every path carried the load through what it claims to go
// through, with no error, and the shape of the results; never how fast: benchmarks do not gate.

import { expect, it } from 'vitest';
import { bench } from '../../bench/request-latency.js';
import { describeKernel, kernelSuite } from '../datapath/helpers.js';

interface Cell {
  mode: 'a' | 'b' | 'c' | 'd';
  protocol: 'http' | 'grpc';
  requests: number;
  errors: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  keptRate: boolean;
  proxied: number[];
  envoyCpuS: number;
  envoyRssMiB: number;
}

describeKernel(kernelSuite('bench request-latency (quick)'), () => {
  it('runs HTTP/1.1 and gRPC through all four paths, each carrying every request without an error', async () => {
    const result = await bench.run({ quick: true });
    const config = result['config'] as {
      qps: number;
      durationS: number;
      repeats: number;
      warmupS: number;
      l7Config: string;
      l7Patches: string[];
      envoyConcurrency: number;
    };
    // Quick stays quick: 8 cells of half a second, no warm-up.
    expect(config.durationS * 8 * config.repeats + config.warmupS * 8).toBeLessThanOrEqual(5);
    expect(config.envoyConcurrency).toBe(1);
    expect(config.l7Config).toContain("Skein's ControlPlane");
    // What the bench changed in Skein's config is on record.
    expect(config.l7Patches).toContain('access log of the HTTP connection manager left out');

    const cells = result['cells'] as Cell[];
    expect(cells.map((c) => `${c.protocol}:${c.mode}`).sort()).toEqual(
      ['a', 'b', 'c', 'd'].flatMap((m) => [`grpc:${m}`, `http:${m}`]).sort(),
    );
    const expected = config.qps * config.durationS;
    for (const c of cells) {
      const what = `${c.protocol} (${c.mode})`;
      expect(c.errors, what).toBe(0);
      expect(c.requests, what).toBeGreaterThanOrEqual(expected * 0.9);
      expect(c.p50Us, what).toBeGreaterThan(0);
      expect(c.p90Us, what).toBeGreaterThanOrEqual(c.p50Us);
      expect(c.p99Us, what).toBeGreaterThanOrEqual(c.p90Us);
      if (c.mode === 'a' || c.mode === 'b') {
        // No proxy on these paths.
        expect(c.proxied, what).toEqual([]);
      } else {
        // The node Envoy (c), both sidecars (d): each saw every request (fortio adds one per connection).
        expect(c.proxied, what).toHaveLength(c.mode === 'c' ? 1 : 2);
        for (const n of c.proxied) expect(n, what).toBeGreaterThanOrEqual(c.requests);
        expect(c.envoyRssMiB, what).toBeGreaterThan(0);
        expect(c.envoyCpuS, what).toBeGreaterThanOrEqual(0);
      }
    }

    const latency = result['latency'] as Record<string, { path: string }[]>;
    for (const protocol of ['http', 'grpc']) {
      expect(latency[protocol]?.map((r) => r.path)).toEqual([
        '(a) no mesh, direct',
        '(b) Skein L4, VIP via eBPF',
        '(c) Skein L7, node Envoy',
        '(d) sidecars, 2 Envoys',
      ]);
    }
    const targets = result['targets'] as Record<string, string | number>[];
    expect(targets.map((t) => `${t['protocol']} ${t['percentile']}`)).toEqual([
      'http p50',
      'http p90',
      'http p99',
      'grpc p50',
      'grpc p90',
      'grpc p99',
    ]);
    for (const t of targets) expect(['yes', 'no']).toContain(t['(b) within 2%']);
    expect((result['proxyCost'] as unknown[]).length).toBe(4);
  }, 120_000);
});
