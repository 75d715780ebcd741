// Service load-balancing end to end, on the real kernel: the socket programs attached to a cgroup v2
// directory, a client process inside it (and inside a network namespace of its own, so a connection
// that were not translated could go nowhere), backends in that namespace, services in the maps.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type BpfLink, openPinnedLink, type RingBuffer, unpin } from '../../src/datapath/bpfObject.js';
import type { FlowEvent } from '../../src/datapath/codecs/flow.js';
import { LbCgroupPrograms, type ServiceKey } from '../../src/datapath/codecs/lb.js';
import { LbDatapath } from '../../src/datapath/lb.js';
import {
  bpftool,
  type Child,
  describeKernel,
  exec,
  kernelSuite,
  type Made,
  makeCgroup,
  makeNetns,
  mountBpffs,
  removeAll,
  runInCgroup,
  runInNetns,
  runToEnd,
} from './helpers.js';

interface Attempt {
  ok: boolean;
  backend?: string;
  code?: string;
  peer?: { address: string; port: number };
}

interface Ports {
  tcpA: number;
  tcpB: number;
  udpA: number;
  udpB: number;
  tcp6: number | null;
}

const VIP = '10.96.0.10';
const TCP_SERVICE: ServiceKey = { address: VIP, port: 80, protocol: 'TCP' };
const UDP_SERVICE: ServiceKey = { address: VIP, port: 53, protocol: 'UDP' };
const V6_SERVICE: ServiceKey = { address: 'fd00:96::10', port: 8080, protocol: 'TCP' };

