// NetworkPolicy end to end on the real kernel: Kubernetes objects → src/policy/ → the policy IR →
// reconcile → tc programs on the host side of each pod's veth, with real TCP and UDP clients and servers in
// the pods' network namespaces (policyWorld.ts builds the node). Cases follow the upstream NetworkPolicy
// e2e tests (test/e2e/network/netpol) where one exists.

import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openPinnedLink, type RingBuffer } from '../../src/datapath/bpfObject.js';
import type { FlowEvent, Reason } from '../../src/datapath/codecs/flow.js';
import { interfaceIndexes, podInterfaces } from '../../src/datapath/interfaces.js';
import {
  cleanupPolicy,
  type MapCounts,
  POLICY_LINK_DIR,
  POLICY_PINNED_MAPS,
} from '../../src/datapath/policy.js';
import type { PolicyIr } from '../../src/model/policy.js';
import { translatePolicy } from '../../src/policy/translate.js';
import type { NetworkPolicy } from '../../src/sources/objects.js';
import { bpftool, describeKernel, exec, kernelSuite, removeAll, tempDir } from './helpers.js';
import {
  NODE_NAME,
  namespaceObject,
  networkPolicy,
  type PodSpec,
  type PolicyWorld,
  type Result,
  startPolicyWorld,
  type Target,
} from './policyWorld.js';

const PORTS = { tcp: [80, 81, 8000, 8005, 8006], udp: [53] };
const pods: PodSpec[] = [
  { namespace: 'x', name: 'a', labels: { pod: 'a' }, address: '10.77.1.10', ...PORTS },
  {
    namespace: 'x',
    name: 'b',
    labels: { pod: 'b' },
    address: '10.77.1.20',
    ...PORTS,
    containerPorts: [{ name: 'serve-80', containerPort: 80 }],
  },
  { namespace: 'y', name: 'a', labels: { pod: 'a' }, address: '10.77.2.10', ...PORTS },
  { namespace: 'y', name: 'c', labels: { pod: 'c' }, address: '10.77.2.30', ...PORTS },
];
const address = (key: string): string => pods.find((p) => `${p.namespace}/${p.name}` === key)?.address ?? '';
const tcpTo = (key: string, port: number): Target => ({ proto: 'tcp', host: address(key), port });
const udpTo = (key: string, port: number): Target => ({ proto: 'udp', host: address(key), port });

/** "ok" or the failure code, per target: easy to compare as a whole. */
const outcome = (rs: readonly Result[]): string[] =>
  rs.map((r) => (r.ok ? `ok ${r.reply}` : (r.code ?? 'error')));

