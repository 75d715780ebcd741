// Service load-balancing end to end, on the real kernel: the socket programs attached to a cgroup v2
// directory, a client process inside it (and inside a network namespace of its own, so a connection
// that were not translated could go nowhere), backends in that namespace, services reconciled from IR.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openPinnedLink, type RingBuffer, unpin } from '../../src/datapath/bpfObject.js';
import type { FlowEvent } from '../../src/datapath/codecs/flow.js';
import { LbCgroupPrograms } from '../../src/datapath/codecs/lb.js';
import { LbDatapath } from '../../src/datapath/lb.js';
import type { LbServiceIr } from '../../src/model/serviceLb.js';
import {
  bpftool,
  describeKernel,
  exec,
  kernelSuite,
  type Made,
  makeCgroup,
  removeAll,
  runInCgroup,
  runToEnd,
} from './helpers.js';
import { type Attempt, type LbWorld, service, startLbWorld, tally } from './lbHarness.js';

const VIP = '10.96.0.10';
const VIP6 = 'fd00:96::10';

describeKernel(
  kernelSuite('service load-balancing at the socket (cgroup connect/sendmsg/recvmsg/getpeername)'),
  () => {
    let w: LbWorld;
    let flows: RingBuffer<FlowEvent> | undefined;
    const extra: Made[] = [];
    let tcp: LbServiceIr;
    let udp: LbServiceIr;
    let v6: LbServiceIr;

    beforeAll(async () => {
      w = await startLbWorld(
        {
          a: 'tcp:127.0.0.1',
          b: 'tcp:127.0.0.1',
          c: 'tcp:127.0.0.1',
          d: 'tcp:127.0.0.1',
          'udp-a': 'udp:127.0.0.1',
          'udp-b': 'udp:127.0.0.1',
          'v6-a': 'tcp:::1',
          'v6-b': 'tcp:::1',
        },
        { lb: { lbEvents: true } },
      );
      flows = w.lb.flows();
      tcp = service(
        'default/web/http',
        VIP,
        80,
        ['a', 'b', 'c', 'd'].map((n) => w.backend(n)),
      );
      udp = service('default/dns/dns', VIP, 53, [w.backend('udp-a'), w.backend('udp-b')], {
        protocol: 'UDP',
      });
      v6 = service('default/web6/http', VIP6, 8080, [w.backend('v6-a'), w.backend('v6-b')]);
      const report = await w.reconcile([tcp, udp, v6]);
      expect(report.errors).toEqual([]);
    });

    afterAll(async () => {
      flows?.close();
      await removeAll([...extra]);
      await w?.stop();
    });

    const tcpClient = async (host: string, port: number, n: number): Promise<Attempt[]> =>
      (await w.client(['tcp', host, String(port), String(n)])) as Attempt[];

    it('spreads 400 connections over all four backends, each near a quarter, and getpeername shows the VIP', async () => {
      const attempts = await tcpClient(VIP, 80, 400);
      expect(attempts.filter((a) => !a.ok)).toEqual([]);
      const counts = tally(attempts);
      expect(Object.keys(counts).sort()).toEqual(['a', 'b', 'c', 'd']);
      // Binomial(400, 1/4): mean 100, sd 8.7; outside 60..140 has a probability below 1e-5.
      for (const n of Object.values(counts)) {
        expect(n).toBeGreaterThanOrEqual(60);
        expect(n).toBeLessThanOrEqual(140);
      }
      for (const a of attempts) expect(a.peer).toEqual({ address: VIP, port: 80 });
      // getpeername found the VIP in each socket's own storage: no TCP socket left an skein_revnat entry.
      const tcpPorts = new Set(['a', 'b', 'c', 'd'].map((n) => w.ports[n]));
      expect(w.lb.revnat.entries().filter(([k]) => tcpPorts.has(k.port))).toEqual([]);
    });

    it('reports each translation as a flow event naming the service and the backend', async () => {
      flows?.consume();
      const attempts = await tcpClient(VIP, 80, 12);
      expect(attempts.filter((a) => !a.ok)).toEqual([]);
      const events = flows?.consume() ?? [];
      const connects = events.filter((e) => e.hook === 'connect4');
      expect(connects).toHaveLength(12);
      const backendPorts = ['a', 'b', 'c', 'd'].map((n) => w.ports[n]);
      for (const e of connects) {
        expect(e).toMatchObject({
          verdict: 'translated',
          reason: 'lbBackend',
          originalDestination: VIP,
          originalDestinationPort: 80,
          destination: '127.0.0.1',
          protocol: 6,
        });
        expect(backendPorts).toContain(e.destinationPort);
        expect(e.cookie).toBeGreaterThan(0n);
      }
      const peers = events.filter((e) => e.hook === 'getpeername4');
      expect(peers.length).toBeGreaterThanOrEqual(12);
      expect(peers[0]).toMatchObject({
        verdict: 'translated',
        reason: 'lbReverse',
        source: VIP,
        sourcePort: 80,
      });
    });

    it('sends no new connection to a removed backend, and takes it back when it returns', async () => {
      const without = { ...tcp, backends: tcp.backends.filter((b) => b.port !== w.ports['d']) };
      const report = await w.reconcile([without, udp, v6]);
      expect(report.changed).toEqual(['default/web/http']);
      const attempts = await tcpClient(VIP, 80, 60);
      expect(attempts.filter((a) => !a.ok)).toEqual([]);
      expect(Object.keys(tally(attempts)).sort()).toEqual(['a', 'b', 'c']);
      await w.reconcile([tcp, udp, v6]);
      expect(Object.keys(tally(await tcpClient(VIP, 80, 60))).sort()).toEqual(['a', 'b', 'c', 'd']);
    });

    it('uses terminating backends only while no backend is active (kube-proxy fallback)', async () => {
      const mixed = { ...tcp, backends: [w.backend('a', 'terminating'), w.backend('b')] };
      await w.reconcile([mixed, udp, v6]);
      expect(tally(await tcpClient(VIP, 80, 30))).toEqual({ b: 30 });
      const allTerminating = {
        ...tcp,
        backends: [w.backend('a', 'terminating'), w.backend('b', 'terminating')],
      };
      await w.reconcile([allTerminating, udp, v6]);
      // 40 picks of two backends all on one: probability 2^-39.
      expect(Object.keys(tally(await tcpClient(VIP, 80, 40))).sort()).toEqual(['a', 'b']);
      await w.reconcile([tcp, udp, v6]);
    });

    it('translates UDP datagrams to a backend and their replies back to the VIP (sendmsg4/recvmsg4)', async () => {
      flows?.consume();
      const attempts = (await w.client(['udp', VIP, '53', '24'])) as Attempt[];
      expect(attempts.filter((a) => !a.ok)).toEqual([]);
      expect(Object.keys(tally(attempts)).sort()).toEqual(['udp-a', 'udp-b']);
      for (const a of attempts) expect(a.peer).toEqual({ address: VIP, port: 53 });
      // Unconnected UDP: one skein_revnat entry per (socket, backend) the datagrams went to.
      const udpPorts = new Set([w.ports['udp-a'], w.ports['udp-b']]);
      expect(w.lb.revnat.entries().filter(([k]) => udpPorts.has(k.port))).toHaveLength(2);
      const events = flows?.consume() ?? [];
      expect(events.filter((e) => e.hook === 'sendmsg4' && e.verdict === 'translated')).toHaveLength(24);
      expect(events.filter((e) => e.hook === 'recvmsg4' && e.reason === 'lbReverse')).toHaveLength(24);
    });

    it('translates an IPv4 service for a dual-stack IPv6 socket (connect6, mapped address)', async () => {
      const attempts = await tcpClient(`::ffff:${VIP}`, 80, 8);
      expect(attempts.filter((a) => !a.ok)).toEqual([]);
      for (const a of attempts) expect(a.peer).toEqual({ address: `::ffff:${VIP}`, port: 80 });
    });

    it('balances an IPv6 service over IPv6 backends (connect6/getpeername6)', async () => {
      flows?.consume();
      const attempts = await tcpClient(VIP6, 8080, 40);
      expect(attempts.filter((a) => !a.ok)).toEqual([]);
      expect(Object.keys(tally(attempts)).sort()).toEqual(['v6-a', 'v6-b']);
      for (const a of attempts) expect(a.peer).toEqual({ address: VIP6, port: 8080 });
      const connects = (flows?.consume() ?? []).filter((e) => e.hook === 'connect6');
      expect(connects).toHaveLength(40);
      expect(connects[0]).toMatchObject({
        originalDestination: VIP6,
        destination: '::1',
        reason: 'lbBackend',
      });
    });

    it('refuses connections to a service without backends (EPERM) and says why in a flow event', async () => {
      await w.reconcile([{ ...tcp, backends: [] }, udp, v6]);
      expect(w.lb.services.get({ address: VIP, port: 80, protocol: 'TCP' })).toMatchObject({
        slotSet: 0,
        count: 0,
      });
      flows?.consume();
      expect(await tcpClient(VIP, 80, 2)).toEqual([
        { ok: false, code: 'EPERM' },
        { ok: false, code: 'EPERM' },
      ]);
      const drops = (flows?.consume() ?? []).filter((e) => e.hook === 'connect4');
      expect(drops).toHaveLength(2);
      expect(drops[0]).toMatchObject({
        verdict: 'drop',
        reason: 'lbNoBackends',
        destination: VIP,
        destinationPort: 80,
      });
      await w.reconcile([tcp, udp, v6]);
    });

    it('keeps balancing through pinned links after every handle is closed, until unpinned', async () => {
      const pinDir = path.join(w.bpffs.path, 'links');
      const cg = await makeCgroup();
      extra.push(cg);
      const second = LbDatapath.load({ pinRoot: w.bpffs.path });
      try {
        // The pinned maps were reused: the services set up above are there.
        expect(second.services.get({ address: VIP, port: 80, protocol: 'TCP' })?.count).toBe(4);
        for (const l of second.attachCgroup(cg.path, { pinDir })) l.close();
      } finally {
        // Close everything this process holds for the second instance: only the pins keep it attached.
        second.close();
      }
      const attached = async (): Promise<number> => {
        // bpftool prints a JSON array of the attached programs, or nothing at all when there are none.
        const out = (await exec(bpftool(), ['cgroup', 'show', cg.path, '-j'])).trim();
        return out === '' ? 0 : (JSON.parse(out) as unknown[]).length;
      };
      try {
        expect(await attached()).toBe(LbCgroupPrograms.length);
        const attempts = (await runToEnd(
          runInCgroup(cg.path, w.netns.path, 'lb-client.mjs', ['tcp', VIP, '80', '6']),
        )) as Attempt[];
        expect(attempts.filter((a) => !a.ok)).toEqual([]);
        const link = openPinnedLink(path.join(pinDir, 'skein_connect4'));
        expect(link.info().id).toBeGreaterThan(0);
        link.close();
      } finally {
        for (const name of LbCgroupPrograms) unpin(path.join(pinDir, name));
      }
      // The last reference is gone: the kernel detaches (links are freed asynchronously; wait a little).
      for (let i = 0; i < 50 && (await attached()) > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(await attached()).toBe(0);
    });

    it('leaves no process in the cgroup', async () => {
      expect((await readFile(path.join(w.cgroup.path, 'cgroup.procs'), 'utf8')).trim()).toBe('');
    });
  },
);