describeKernel(
  kernelSuite('service load-balancing at the socket (cgroup connect/sendmsg/recvmsg/getpeername)'),
  () => {
    let bpffs: Made | undefined;
    let cgroup: Made | undefined;
    let netns: (Made & { name: string }) | undefined;
    let backends: Child | undefined;
    let lb: LbDatapath | undefined;
    let flows: RingBuffer<FlowEvent> | undefined;
    let links: BpfLink[] = [];
    let ports: Ports;
    const extra: Made[] = [];

    beforeAll(async () => {
      bpffs = await mountBpffs();
      cgroup = await makeCgroup();
      netns = await makeNetns();
      backends = runInNetns(netns.path, 'backends.mjs', []);
      ports = JSON.parse(await backends.firstLine()) as Ports;

      lb = LbDatapath.load({ pinRoot: bpffs.path, lbEvents: true });
      flows = lb.flows();
      lb.backends.setMany([
        [1, { address: '127.0.0.1', port: ports.tcpA }],
        [2, { address: '127.0.0.1', port: ports.tcpB }],
        [3, { address: '127.0.0.1', port: ports.udpA }],
        [4, { address: '127.0.0.1', port: ports.udpB }],
      ]);
      if (ports.tcp6 !== null) lb.backends.set(5, { address: '::1', port: ports.tcp6 });
      lb.setServiceBackends(TCP_SERVICE, 1, [1, 2]);
      lb.setServiceBackends(UDP_SERVICE, 2, [3, 4]);
      lb.setServiceBackends(V6_SERVICE, 3, [5]);
      links = lb.attachCgroup(cgroup.path);
    });

    afterAll(async () => {
      for (const l of links) l.close();
      flows?.close();
      lb?.close();
      await backends?.kill();
      await removeAll([bpffs, netns, cgroup, ...extra]);
    });

    const client = (mode: 'tcp' | 'udp', host: string, port: number, n: number): Promise<Attempt[]> =>
      runToEnd(
        runInCgroup(cgroup?.path ?? '', netns?.path, 'client.mjs', [mode, host, String(port), String(n)]),
      ) as Promise<Attempt[]>;

    it('balances TCP connections to the VIP over both backends, and getpeername shows the VIP', async () => {
      flows?.consume();
      const attempts = await client('tcp', VIP, 80, 24);
      expect(attempts.filter((a) => !a.ok)).toEqual([]);
      // 24 random picks from two backends all landing on one: probability 2^-23.
      expect(new Set(attempts.map((a) => a.backend))).toEqual(new Set(['tcp-a', 'tcp-b']));
      for (const a of attempts) expect(a.peer).toEqual({ address: VIP, port: 80 });

      const events = flows?.consume() ?? [];
      const connects = events.filter((e) => e.hook === 'connect4');
      expect(connects).toHaveLength(24);
      for (const e of connects) {
        expect(e).toMatchObject({
          verdict: 'translated',
          reason: 'lbBackend',
          originalDestination: VIP,
          originalDestinationPort: 80,
          destination: '127.0.0.1',
          protocol: 6,
        });
        expect([ports.tcpA, ports.tcpB]).toContain(e.destinationPort);
        expect(e.cookie).toBeGreaterThan(0n);
      }
      const peers = events.filter((e) => e.hook === 'getpeername4');
      expect(peers.length).toBeGreaterThanOrEqual(24);
      expect(peers[0]).toMatchObject({
        verdict: 'translated',
        reason: 'lbReverse',
        source: VIP,
        sourcePort: 80,
      });
    });

    it('sends new connections only to the remaining backend once one is removed', async () => {
      lb?.setServiceBackends(TCP_SERVICE, 1, [2]);
      expect(lb?.services.get(TCP_SERVICE)).toEqual({ id: 1, count: 1 });
      expect(lb?.slots.get({ serviceId: 1, slot: 1 })).toBeUndefined();
      lb?.backends.delete(1);
      const attempts = await client('tcp', VIP, 80, 12);
      expect(attempts.map((a) => a.backend)).toEqual(new Array(12).fill('tcp-b'));
      lb?.backends.set(1, { address: '127.0.0.1', port: ports.tcpA });
      lb?.setServiceBackends(TCP_SERVICE, 1, [1, 2]);
    });

    it('translates UDP datagrams to a backend and their replies back to the VIP (sendmsg4/recvmsg4)', async () => {
      flows?.consume();
      const attempts = await client('udp', VIP, 53, 24);
      expect(attempts.filter((a) => !a.ok)).toEqual([]);
      expect(new Set(attempts.map((a) => a.backend))).toEqual(new Set(['udp-a', 'udp-b']));
      for (const a of attempts) expect(a.peer).toEqual({ address: VIP, port: 53 });
      const events = flows?.consume() ?? [];
      expect(events.filter((e) => e.hook === 'sendmsg4' && e.verdict === 'translated')).toHaveLength(24);
      expect(events.filter((e) => e.hook === 'recvmsg4' && e.reason === 'lbReverse')).toHaveLength(24);
    });

    it('translates an IPv4 service for a dual-stack IPv6 socket (connect6, mapped address)', async () => {
      const attempts = await client('tcp', `::ffff:${VIP}`, 80, 8);
      expect(attempts.filter((a) => !a.ok)).toEqual([]);
      for (const a of attempts) expect(a.peer).toEqual({ address: `::ffff:${VIP}`, port: 80 });
    });

    it('translates an IPv6 service to an IPv6 backend (connect6/getpeername6)', async (ctx) => {
      if (ports.tcp6 === null) ctx.skip();
      flows?.consume();
      const attempts = await client('tcp', V6_SERVICE.address, 8080, 4);
      expect(attempts.map((a) => a.backend)).toEqual(new Array(4).fill('tcp6'));
      for (const a of attempts) expect(a.peer).toEqual({ address: 'fd00:96::10', port: 8080 });
      const connects = (flows?.consume() ?? []).filter((e) => e.hook === 'connect6');
      expect(connects[0]).toMatchObject({
        originalDestination: 'fd00:96::10',
        destination: '::1',
        reason: 'lbBackend',
      });
    });

    it('refuses connections to a service without backends (EPERM) and says why in a flow event', async () => {
      lb?.setServiceBackends(TCP_SERVICE, 1, []);
      flows?.consume();
      const attempts = await client('tcp', VIP, 80, 2);
      expect(attempts).toEqual([
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
      lb?.setServiceBackends(TCP_SERVICE, 1, [1, 2]);
    });

    it('keeps balancing through pinned links after every handle is closed, until unpinned', async () => {
      const pinDir = path.join(bpffs?.path ?? '', 'links');
      const cg = await makeCgroup();
      extra.push(cg);
      const second = LbDatapath.load({ pinRoot: bpffs?.path ?? '' });
      try {
        // The pinned maps were reused: the services set up above are there.
        expect(second.services.get(TCP_SERVICE)).toEqual({ id: 1, count: 2 });
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
          runInCgroup(cg.path, netns?.path, 'client.mjs', ['tcp', VIP, '80', '6']),
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
      expect((await readFile(path.join(cgroup?.path ?? '', 'cgroup.procs'), 'utf8')).trim()).toBe('');
    });
  },
);
