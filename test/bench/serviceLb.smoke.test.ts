// A smoke run of bench/service-lb.ts (quick mode: 10 and 100 services, 300 connections per mode), so the
// benchmark keeps working. It asserts what the run must produce, not how fast: benchmarks never gate.

import { expect, it } from 'vitest';
import { bench, kubeProxyRules } from '../../bench/service-lb.js';
import { describeKernel, kernelSuite } from '../datapath/helpers.js';

it('writes the kube-proxy chain shape: one KUBE-SERVICES rule per service, random split, DNAT per endpoint', () => {
  const rules = kubeProxyRules(2, '10.202.0.1').split('\n');
  expect(rules[0]).toBe('*nat');
  expect(rules.at(-2)).toBe('COMMIT');
  const services = rules.filter((r) => r.startsWith('-A KUBE-SERVICES -d '));
  expect(services).toHaveLength(2);
  expect(services[0]).toMatch(
    /^-A KUBE-SERVICES -d 10\.96\.0\.1\/32 -p tcp .* --dport 80 -j KUBE-SVC-[0-9A-F]{16}$/,
  );
  const svcChain = services[0]?.split(' -j ')[1] ?? '';
  const picks = rules.filter((r) => r.startsWith(`-A ${svcChain} `));
  expect(picks).toHaveLength(2);
  expect(picks[0]).toContain('-m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-');
  expect(picks[1]).not.toContain('statistic');
  expect(rules.filter((r) => r.includes('-j DNAT --to-destination 10.202.0.1:808'))).toHaveLength(4);
  // The node-ports rule comes after every service rule, as kube-proxy orders it.
  const nodePorts = rules.findIndex((r) => r.includes('-j KUBE-NODEPORTS'));
  expect(nodePorts).toBeGreaterThan(rules.indexOf(services[1] ?? ''));
});

describeKernel(kernelSuite('bench service-lb (quick)'), () => {
  it('measures direct, Skein and iptables connects at 10 and 100 services without a failed connection', async () => {
    const result = await bench.run({ quick: true });
    const raw = result['raw'] as {
      services: number;
      direct: { count: number; failed: number; p50Us: number };
      skein: { count: number; failed: number; p50Us: number };
      iptables: { count: number; failed: number };
    }[];
    expect(raw.map((r) => r.services)).toEqual([10, 100]);
    for (const r of raw) {
      expect(r.direct).toMatchObject({ count: 300, failed: 0 });
      expect(r.skein).toMatchObject({ count: 300, failed: 0 });
      expect(r.direct.p50Us).toBeGreaterThan(0);
      expect(r.skein.p50Us).toBeGreaterThan(0);
    }
    const iptables = result['iptables'] as { backend?: string; skipped?: string };
    if (iptables.backend !== undefined) {
      expect(iptables.backend).toMatch(/^iptables-restore v\d/);
      for (const r of raw) expect(r.iptables).toMatchObject({ count: 300, failed: 0 });
    } else {
      // Without iptables the column is skipped, with the reason and the fix.
      expect(iptables.skipped).toMatch(/iptables/);
    }
    expect(result['latency']).toHaveLength(2);
    // The hot-working-set variant: every connection to one service.
    expect(result['oneService']).toHaveLength(2);
    for (const r of raw as unknown as { skein1: { count: number; failed: number } }[]) {
      expect(r.skein1).toMatchObject({ count: 300, failed: 0 });
    }
  }, 120_000);
});
