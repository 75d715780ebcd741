import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkSupport } from '../src/datapath/addon.js';
import { encodeAddress } from '../src/datapath/codec.js';
import { PolicyEntryCodec, PolicyKeyCodec } from '../src/datapath/codecs/policy.js';
import { diffMaps, encodeEntries } from '../src/datapath/mapDiff.js';
import { PolicyDatapath } from '../src/datapath/policy.js';
import { planPolicy } from '../src/datapath/policyPlan.js';
import type { PolicyIr } from '../src/model/policy.js';
import { translatePolicy } from '../src/policy/translate.js';
import { emptyObjectSet, type NetworkPolicy, type ObjectSet, type Pod } from '../src/sources/objects.js';
import { machineInfo } from './machine.js';
import type { Bench, BenchResult } from './run.js';

/**
 * The policy datapath's two costs. Control plane: NetworkPolicy → IR → map entries, and the diff of an
 * unchanged and of a one-policy change, at growing cluster sizes (all pure, no kernel). Data plane: the
 * tc program's cost per packet (BPF_PROG_TEST_RUN, repeated in the kernel) for an interface it does not
 * manage, a packet of a tracked flow, and a new flow that runs every lookup (ipcache, CIDR, three policy
 * lookups) and is denied.
 */

interface Size {
  readonly namespaces: number;
  readonly podsPerNamespace: number;
  readonly localPods: number;
  readonly policiesPerNamespace: number;
}

function objects(size: Size, variant = 0): ObjectSet {
  const pods: Pod[] = [];
  const policies: NetworkPolicy[] = [];
  let local = 0;
  for (let n = 0; n < size.namespaces; n++) {
    const ns = `ns-${n}`;
    for (let p = 0; p < size.podsPerNamespace; p++) {
      const ip = `10.${(n >> 8) & 255}.${n & 255}.${p + 1}`;
      const onNode = local < size.localPods && p % Math.max(1, Math.floor(size.podsPerNamespace / 2)) === 0;
      if (onNode) local++;
      pods.push({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: `pod-${p}`,
          namespace: ns,
          labels: { app: `app-${p % 10}`, tier: p % 2 === 0 ? 'web' : 'db' },
        },
        spec: {
          nodeName: onNode ? 'node-1' : 'node-2',
          containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080 }] }],
        },
        status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
      });
    }
    for (let q = 0; q < size.policiesPerNamespace; q++) {
      policies.push({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: `np-${q}`, namespace: ns },
        spec: {
          podSelector: { matchLabels: { app: `app-${q % 10}` } },
          ingress: [
            {
              from: [
                { podSelector: { matchLabels: { tier: 'web' } } },
                {
                  namespaceSelector: {
                    matchLabels: { 'kubernetes.io/metadata.name': `ns-${(n + 1) % size.namespaces}` },
                  },
                },
              ],
              ports: [
                { port: 8080 + (variant === 0 || q !== 0 || n !== 0 ? 0 : 1) },
                { port: 'http' },
                { protocol: 'UDP', port: 5000, endPort: 5999 },
              ],
            },
            { from: [{ ipBlock: { cidr: '192.168.0.0/16', except: [`192.168.${q}.0/24`] } }] },
          ],
        },
      });
    }
  }
  return { ...emptyObjectSet, pods, networkPolicies: policies };
}

function median(samples: number[]): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

function time<T>(fn: () => T, runs: number): { ms: number; value: T } {
  let value = fn();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    value = fn();
    samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return { ms: Math.round(median(samples) * 100) / 100, value };
}

function interfaces(set: ObjectSet): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  for (const p of set.pods)
    if (p.spec?.nodeName === 'node-1' && p.status?.podIP !== undefined) out.set(p.status.podIP, `lxc${i++}`);
  return out;
}

function controlPlane(size: Size, runs: number): Record<string, number | string> {
  const before = objects(size);
  const after = objects(size, 1);
  const options = { nodeName: 'node-1', nodeAddresses: ['192.168.255.1'], interfaces: interfaces(before) };
  const t = time(() => translatePolicy(before, options), runs);
  const ir = t.value.ir;
  const ifindexes = new Map([...options.interfaces.values()].map((name, i) => [name, i + 2]));
  const p = time(() => planPolicy(ir, ifindexes), runs);
  const encode = (x: PolicyIr) =>
    encodeEntries(planPolicy(x, ifindexes).policy, PolicyKeyCodec, PolicyEntryCodec);
  const current = encode(ir);
  const same = time(() => diffMaps(current, encode(ir)), runs);
  const changedIr = translatePolicy(after, options).ir;
  const changed = time(() => diffMaps(current, encode(changedIr)), runs);
  return {
    pods: size.namespaces * size.podsPerNamespace,
    'local pods': ir.endpoints.length,
    policies: size.namespaces * size.policiesPerNamespace,
    identities: ir.identities.length,
    'policy entries': p.value.policy.length,
    'ipcache entries': p.value.ipcache.length,
    'translate ms': t.ms,
    'plan ms': p.ms,
    'plan+diff unchanged ms': same.ms,
    'unchanged writes': same.value.upserts.length + same.value.deletes.length,
    'plan+diff one change ms': changed.ms,
    'one change writes': changed.value.upserts.length + changed.value.deletes.length,
  };
}

