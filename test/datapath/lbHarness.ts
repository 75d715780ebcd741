/**
 * The world of a service load-balancing test on the real kernel: a private bpffs, a cgroup v2 directory
 * with the socket programs attached, a network namespace of its own where named backend servers run on
 * loopback (so a connection that were not translated could go nowhere), and a reconciler over the maps.
 * Clients run inside both the cgroup and the namespace. stop() removes everything it made.
 */

import type { BpfLink } from '../../src/datapath/bpfObject.js';
import { LbDatapath, type LbOptions } from '../../src/datapath/lb.js';
import {
  type LbReconcileReport,
  LbReconciler,
  type LbReconcilerOptions,
} from '../../src/datapath/lbReconcile.js';
import type { LbBackendIr, LbServiceIr, ServicesIr } from '../../src/model/serviceLb.js';
import {
  type Child,
  type Made,
  makeCgroup,
  makeNetns,
  mountBpffs,
  removeAll,
  runInCgroup,
  runInNetns,
  runToEnd,
} from './helpers.js';

export interface Attempt {
  ok: boolean;
  backend?: string;
  code?: string;
  peer?: { address: string; port: number };
  local?: { address: string; port: number };
}

export interface LoadAttempt {
  /** CLOCK_MONOTONIC ns before connect() and after the answer. */
  s: string;
  e: string;
  ok: boolean;
  backend?: string;
  code?: string;
}

export interface LbWorld {
  readonly lb: LbDatapath;
  readonly reconciler: LbReconciler;
  readonly bpffs: Made;
  readonly cgroup: Made;
  readonly netns: Made & { name: string };
  /** Server name → port (all on loopback of the namespace). */
  readonly ports: Readonly<Record<string, number>>;
  /** The server as an IR backend: its loopback address and port. */
  backend(name: string, state?: LbBackendIr['state']): LbBackendIr;
  reconcile(services: readonly LbServiceIr[]): Promise<LbReconcileReport>;
  /** Runs lb-client.mjs inside the cgroup and the namespace to its end; its lines as JSON. */
  client(args: readonly string[], timeoutMs?: number): Promise<unknown[]>;
  /** Starts lb-client.mjs without waiting (for load that runs during map updates). */
  spawnClient(args: readonly string[]): Child;
  stop(): Promise<void>;
}

/** `name=tcp:127.0.0.1` per server; `::1` servers are IPv6. */
export async function startLbWorld(
  servers: Readonly<Record<string, string>>,
  options: { lb?: LbOptions; reconciler?: LbReconcilerOptions } = {},
): Promise<LbWorld> {
  const made: Made[] = [];
  let lb: LbDatapath | undefined;
  let links: BpfLink[] = [];
  let serversChild: Child | undefined;
  const stop = async (): Promise<void> => {
    for (const l of links) l.close();
    lb?.close();
    await serversChild?.kill();
    await removeAll(made);
  };
  try {
    const bpffs = await mountBpffs();
    made.push(bpffs);
    const cgroup = await makeCgroup();
    made.push(cgroup);
    const netns = await makeNetns();
    made.push(netns);
    const hosts: Record<string, string> = {};
    const args = Object.entries(servers).map(([name, spec]) => {
      hosts[name] = spec.slice(spec.indexOf(':') + 1);
      return `${name}=${spec}`;
    });
    serversChild = runInNetns(netns.path, 'lb-servers.mjs', args);
    const ports = JSON.parse(await serversChild.firstLine()) as Record<string, number>;
    const datapath = LbDatapath.load({ pinRoot: bpffs.path, ...options.lb });
    lb = datapath;
    const reconciler = new LbReconciler(datapath, options.reconciler);
    links = datapath.attachCgroup(cgroup.path);
    const spawnClient = (a: readonly string[]): Child =>
      runInCgroup(cgroup.path, netns.path, 'lb-client.mjs', a);
    return {
      lb: datapath,
      reconciler,
      bpffs,
      cgroup,
      netns,
      ports,
      backend(name, state = 'active') {
        const port = ports[name];
        const address = hosts[name];
        if (port === undefined || address === undefined) throw new Error(`no server ${name}`);
        return { address, port, state };
      },
      reconcile: (services) => reconciler.reconcile({ services } satisfies ServicesIr),
      client: (a, timeoutMs) => runToEnd(spawnClient(a), timeoutMs),
      spawnClient,
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

/** An IR service with defaults: random, TCP, no affinity. */
export function service(
  name: string,
  address: string,
  port: number,
  backends: readonly LbBackendIr[],
  extra: Partial<Omit<LbServiceIr, 'name' | 'address' | 'port' | 'backends'>> = {},
): LbServiceIr {
  return { name, address, port, protocol: 'TCP', algorithm: 'random', backends, ...extra };
}

/** How many attempts each backend answered. */
export function tally(attempts: readonly Attempt[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of attempts) if (a.backend !== undefined) out[a.backend] = (out[a.backend] ?? 0) + 1;
  return out;
}
