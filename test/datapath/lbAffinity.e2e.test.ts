// ClientIP session affinity on the real kernel. The client is its network namespace plus the address its
// socket is bound to (connect() comes before the kernel picks a source), kept in the skein_affinity LRU
// map with its backend and last use. An entry is honoured while fresh and while its backend is still in
// the service's live slot set.

import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ServiceKey } from '../../src/datapath/codecs/lb.js';
import { flowHash } from '../../src/datapath/lbHash.js';
import { describeKernel, kernelSuite } from './helpers.js';
import { type Attempt, type LbWorld, service, startLbWorld, tally } from './lbHarness.js';

const VIP = '10.96.3.1';
const STICKY_VIP = '10.96.3.2';

describeKernel(kernelSuite('ClientIP session affinity at the socket'), () => {
  let w: LbWorld;
  const names = ['a', 'b', 'c', 'd'];

  beforeAll(async () => {
    w = await startLbWorld(Object.fromEntries(names.map((n) => [n, 'tcp:127.0.0.1'])), {
      reconciler: { maglevTableSize: 251 },
    });
  });

  afterAll(async () => {
    await w?.stop();
  });

  const idOf = (name: string): number => {
    const port = w.ports[name];
    for (const [id, b] of w.lb.backends.entries()) if (b.port === port) return id;
    throw new Error(`no backend id for ${name}`);
  };

  it('keeps each client on one backend, while different clients spread', async () => {
    const sticky = service(
      'default/sticky/80',
      VIP,
      80,
      names.map((n) => w.backend(n)),
      {
        sessionAffinity: { type: 'ClientIP', timeoutSeconds: 60 },
      },
    );
    expect((await w.reconcile([sticky])).errors).toEqual([]);
    // 16 clients (bound source addresses), 6 connections each, interleaved.
    const clients = Array.from({ length: 16 }, (_, i) => `127.0.0.${10 + i}`);
    const attempts = (await w.client(['tcp', VIP, '80', String(16 * 6), clients.join(',')])) as Attempt[];
    expect(attempts.filter((a) => !a.ok)).toEqual([]);
    const byClient = new Map<string, Set<string>>();
    for (const a of attempts) {
      const set = byClient.get(a.local?.address ?? '') ?? new Set();
      set.add(a.backend ?? '');
      byClient.set(a.local?.address ?? '', set);
    }
    expect([...byClient.keys()].sort()).toEqual([...clients].sort());
    for (const [client, backends] of byClient) expect([client, backends.size]).toEqual([client, 1]);
    // Without affinity each client's six picks would agree with probability 4^-5; across clients, the
    // 16 first picks all landing on one backend has probability 4^-15.
    expect(new Set([...byClient.values()].map((s) => [...s][0])).size).toBeGreaterThan(1);

    // The map holds one entry per client, all in this network namespace, naming the backend it got.
    const entries = w.lb.affinity.entries();
    expect(entries).toHaveLength(16);
    const cookies = new Set(entries.map(([k]) => k.netnsCookie));
    expect(cookies.size).toBe(1);
    expect([...cookies][0]).toBeGreaterThan(0n);
    for (const [k, v] of entries) {
      const got = [...(byClient.get(k.address) ?? [])][0] ?? '';
      expect(v.backendId).toBe(idOf(got));
    }
  });

  it('honours a fresh entry over the hash, re-picks after the timeout, refreshes on use', async () => {
    // Maglev + affinity: once an entry expires the pick is the hash's, which is predictable.
    const svc = service(
      'default/sticky-hash/80',
      STICKY_VIP,
      80,
      names.map((n) => w.backend(n)),
      {
        algorithm: 'maglev',
        sessionAffinity: { type: 'ClientIP', timeoutSeconds: 5 },
      },
    );
    await w.reconcile([svc]);
    const key: ServiceKey = { address: STICKY_VIP, port: 80, protocol: 'TCP' };
    const serviceId = w.lb.services.get(key)?.id;
    const client = '127.0.0.50';
    const connectFrom = async (port: number): Promise<string> => {
      const [a] = (await w.client(['tcp', STICKY_VIP, '80', '1', `${client}:${port}`])) as Attempt[];
      expect(a?.ok).toBe(true);
      return a?.backend ?? '';
    };

    // First connection: no entry, so the Maglev pick; it creates the entry.
    const hashPick = await connectFrom(45000);
    const entry = w.lb.affinity.entries().find(([k]) => k.address === client && k.serviceId === serviceId);
    expect(entry?.[1].backendId).toBe(idOf(hashPick));
    const akey = entry?.[0];
    if (akey === undefined) throw new Error('no affinity entry');

    // Find a source port whose hash picks something else than a backend `other`, to tell them apart.
    const other = names.find((n) => n !== hashPick) ?? '';
    const table = w.lb.slots
      .entries()
      .filter(([k]) => k.slotSet === w.lb.services.get(key)?.slotSet)
      .sort((x, y) => x[0].slot - y[0].slot)
      .map(([, v]) => v.backendId);
    const pickFor = (port: number): number =>
      table[flowHash({ address: client, port }, key) % table.length] ?? 0;
    let port = 45001;
    while (pickFor(port) === idOf(other)) port++;

    // A fresh entry naming `other` wins over the hash.
    const now = (): bigint => process.hrtime.bigint(); // CLOCK_MONOTONIC, as bpf_ktime_get_ns()
    w.lb.affinity.set(akey, { backendId: idOf(other), lastNs: now() - 1_000_000_000n });
    const before = now();
    expect(await connectFrom(port)).toBe(other);
    expect(w.lb.affinity.get(akey)?.lastNs).toBeGreaterThanOrEqual(before);

    // An entry idle for longer than the timeout is ignored: the hash picks, and the entry follows.
    w.lb.affinity.set(akey, { backendId: idOf(other), lastNs: now() - 6_000_000_000n });
    const fresh = await connectFrom(port);
    expect(idOf(fresh)).toBe(pickFor(port));
    expect(w.lb.affinity.get(akey)?.backendId).toBe(idOf(fresh));
  });

  it('stops sending a client to its backend at once when that backend leaves the service', async () => {
    const svc = service(
      'default/sticky/80',
      VIP,
      80,
      names.map((n) => w.backend(n)),
      {
        sessionAffinity: { type: 'ClientIP', timeoutSeconds: 60 },
      },
    );
    await w.reconcile([svc]);
    const client = '127.0.0.60';
    const [first] = (await w.client(['tcp', VIP, '80', '1', client])) as Attempt[];
    const mine = first?.backend ?? '';
    expect(names).toContain(mine);
    await w.reconcile([{ ...svc, backends: svc.backends.filter((b) => b.port !== w.ports[mine]) }]);
    const attempts = (await w.client(['tcp', VIP, '80', '10', client])) as Attempt[];
    expect(attempts.filter((a) => !a.ok)).toEqual([]);
    const counts = tally(attempts);
    expect(counts[mine]).toBeUndefined();
    // And the client sticks to its new backend.
    expect(Object.keys(counts)).toHaveLength(1);
  });
});