function packet(src: string, dst: string, sport: number, dport: number, flags: number): Buffer {
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(0x0800, 12);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(40, 2);
  ip[8] = 64;
  ip[9] = 6;
  encodeAddress(src).copy(ip, 12, 12, 16);
  encodeAddress(dst).copy(ip, 16, 12, 16);
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(sport, 0);
  tcp.writeUInt16BE(dport, 2);
  tcp[12] = 0x50;
  tcp[13] = flags;
  return Buffer.concat([eth, ip, tcp]);
}

function dataPlane(repeat: number): Record<string, number | string>[] {
  const support = checkSupport();
  if (!support.ok) return [{ case: 'skipped', note: support.reason, 'ns/packet': Number.NaN }];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'skein-bench-bpffs-'));
  execFileSync('mount', ['-t', 'bpf', 'bpf', dir]);
  let dp: PolicyDatapath | undefined;
  try {
    dp = PolicyDatapath.load({ pinRoot: dir, flowEvents: 'none' });
    const ir = translatePolicy(
      objects({ namespaces: 20, podsPerNamespace: 20, localPods: 20, policiesPerNamespace: 5 }),
      {
        nodeName: 'node-1',
        interfaces: new Map(),
      },
    ).ir;
    const plan = planPolicy(ir, new Map());
    for (const [k, v] of plan.ipcache) dp.ipcache.set(k, v);
    for (const [k, v] of plan.cidrs) dp.cidrs.set(k, v);
    const rows: Record<string, number | string>[] = [];
    const run = (label: string, data: Buffer) => {
      const r = dp?.fromEndpoint.testRun(data, { repeat }) ?? { durationNs: Number.NaN, retval: 0 };
      rows.push({ case: label, retval: r.retval, 'ns/packet': r.durationNs });
    };
    const src = ir.ipcache[0]?.prefix.split('/')[0] ?? '10.0.0.1';
    const dst = ir.ipcache[1]?.prefix.split('/')[0] ?? '10.0.0.2';
    run('interface not managed', packet(src, dst, 40000, 8080, 0x02));
    // The test run's packets arrive on loopback (ifindex 1): make it an isolated endpoint with a few rules.
    dp.endpoints.set(1, { identity: ir.ipcache[0]?.identity ?? 256, flags: 3 });
    dp.policy.set(
      {
        prefixLength: 96,
        ifindex: 1,
        identity: ir.ipcache[1]?.identity ?? 257,
        direction: 'egress',
        protocol: 6,
        port: 8080,
      },
      { verdict: 'allow', proxyPort: 0 },
    );
    run('new flow, every lookup, denied', packet(src, dst, 40000, 9999, 0x02));
    run('tracked flow (first run allows and tracks it)', packet(src, dst, 40000, 8080, 0x10));
    return rows;
  } finally {
    dp?.close();
    execFileSync('umount', [dir]);
    rmdirSync(dir);
  }
}

export const bench: Bench = {
  name: 'policy-datapath',
  description: 'NetworkPolicy → IR → map entries and diffs by cluster size; the tc program per packet',
  async run({ quick }): Promise<BenchResult> {
    const sizes: Size[] = quick
      ? [{ namespaces: 4, podsPerNamespace: 10, localPods: 4, policiesPerNamespace: 2 }]
      : [
          { namespaces: 10, podsPerNamespace: 100, localPods: 50, policiesPerNamespace: 10 },
          { namespaces: 100, podsPerNamespace: 100, localPods: 100, policiesPerNamespace: 10 },
          { namespaces: 200, podsPerNamespace: 100, localPods: 100, policiesPerNamespace: 20 },
        ];
    const controlRows = sizes.map((s) => controlPlane(s, quick ? 1 : 5));
    console.table(controlRows);
    const packetRows = dataPlane(quick ? 100 : 1_000_000);
    console.table(packetRows);
    return { name: 'policy-datapath', machine: machineInfo(), controlPlane: controlRows, packet: packetRows };
  },
};
