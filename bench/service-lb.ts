import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { requireSupport } from '../src/datapath/addon.js';
import type { BpfLink } from '../src/datapath/bpfObject.js';
import { cgroup2Mount } from '../src/datapath/cgroup.js';
import { LbDatapath } from '../src/datapath/lb.js';
import { LbReconciler } from '../src/datapath/lbReconcile.js';
import type { LbServiceIr } from '../src/model/serviceLb.js';
import { machineInfo, printTable } from './machine.js';
import type { Bench, BenchResult } from './run.js';

/**
 * Service load-balancing: connect() latency (p50/p99) and connections per second from a pod (a network
 * namespace) to a ClusterIP, with N services loaded, side by side in one run:
 *
 * - direct: connect() to a backend address, no load-balancing at all (the baseline);
 * - skein: connect() to the VIP from a cgroup with Skein's socket programs; N services in the maps,
 *   written by the reconciler from the services IR;
 * - iptables: connect() to the VIP through a kube-proxy-style nat ruleset (KUBE-SERVICES → KUBE-SVC-* →
 *   KUBE-SEP-* with `statistic --mode random` probabilities and DNAT), N services, loaded with
 *   iptables-restore.
 *
 * Every connection picks one of the N services at random (the same sequence in every mode), so the
 * iptables walk covers the whole chain, as real traffic does. The loop is a small C program
 * (bench/service-lb-connect.c, compiled here with the system compiler); rounds of the three modes
 * alternate, so drift on a shared machine hits them alike. Figures are reported against direct.
 *
 * The backend runs on CPU 1 and every connect loop on CPU 0 (when there are two): left to the scheduler,
 * whether the two share a core decides the latency more than anything measured here.
 *
 * Topology: a backend namespace with two veth links, one to the client namespace of direct and skein,
 * one to the client namespace that holds the iptables rules (kube-proxy installs KUBE-SERVICES in the
 * nat OUTPUT chain as well as in PREROUTING; a pod's traffic walks it in the node's PREROUTING, the walk
 * is the same). So neither of the first two pays for the rules or conntrack of the third. The DNAT path
 * needs conntrack; that cost is part of what it is compared on.
 */

const COUNTS = [10, 1000, 10_000, 30_000, 100_000];
const QUICK_COUNTS = [10, 100];
const BACKEND_PORTS = [8081, 8082];
const SERVICE_PORT = 80;

/** skein1 and iptables1: every connection to the one service in the middle of the N (a hot working set). */
type Mode = 'direct' | 'skein' | 'iptables' | 'skein1' | 'iptables1';
const MODES: readonly Mode[] = ['direct', 'skein', 'iptables', 'skein1', 'iptables1'];
const viaIptables = (m: Mode): boolean => m === 'iptables' || m === 'iptables1';

interface Stats {
  readonly count: number;
  readonly failed: number;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
  readonly meanUs: number;
  readonly cps: number;
}