describeKernel(
  kernelSuite('NetworkPolicy on the real kernel (tc on pod veths, real clients and servers)'),
  () => {
    let w: PolicyWorld;
    let flows: RingBuffer<FlowEvent>;
    let ir: PolicyIr;

    beforeAll(async () => {
      w = await startPolicyWorld(
        pods,
        [namespaceObject('x', { ns: 'x' }), namespaceObject('y', { ns: 'y' })],
        {
          nodeAddress: '10.77.0.1',
        },
      );
      flows = w.dp.flows();
    }, 120_000);
    afterAll(async () => {
      flows?.close();
      await w?.stop();
    });
    beforeEach(() => {
      flows.consume();
    });

    const apply = async (policies: readonly NetworkPolicy[]) => {
      const r = await w.apply(policies);
      expect(r.diagnostics).toEqual([]);
      ir = r.ir;
      return r.result;
    };
    const identityOf = (key: string): number => ir.endpoints.find((e) => e.name === key)?.identity ?? -1;
    const counter = (reason: Reason): bigint => w.dp.counters().get(reason)?.packets ?? 0n;

    /** Flow events seen within a bounded wait that match `filter`. */
    async function events(filter: (e: FlowEvent) => boolean, atLeast: number): Promise<FlowEvent[]> {
      const seen: FlowEvent[] = [];
      for (let i = 0; i < 20 && seen.filter(filter).length < atLeast; i++)
        seen.push(...(await flows.poll(100)));
      return seen.filter(filter);
    }

    it('lets every pod reach every other without policies, attaching two programs per pod', async () => {
      const result = await apply([]);
      expect(result).toMatchObject({ attached: 8, updated: 0, detached: 0, missing: [] });
      expect(result.written.endpoints).toBe(4);
      expect(result.written.policy).toBe(0);
      const r = await w.probe('x/a', [
        tcpTo('x/b', 80),
        udpTo('x/b', 53),
        tcpTo('y/a', 81),
        udpTo('y/c', 53),
      ]);
      expect(outcome(r)).toEqual(['ok b:hi', 'ok b:hi', 'ok a:hi', 'ok c:hi']);
      const seen = await events((e) => e.source === address('x/a') && e.destination === address('x/b'), 2);
      expect(seen[0]).toMatchObject({
        hook: 'policyEgress',
        verdict: 'pass',
        reason: 'policyNotEnforced',
        sourceIdentity: identityOf('x/a'),
        destinationIdentity: identityOf('x/b'),
      });
    });

    it('allows into a pod only from pods by label in its namespace, on the port the policy names', async () => {
      // Upstream: "should enforce policy to allow traffic from pods within server namespace based on PodSelector"
      await apply([
        networkPolicy('x', 'allow-a-to-b', {
          podSelector: { matchLabels: { pod: 'b' } },
          ingress: [
            {
              from: [{ podSelector: { matchLabels: { pod: 'a' } } }],
              ports: [{ protocol: 'TCP', port: 80 }],
            },
          ],
        }),
      ]);
      const denied = counter('policyDenied');
      const targets = [tcpTo('x/b', 80), tcpTo('x/b', 81), udpTo('x/b', 53)];
      expect(outcome(await w.probe('x/a', targets))).toEqual(['ok b:hi', 'TIMEOUT', 'TIMEOUT']);
      expect(outcome(await w.probe('y/a', targets))).toEqual(['TIMEOUT', 'TIMEOUT', 'TIMEOUT']);
      // x/b is isolated for ingress only: it still reaches out, and the replies come back in.
      expect(outcome(await w.probe('x/b', [tcpTo('y/c', 80), udpTo('x/a', 53)]))).toEqual([
        'ok c:hi',
        'ok a:hi',
      ]);
      // Every dropped attempt is counted (SYN retransmissions too) and reported with its reason and peers.
      expect(counter('policyDenied') - denied).toBeGreaterThanOrEqual(5n);
      const drops = await events((e) => e.verdict === 'drop' && e.source === address('y/a'), 1);
      expect(drops[0]).toMatchObject({
        reason: 'policyDenied',
        hook: 'policyIngress', // decided at the sender, for the local receiver's ingress
        destination: address('x/b'),
        sourceIdentity: identityOf('y/a'),
        destinationIdentity: identityOf('x/b'),
      });
    });

    it('adds up policies: a namespaceSelector with a podSelector, and a namespaceSelector alone', async () => {
      // Upstream: "should enforce policy based on PodSelector and NamespaceSelector", "… only from a
      // different namespace, based on NamespaceSelector", "should enforce multiple, stacked policies …"
      await apply([
        networkPolicy('x', 'allow-a-to-b', {
          podSelector: { matchLabels: { pod: 'b' } },
          ingress: [
            {
              from: [{ podSelector: { matchLabels: { pod: 'a' } } }],
              ports: [{ protocol: 'TCP', port: 80 }],
            },
          ],
        }),
        networkPolicy('x', 'allow-y-c-to-b', {
          podSelector: { matchLabels: { pod: 'b' } },
          ingress: [
            {
              from: [
                {
                  namespaceSelector: { matchLabels: { ns: 'y' } },
                  podSelector: { matchLabels: { pod: 'c' } },
                },
              ],
            },
          ],
        }),
        networkPolicy('x', 'allow-ns-y-to-a', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
        }),
      ]);
      const toB = [tcpTo('x/b', 80), tcpTo('x/b', 81), udpTo('x/b', 53)];
      expect(outcome(await w.probe('y/c', toB))).toEqual(['ok b:hi', 'ok b:hi', 'ok b:hi']);
      expect(outcome(await w.probe('y/a', toB))).toEqual(['TIMEOUT', 'TIMEOUT', 'TIMEOUT']);
      expect(outcome(await w.probe('x/a', toB))).toEqual(['ok b:hi', 'TIMEOUT', 'TIMEOUT']);
      const toA = [tcpTo('x/a', 81), udpTo('x/a', 53)];
      expect(outcome(await w.probe('y/a', toA))).toEqual(['ok a:hi', 'ok a:hi']);
      expect(outcome(await w.probe('x/b', toA))).toEqual(['TIMEOUT', 'TIMEOUT']);
    });

    it('allows egress to an ipBlock but not to its except, pods inside it included', async () => {
      // Upstream: "should enforce except clause while egress access to server in CIDR block"
      const result = await apply([
        networkPolicy('y', 'egress-cidr', {
          podSelector: { matchLabels: { pod: 'a' } },
          policyTypes: ['Egress'],
          egress: [{ to: [{ ipBlock: { cidr: '10.77.0.0/16', except: ['10.77.2.0/24'] } }] }],
        }),
      ]);
      expect(result.written.cidrs).toBe(2);
      const targets = [tcpTo('x/a', 80), udpTo('x/b', 53), tcpTo('y/c', 80), udpTo('y/c', 53)];
      expect(outcome(await w.probe('y/a', targets))).toEqual(['ok a:hi', 'ok b:hi', 'TIMEOUT', 'TIMEOUT']);
      const drops = await events((e) => e.verdict === 'drop' && e.source === address('y/a'), 1);
      expect(drops[0]).toMatchObject({
        hook: 'policyEgress',
        reason: 'policyDenied',
        destination: address('y/c'),
      });
      // Isolated for egress only: y/a still answers what comes in.
      expect(outcome(await w.probe('y/c', [tcpTo('y/a', 80)]))).toEqual(['ok a:hi']);
    });

    it('allows a port range (endPort) and only the protocol a port names', async () => {
      // Upstream: "should not allow access by TCP when a policy specifies only UDP"; endPort ranges.
      await apply([
        networkPolicy('x', 'ranges', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [
            {
              ports: [
                { protocol: 'TCP', port: 8000, endPort: 8005 },
                { protocol: 'UDP', port: 53 },
              ],
            },
          ],
        }),
      ]);
      const targets = [8000, 8005, 8006, 80].map((p) => tcpTo('x/a', p));
      expect(outcome(await w.probe('y/c', [...targets, udpTo('x/a', 53)]))).toEqual([
        'ok a:hi',
        'ok a:hi',
        'TIMEOUT',
        'TIMEOUT',
        'ok a:hi',
      ]);
    });

    it('resolves a named port against the selected pod', async () => {
      // Upstream: "should allow ingress access on one named port"
      await apply([
        networkPolicy('x', 'named', {
          podSelector: { matchLabels: { pod: 'b' } },
          ingress: [{ ports: [{ port: 'serve-80' }] }],
        }),
      ]);
      expect(outcome(await w.probe('y/a', [tcpTo('x/b', 80), tcpTo('x/b', 81)]))).toEqual([
        'ok b:hi',
        'TIMEOUT',
      ]);
    });

    it('keeps an established connection when a policy starts to deny it, and refuses new ones', async () => {
      await apply([]);
      const held = w.interactive('x/a', 'held-connection.mjs', [address('x/b'), '81']);
      try {
        expect(JSON.parse(await held.next())).toEqual({ connected: true });
        expect(JSON.parse(await held.ask('one'))).toEqual({ reply: 'b:one' });
        // Upstream: "should support a 'default-deny-all' policy", on both ends.
        await apply([
          networkPolicy('x', 'default-deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
        ]);
        const established = counter('ctEstablished');
        expect(JSON.parse(await held.ask('two'))).toEqual({ reply: 'b:two' });
        expect(counter('ctEstablished')).toBeGreaterThan(established);
        expect(outcome(await w.probe('x/a', [tcpTo('x/b', 81), tcpTo('x/b', 80)]))).toEqual([
          'TIMEOUT',
          'TIMEOUT',
        ]);
      } finally {
        await held.close();
      }
    });

    it('keeps every connection working through an agent restart, which rewrites nothing', async () => {
      const policies = [
        networkPolicy('x', 'allow-a-to-b', {
          podSelector: { matchLabels: { pod: 'b' } },
          ingress: [
            {
              from: [{ podSelector: { matchLabels: { pod: 'a' } } }],
              ports: [{ protocol: 'TCP', port: 80 }],
            },
          ],
        }),
      ];
      await apply(policies);
      // 40 connections, one every 50 ms; the restart happens while they run.
      const loop = w.spawn('x/a', 'probe.mjs', ['1000', 'loop', 'tcp', address('x/b'), '80', '40', '50']);
      for (let i = 0; i < 100 && loop.lines.length < 10; i++) await new Promise((r) => setTimeout(r, 20));
      expect(loop.lines.length).toBeGreaterThanOrEqual(10);
      flows.close();
      w.restart();
      flows = w.dp.flows();
      const result = await apply(policies);
      expect(result.written).toEqual({ endpoints: 0, ipcache: 0, cidrs: 0, policy: 0 });
      expect(result.deleted).toEqual({ endpoints: 0, ipcache: 0, cidrs: 0, policy: 0 });
      // The pinned links switch to the new process's programs in place (BPF_LINK_UPDATE).
      expect(result).toMatchObject({ attached: 0, updated: 8, detached: 0 });
      const code = await loop.exited;
      expect(code).toBe(0);
      const attempts = loop.lines.map((l) => JSON.parse(l) as Result);
      expect(attempts).toHaveLength(40);
      expect(attempts.filter((a) => !a.ok)).toEqual([]);
      // The restarted datapath enforces changes.
      await apply([networkPolicy('x', 'deny-b', { podSelector: { matchLabels: { pod: 'b' } } })]);
      expect(outcome(await w.probe('x/a', [tcpTo('x/b', 80)]))).toEqual(['TIMEOUT']);
    });

    describe('writes to the maps, as the kernel sees the syscalls', () => {
      let dir: Awaited<ReturnType<typeof tempDir>> | undefined;
      beforeAll(async () => {
        dir = await tempDir('skein-policy-strace-');
      });
      afterAll(async () => {
        await removeAll([dir]);
      });

      /**
       * Runs `fn` (synchronous: the event loop is held, so nothing else of this process runs) under strace
       * attached to this process, and returns the bpf() map writes it made: every update and delete.
       */
      async function mapWrites<T>(fn: () => T): Promise<{ result: T; writes: string[] }> {
        const out = path.join(dir?.path ?? '', `strace-${Date.now()}.txt`);
        const st = spawn('strace', ['-f', '-p', String(process.pid), '-e', 'trace=bpf', '-o', out], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        st.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        const exited = new Promise((r) => st.on('exit', r));
        try {
          for (let i = 0; i < 100 && !stderr.includes('attached'); i++)
            await new Promise((r) => setTimeout(r, 20));
          expect(stderr).toContain('attached');
          await new Promise((r) => setTimeout(r, 200)); // every thread attached
          const result = fn();
          await new Promise((r) => setTimeout(r, 100));
          return {
            result,
            writes: await (async () => {
              st.kill('SIGINT');
              await exited;
              return (await readFile(out, 'utf8'))
                .split('\n')
                .filter((l) => /BPF_MAP_(UPDATE|DELETE)_(ELEM|BATCH)/.test(l));
            })(),
          };
        } finally {
          if (st.exitCode === null) {
            st.kill('SIGKILL');
            await exited;
          }
        }
      }

      it('writes nothing for an unchanged IR, and exactly what it reports for a change', async () => {
        const egress = (except: string) =>
          networkPolicy('y', 'egress-cidr', {
            podSelector: { matchLabels: { pod: 'a' } },
            policyTypes: ['Egress'],
            egress: [{ to: [{ ipBlock: { cidr: '10.77.0.0/16', except: [except] } }] }],
          });
        const { ir: same } = await w.apply([egress('10.77.2.0/24')]);
        const indexes = await interfaceIndexes(w.node.path);
        const unchanged = await mapWrites(() => w.dp.reconcile(same, indexes));
        expect(unchanged.result.written).toEqual({ endpoints: 0, ipcache: 0, cidrs: 0, policy: 0 });
        expect(unchanged.writes).toEqual([]);
        const { ir: next } = translatePolicy(w.objects([egress('10.77.2.0/25')]), {
          nodeName: NODE_NAME,
          nodeAddresses: [w.nodeAddress],
          interfaces: await podInterfaces(w.node.path),
        });
        const changed = await mapWrites(() => w.dp.reconcile(next, indexes));
        const total = (m: MapCounts) => m.endpoints + m.ipcache + m.cidrs + m.policy;
        expect(total(changed.result.written)).toBeGreaterThan(0);
        expect(changed.writes.filter((l) => l.includes('UPDATE'))).toHaveLength(
          total(changed.result.written),
        );
        expect(changed.writes.filter((l) => l.includes('DELETE'))).toHaveLength(
          total(changed.result.deleted),
        );
      });
    });

    it('refuses an IR that does not validate and keeps enforcing the last good one', async () => {
      await apply([networkPolicy('x', 'deny-b', { podSelector: { matchLabels: { pod: 'b' } } })]);
      const { ir: good } = await w.apply([
        networkPolicy('x', 'deny-b', { podSelector: { matchLabels: { pod: 'b' } } }),
      ]);
      const bad: PolicyIr = { ...good, ipcache: good.ipcache.map((e) => ({ ...e, identity: 999 })) };
      expect(() => w.dp.reconcile(bad, new Map())).toThrow(
        /SKEIN_POLICY_IR_REJECTED: .*SKEIN_POLICY_UNKNOWN_IDENTITY ipcache\[0\]\.identity/,
      );
      expect(outcome(await w.probe('x/a', [tcpTo('x/b', 80), tcpTo('y/c', 80)]))).toEqual([
        'TIMEOUT',
        'ok c:hi',
      ]);
    });

    it('cleans up: detaches every program and removes every pin, and traffic flows unfiltered', async () => {
      await apply([networkPolicy('x', 'deny-b', { podSelector: { matchLabels: { pod: 'b' } } })]);
      const linkDir = path.join(w.bpffs.path, POLICY_LINK_DIR);
      const pins = readdirSync(linkDir);
      expect(pins).toHaveLength(8);
      const ids = pins.map((p) => {
        const l = openPinnedLink(path.join(linkDir, p));
        const id = l.info().id;
        l.close();
        return id;
      });
      const result = cleanupPolicy({ pinRoot: w.bpffs.path });
      expect(result.detached).toBe(8);
      expect([...result.unpinned].sort()).toEqual([...POLICY_PINNED_MAPS].sort());
      expect(readdirSync(w.bpffs.path).filter((f) => f.startsWith('skein_') && f !== 'skein_flows')).toEqual(
        [],
      );
      // The links are gone from the kernel (bpftool finds no link of those ids).
      for (const id of ids)
        await expect(exec(bpftool(), ['link', 'show', 'id', String(id)])).rejects.toThrow();
      expect(outcome(await w.probe('x/a', [tcpTo('x/b', 80)]))).toEqual(['ok b:hi']);
      // Twice is fine.
      expect(cleanupPolicy({ pinRoot: w.bpffs.path })).toEqual({ detached: 0, unpinned: [] });
    });
  },
);
