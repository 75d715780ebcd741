// Maglev on the real kernel. The programs hash the flow as the socket knows it (bound source address and
// port, VIP, port, protocol; the netns when unbound) and index the service's Maglev table with it. Both
// halves are computed here too (lbHash.flowHash, maglev.maglevTable), so each connection's backend is
// predicted exactly: the same flow always maps to the same backend, and removing a backend moves its
// flows and only the few others the new table moves.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceKey } from '../../src/datapath/codecs/lb.js';
import { backendBytes, flowHash, type LbClient } from '../../src/datapath/lbHash.js';
import { backendKey } from '../../src/datapath/lbPlan.js';
import { MAGLEV_DEFAULT_TABLE_SIZE, maglevTable } from '../../src/datapath/maglev.js';
import type { LbServiceIr } from '../../src/model/serviceLb.js';
import { describeKernel, kernelSuite } from './helpers.js';
import { type Attempt, type LbWorld, service, startLbWorld, tally } from './lbHarness.js';

const M = MAGLEV_DEFAULT_TABLE_SIZE;
const VIP = '10.96.2.1';
const VIP6 = 'fd00:96::2:1';

describeKernel(kernelSuite('Maglev consistent hashing at the socket'), () => {
  let w: LbWorld;
  let tcp: LbServiceIr;
  let udp: LbServiceIr;
  let v6: LbServiceIr;
  const nameOf = new Map<number, string>();

  beforeAll(async () => {
    w = await startLbWorld({
      m0: 'tcp:127.0.0.1',
      m1: 'tcp:127.0.0.1',
      m2: 'tcp:127.0.0.1',
      m3: 'tcp:127.0.0.1',
      m4: 'tcp:127.0.0.1',
      u0: 'udp:127.0.0.1',
      u1: 'udp:127.0.0.1',
      u2: 'udp:127.0.0.1',
      s0: 'tcp:::1',
      s1: 'tcp:::1',
      s2: 'tcp:::1',
    });
    for (const [name, port] of Object.entries(w.ports)) nameOf.set(port, name);
    const maglev = { algorithm: 'maglev' } as const;
    tcp = service(
      'default/cache/memcache',
      VIP,
      80,
      ['m0', 'm1', 'm2', 'm3', 'm4'].map((n) => w.backend(n)),
      maglev,
    );
    udp = service(
      'default/dns/dns',
      VIP,
      53,
      ['u0', 'u1', 'u2'].map((n) => w.backend(n)),
      {
        ...maglev,
        protocol: 'UDP',
      },
    );
    v6 = service(
      'default/cache6/memcache',
      VIP6,
      80,
      ['s0', 's1', 's2'].map((n) => w.backend(n)),
      maglev,
    );
    expect((await w.reconcile([tcp, udp, v6])).errors).toEqual([]);
  });

  afterAll(async () => {
    await w?.stop();
  });

  const keyOf = (s: LbServiceIr): ServiceKey => ({ address: s.address, port: s.port, protocol: s.protocol });

  /** The table as computed here: backend names, one per slot. */
  const tableOf = (s: LbServiceIr): string[] => {
    const ordered = [...s.backends].sort((a, b) =>
      backendKey(a.address, a.port) < backendKey(b.address, b.port) ? -1 : 1,
    );
    return maglevTable(
      ordered.map((b) => backendBytes(b.address, b.port)),
      M,
    ).map((i) => nameOf.get(ordered[i]?.port ?? 0) ?? '?');
  };

  /** The table the kernel has: the live slot set of the service, slot by slot. */
  const kernelTable = (s: LbServiceIr): string[] => {
    const v = w.lb.services.get(keyOf(s));
    if (v === undefined) throw new Error(`no service ${s.name}`);
    const slots = new Map<number, number>();
    for (const [k, slot] of w.lb.slots.entries())
      if (k.slotSet === v.slotSet) slots.set(k.slot, slot.backendId);
    return Array.from({ length: v.count }, (_, i) => {
      const b = w.lb.backends.get(slots.get(i) ?? 0);
      return nameOf.get(b?.port ?? 0) ?? '?';
    });
  };

  const predict = (s: LbServiceIr, table: readonly string[], client: LbClient): string =>
    table[flowHash(client, keyOf(s)) % M] ?? '?';

  const flows = Array.from({ length: 64 }, (_, i) => ({ address: '127.0.0.2', port: 41000 + i }));
  const from = flows.map((f) => `${f.address}:${f.port}`).join(',');

  const connect = async (): Promise<Attempt[]> => {
    const attempts = (await w.client(['tcp', VIP, '80', String(flows.length), from])) as Attempt[];
    expect(attempts.filter((a) => !a.ok)).toEqual([]);
    expect(attempts.map((a) => a.local)).toEqual(flows);
    return attempts;
  };

  describe('TCP', () => {
    let before: string[] = [];

    it('writes the table computed from the backends, each backend holding M/N slots', () => {
      const table = kernelTable(tcp);
      expect(table).toEqual(tableOf(tcp));
      for (const n of Object.values(tally(table.map((backend) => ({ ok: true, backend }))))) {
        expect([Math.floor(M / 5), Math.ceil(M / 5)]).toContain(n);
      }
    });

    it('sends each bound flow to the backend its hash picks, the same one every time', async () => {
      const table = tableOf(tcp);
      const first = await connect();
      before = first.map((a) => a.backend ?? '');
      expect(before).toEqual(flows.map((f) => predict(tcp, table, f)));
      expect(Object.keys(tally(first)).sort()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
      expect((await connect()).map((a) => a.backend)).toEqual(before);
      for (const a of first) expect(a.peer).toEqual({ address: VIP, port: 80 });
    });

    it('moves the flows of a removed backend, and of the others only those the new table moves', async () => {
      const without = { ...tcp, backends: tcp.backends.filter((b) => b.port !== w.ports['m2']) };
      await w.reconcile([without, udp, v6]);
      const table = tableOf(without);
      expect(kernelTable(without)).toEqual(table);
      const after = (await connect()).map((a) => a.backend ?? '');
      expect(after).toEqual(flows.map((f) => predict(without, table, f)));
      expect(after).not.toContain('m2');
      const moved = flows.filter((_, i) => before[i] !== 'm2' && after[i] !== before[i]);
      const onM2 = before.filter((b) => b === 'm2').length;
      expect(onM2).toBeGreaterThan(0);
      // Maglev's disruption for 5 → 4 backends is under 1% of the slots (maglev.test.ts): at most a
      // couple of the other flows.
      expect(moved.length).toBeLessThanOrEqual(2);
      await w.reconcile([tcp, udp, v6]);
      expect((await connect()).map((a) => a.backend)).toEqual(before);
    });

    it('sends every connection of an unbound client (one pod: its netns) to one backend', async () => {
      const attempts = (await w.client(['tcp', VIP, '80', '16'])) as Attempt[];
      expect(attempts.filter((a) => !a.ok)).toEqual([]);
      // Random picks would all agree with probability 5^-15.
      expect(Object.keys(tally(attempts))).toHaveLength(1);
    });
  });

  it('keeps a bound UDP socket on one backend, the one its hash picks, with replies from the VIP', async () => {
    const table = tableOf(udp);
    expect(kernelTable(udp)).toEqual(table);
    for (const port of [42000, 42001, 42002]) {
      const replies = (await w.client(['udp', VIP, '53', '8', `127.0.0.2:${port}`])) as Attempt[];
      expect(replies.filter((r) => !r.ok)).toEqual([]);
      const want = predict(udp, table, { address: '127.0.0.2', port });
      expect(replies.map((r) => r.backend)).toEqual(new Array(8).fill(want));
      for (const r of replies) expect(r.peer).toEqual({ address: VIP, port: 53 });
    }
  });

  it('hashes IPv6 flows the same way (connect6)', async () => {
    const table = tableOf(v6);
    expect(kernelTable(v6)).toEqual(table);
    const v6flows = Array.from({ length: 24 }, (_, i) => ({ address: '::1', port: 43000 + i }));
    const attempts = (await w.client([
      'tcp',
      VIP6,
      '80',
      String(v6flows.length),
      v6flows.map((f) => `[${f.address}]:${f.port}`).join(','),
    ])) as Attempt[];
    expect(attempts.filter((a) => !a.ok)).toEqual([]);
    expect(attempts.map((a) => a.backend)).toEqual(v6flows.map((f) => predict(v6, table, f)));
    expect(Object.keys(tally(attempts)).sort()).toEqual(['s0', 's1', 's2']);
  });
});