function run(cmd: string, args: readonly string[], input?: string, timeoutMs = 600_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err)
          reject(new Error(`${cmd} ${args.slice(0, 6).join(' ')} failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
    if (input !== undefined) {
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(input);
    }
  });
}

/** The IPv4 VIP of service i: 10.96.0.1 and up (10.96.0.0/12, room for a million). */
function vip(i: number): string {
  const n = (10 << 24) | (96 << 16) | (i + 1);
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const chainHash = (s: string): string =>
  createHash('sha256').update(s).digest('hex').slice(0, 16).toUpperCase();

/**
 * The nat table kube-proxy's iptables mode writes for N ClusterIP services of two endpoints each: one
 * KUBE-SERVICES rule per service port (walked in order for every new connection), a KUBE-SVC chain that
 * picks an endpoint with `statistic --mode random --probability 1/k`, and a KUBE-SEP chain per endpoint
 * with the hairpin mark and the DNAT; KUBE-NODEPORTS last, and the masquerade chain in POSTROUTING.
 */
export function kubeProxyRules(n: number, backend: string): string {
  const chains = [
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-NODEPORTS - [0:0]',
    ':KUBE-POSTROUTING - [0:0]',
    ':KUBE-MARK-MASQ - [0:0]',
  ];
  const rules = [
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
  ];
  const svcRules: string[] = [];
  const sepRules: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = `bench/svc-${i}:http`;
    const svc = `KUBE-SVC-${chainHash(`${name}/tcp`)}`;
    chains.push(`:${svc} - [0:0]`);
    rules.push(
      `-A KUBE-SERVICES -d ${vip(i)}/32 -p tcp -m comment --comment "${name} cluster IP" -m tcp --dport ${SERVICE_PORT} -j ${svc}`,
    );
    BACKEND_PORTS.forEach((port, j) => {
      const endpoint = `${backend}:${port}`;
      const sep = `KUBE-SEP-${chainHash(`${name}/tcp/${endpoint}`)}`;
      chains.push(`:${sep} - [0:0]`);
      const left = BACKEND_PORTS.length - j;
      const pick = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(11)}` : '';
      svcRules.push(`-A ${svc} -m comment --comment "${name} -> ${endpoint}"${pick} -j ${sep}`);
      sepRules.push(`-A ${sep} -s ${backend}/32 -m comment --comment "${name}" -j KUBE-MARK-MASQ`);
      sepRules.push(
        `-A ${sep} -p tcp -m comment --comment "${name}" -m tcp -j DNAT --to-destination ${endpoint}`,
      );
    });
  }
  rules.push(
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
  );
  return ['*nat', ...chains, ...rules, ...svcRules, ...sepRules, 'COMMIT', ''].join('\n');
}

/** `taskset -c CPU` when this machine has more than one CPU. */
const pin = (cpu: number): string[] => (os.cpus().length > 1 ? ['taskset', '-c', String(cpu)] : []);

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

function stats(latenciesNs: number[], failed: number, elapsedNs: number): Stats {
  const sorted = Float64Array.from(latenciesNs).sort();
  const sum = latenciesNs.reduce((a, b) => a + b, 0);
  return {
    count: latenciesNs.length,
    failed,
    p50Us: percentile(sorted, 50) / 1000,
    p90Us: percentile(sorted, 90) / 1000,
    p99Us: percentile(sorted, 99) / 1000,
    maxUs: (sorted[sorted.length - 1] ?? Number.NaN) / 1000,
    meanUs: sum / Math.max(1, latenciesNs.length) / 1000,
    cps: latenciesNs.length / (elapsedNs / 1e9),
  };
}

interface World {
  readonly dir: string;
  readonly bin: string;
  readonly ns: { backends: string; client: string; iptables: string };
  readonly cgroup: string;
  readonly bpffs: string;
  readonly server: ChildProcess;
  readonly lb: LbDatapath;
  readonly links: BpfLink[];
  readonly reconciler: LbReconciler;
}

/** What this kernel and the installed iptables can do, tried on a scratch ruleset in the rules' namespace. */
async function probeIptables(
  ns: string,
): Promise<{ ok: true; version: string } | { ok: false; reason: string }> {
  let version: string;
  try {
    version = (await run('iptables-restore', ['--version'])).trim();
  } catch {
    return {
      ok: false,
      reason: 'iptables is not installed (`apt-get update && apt-get install -y iptables`)',
    };
  }
  try {
    await run('ip', ['netns', 'exec', ns, 'iptables-restore', '--test'], kubeProxyRules(2, '10.202.0.1'));
  } catch (err) {
    return {
      ok: false,
      reason: `this kernel or iptables refuses the kube-proxy matches (statistic, comment, mark, addrtype, DNAT, MASQUERADE): ${err instanceof Error ? err.message : String(err)}`,
    };
  }
  return { ok: true, version };
}

async function setUp(): Promise<World> {
  requireSupport();
  const id = randomBytes(3).toString('hex');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'skein-bench-lb-'));
  const bin = path.join(dir, 'service-lb-connect');
  await run('cc', ['-O2', '-Wall', '-o', bin, path.join(import.meta.dirname, 'service-lb-connect.c')]);
  const ns = { backends: `sklb-${id}-be`, client: `sklb-${id}-c`, iptables: `sklb-${id}-i` };
  for (const n of Object.values(ns)) {
    await run('ip', ['netns', 'add', n]);
    await run('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
  }
  const links: [string, string, string][] = [
    [ns.client, `sk${id}c`, '10.201.0'],
    [ns.iptables, `sk${id}i`, '10.202.0'],
  ];
  for (const [client, veth, net] of links) {
    await run('ip', [
      'link',
      'add',
      `${veth}0`,
      'netns',
      ns.backends,
      'type',
      'veth',
      'peer',
      'name',
      `${veth}1`,
      'netns',
      client,
    ]);
    await run('ip', ['-n', ns.backends, 'addr', 'add', `${net}.1/24`, 'dev', `${veth}0`]);
    await run('ip', ['-n', client, 'addr', 'add', `${net}.2/24`, 'dev', `${veth}1`]);
    await run('ip', ['-n', ns.backends, 'link', 'set', `${veth}0`, 'up']);
    await run('ip', ['-n', client, 'link', 'set', `${veth}1`, 'up']);
    await run('ip', ['-n', client, 'route', 'add', 'default', 'via', `${net}.1`]);
    await run('ip', [
      'netns',
      'exec',
      client,
      'sysctl',
      '-q',
      '-w',
      'net.ipv4.ip_local_port_range=1024 65000',
    ]);
  }
  const server = spawn(
    'ip',
    ['netns', 'exec', ns.backends, ...pin(1), bin, 'serve', ...BACKEND_PORTS.map(String)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the bench backend did not start in 10 s')), 10_000);
    server.stdout?.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    server.once('exit', (code) => reject(new Error(`the bench backend exited with ${code}`)));
  });
  const bpffs = path.join(dir, 'bpffs');
  await mkdir(bpffs);
  await run('mount', ['-t', 'bpf', 'bpf', bpffs]);
  const root = cgroup2Mount();
  if (root === undefined) throw new Error('no cgroup v2 hierarchy is mounted');
  const cgroup = path.join(root, `skein-bench-${id}`);
  await mkdir(cgroup);
  const lb = LbDatapath.load({ pinRoot: bpffs });
  const attached = lb.attachCgroup(cgroup);
  return { dir, bin, ns, cgroup, bpffs, server, lb, links: attached, reconciler: new LbReconciler(lb) };
}

async function tearDown(w: World | undefined): Promise<void> {
  if (w === undefined) return;
  for (const l of w.links) l.close();
  w.lb.close();
  if (w.server.exitCode === null) {
    w.server.kill('SIGTERM');
    await new Promise((r) => w.server.once('exit', r));
  }
  await rmdir(w.cgroup).catch(() => undefined);
  await run('umount', [w.bpffs]).catch(() => run('umount', ['-l', w.bpffs]));
  for (const n of Object.values(w.ns)) await run('ip', ['netns', 'del', n]).catch(() => undefined);
  await rm(w.dir, { recursive: true, force: true });
}

interface LoopResult {
  count: number;
  failed: number;
  firstError: string;
  elapsedNs: number;
  latencies: number[];
}

async function connectLoop(
  w: World,
  mode: Mode,
  targets: string,
  conns: number,
  seed: number,
): Promise<LoopResult> {
  const out = path.join(w.dir, `lat-${mode}.txt`);
  const loop = [...pin(0), w.bin, 'connect', targets, out, String(conns), '60000', String(seed)];
  const netns = `--net=/run/netns/${viaIptables(mode) ? w.ns.iptables : w.ns.client}`;
  const argv =
    mode === 'skein' || mode === 'skein1'
      ? [
          'sh',
          '-c',
          'echo $$ > "$1" && shift && exec "$@"',
          'sh',
          path.join(w.cgroup, 'cgroup.procs'),
          'nsenter',
          netns,
          '--',
          ...loop,
        ]
      : ['nsenter', netns, '--', ...loop];
  const [cmd = 'sh', ...args] = argv;
  const summary = JSON.parse(await run(cmd, args, undefined, 120_000)) as Omit<LoopResult, 'latencies'>;
  const latencies = (await readFile(out, 'utf8'))
    .split('\n')
    .filter((l) => l !== '')
    .map(Number);
  return { ...summary, latencies };
}

export const bench: Bench = {
  name: 'service-lb',
  description:
    'connect() p50/p99 and rate from a pod netns to a ClusterIP with N services: Skein socket LB vs kube-proxy iptables vs direct',
  async run({ quick }): Promise<BenchResult> {
    const counts = quick ? QUICK_COUNTS : COUNTS;
    const rounds = quick ? 1 : 6;
    const conns = quick ? 300 : 4000;
    let w: World | undefined;
    const rows: Record<string, string | number>[] = [];
    const rateRows: Record<string, string | number>[] = [];
    const oneRows: Record<string, string | number>[] = [];
    const results: Record<string, unknown>[] = [];
    let iptables: Awaited<ReturnType<typeof probeIptables>> = { ok: false, reason: 'not probed' };
    try {
      w = await setUp();
      iptables = await probeIptables(w.ns.iptables);
      if (!iptables.ok) process.stdout.write(`iptables column skipped: ${iptables.reason}\n`);
      const backend = '10.201.0.1';
      const direct = path.join(w.dir, 'direct.txt');
      await writeFile(direct, BACKEND_PORTS.map((p) => `${backend} ${p}\n`).join(''));
      for (const n of counts) {
        // Load N services into the maps (the reconciler writes only the new ones) and into iptables.
        const services: LbServiceIr[] = Array.from({ length: n }, (_, i) => ({
          name: `bench/svc-${i}/http`,
          address: vip(i),
          port: SERVICE_PORT,
          protocol: 'TCP',
          algorithm: 'random',
          backends: BACKEND_PORTS.map((port) => ({ address: backend, port, state: 'active' as const })),
        }));
        const s0 = performance.now();
        const report = await w.reconciler.reconcile({ services });
        const skeinLoadMs = performance.now() - s0;
        if (report.errors.length > 0) throw new Error(`reconcile failed: ${report.errors[0]?.message}`);
        let iptablesLoadMs = Number.NaN;
        if (iptables.ok) {
          const rules = kubeProxyRules(n, '10.202.0.1');
          const t0 = performance.now();
          await run('ip', ['netns', 'exec', w.ns.iptables, 'iptables-restore'], rules, 900_000);
          iptablesLoadMs = performance.now() - t0;
          // Closed (RST) connections would sit 10 s in conntrack; let them go quickly (this netns only).
          await run('ip', [
            'netns',
            'exec',
            w.ns.iptables,
            'sysctl',
            '-q',
            '-w',
            'net.netfilter.nf_conntrack_tcp_timeout_close=1',
          ]).catch(() => undefined);
        }
        const vips = path.join(w.dir, 'vips.txt');
        await writeFile(vips, services.map((s) => `${s.address} ${SERVICE_PORT}\n`).join(''));
        const one = path.join(w.dir, 'one.txt');
        await writeFile(one, `${vip(Math.floor(n / 2))} ${SERVICE_PORT}\n`);
        const targets: Record<Mode, string> = {
          direct,
          skein: vips,
          iptables: vips,
          skein1: one,
          iptables1: one,
        };

        const none = (): Record<Mode, number> => ({
          direct: 0,
          skein: 0,
          iptables: 0,
          skein1: 0,
          iptables1: 0,
        });
        const lat: Record<Mode, number[]> = {
          direct: [],
          skein: [],
          iptables: [],
          skein1: [],
          iptables1: [],
        };
        const failed = none();
        const elapsed = none();
        const errors: Partial<Record<Mode, string>> = {};
        for (let r = 0; r < rounds; r++) {
          for (const mode of MODES) {
            if (viaIptables(mode) && !iptables.ok) continue;
            const res = await connectLoop(w, mode, targets[mode], conns, 1000 + r);
            lat[mode].push(...res.latencies);
            failed[mode] += res.failed;
            elapsed[mode] += res.elapsedNs;
            if (res.firstError !== '') errors[mode] = res.firstError;
          }
        }
        const st = Object.fromEntries(MODES.map((m) => [m, stats(lat[m], failed[m], elapsed[m])])) as Record<
          Mode,
          Stats
        >;
        results.push({ services: n, skeinLoadMs, iptablesLoadMs, ...st, errors });
        rows.push({
          services: n,
          'direct p50': st.direct.p50Us,
          'direct p99': st.direct.p99Us,
          'skein p50': st.skein.p50Us,
          'skein p99': st.skein.p99Us,
          'iptables p50': st.iptables.p50Us,
          'iptables p99': st.iptables.p99Us,
          'skein/direct p50': st.skein.p50Us / st.direct.p50Us,
          'skein/direct p99': st.skein.p99Us / st.direct.p99Us,
          'iptables/direct p99': st.iptables.p99Us / st.direct.p99Us,
          'iptables/skein p99': st.iptables.p99Us / st.skein.p99Us,
        });
        oneRows.push({
          services: n,
          'skein p50': st.skein1.p50Us,
          'skein p99': st.skein1.p99Us,
          'iptables p50': st.iptables1.p50Us,
          'iptables p99': st.iptables1.p99Us,
          'skein/direct p50': st.skein1.p50Us / st.direct.p50Us,
          'iptables/direct p50': st.iptables1.p50Us / st.direct.p50Us,
          'iptables/skein p99': st.iptables1.p99Us / st.skein1.p99Us,
        });
        rateRows.push({
          services: n,
          'direct conn/s': Math.round(st.direct.cps),
          'skein conn/s': Math.round(st.skein.cps),
          'iptables conn/s': Math.round(st.iptables.cps),
          'skein/direct': st.skein.cps / st.direct.cps,
          'iptables/direct': st.iptables.cps / st.direct.cps,
          failed: MODES.map((m) => failed[m]).join('/'),
          'skein load ms': skeinLoadMs,
          'iptables load ms': iptablesLoadMs,
        });
        process.stdout.write(`  ${n} services: done\n`);
      }
    } finally {
      await tearDown(w);
    }
    printTable(
      'connect() latency in µs from a pod netns to a ClusterIP (random service of N each time)',
      rows,
    );
    printTable(
      'connect() latency in µs to the one service in the middle of the N (direct as above)',
      oneRows,
    );
    printTable(
      'connections per second (one connect loop, random service; failed: direct/skein/iptables/skein1/iptables1) and the time to load N services',
      rateRows,
    );
    const first = results[0] as { skein: Stats; direct: Stats } | undefined;
    const flat = results.map((r) => {
      const x = r as { services: number; skein: Stats; direct: Stats };
      return {
        services: x.services,
        'skein p50 vs first': first === undefined ? Number.NaN : x.skein.p50Us / first.skein.p50Us,
        'skein p99 vs first': first === undefined ? Number.NaN : x.skein.p99Us / first.skein.p99Us,
        'skein/direct p50 vs first':
          first === undefined
            ? Number.NaN
            : x.skein.p50Us / x.direct.p50Us / (first.skein.p50Us / first.direct.p50Us),
      };
    });
    printTable('flatness: Skein at N services against Skein at the smallest N (1.00 = flat)', flat);
    return {
      name: 'service-lb',
      machine: machineInfo(),
      config: {
        counts,
        rounds,
        connectionsPerRound: conns,
        backendsPerService: BACKEND_PORTS.length,
        cpus: os.cpus().length > 1 ? 'connect loops on CPU 0, backend on CPU 1' : 'one CPU',
      },
      iptables: iptables.ok ? { backend: iptables.version } : { skipped: iptables.reason },
      latency: rows,
      oneService: oneRows,
      rate: rateRows,
      flatness: flat,
      raw: results,
    };
  },
};
