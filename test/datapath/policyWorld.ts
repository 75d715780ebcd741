/**
 * The world of a policy test on the real kernel: a "node" network namespace and one namespace per "pod",
 * joined by veth pairs the way a CNI joins them (a /32 route per pod on the node, a default route via a
 * link-local gateway in the pod, static neighbours both ways), echo servers in every pod, and the policy
 * datapath attached to the host-side interfaces. Policies go in as Kubernetes objects and come out of
 * the real translator. stop() removes everything, in reverse order, whatever failed before.
 */

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { interfaceIndexes, ip, podInterfaces } from '../../src/datapath/interfaces.js';
import {
  cleanupPolicy,
  PolicyDatapath,
  type PolicyDatapathOptions,
  type ReconcileResult,
} from '../../src/datapath/policy.js';
import type { PolicyIr } from '../../src/model/policy.js';
import { translatePolicy } from '../../src/policy/translate.js';
import {
  type Diagnostic,
  emptyObjectSet,
  type Namespace,
  type NetworkPolicy,
  type ObjectSet,
  type Pod,
} from '../../src/sources/objects.js';
import {
  type Child,
  exec,
  FIXTURES,
  type Made,
  makeNetns,
  mountBpffs,
  removeAll,
  runInNetns,
  runToEnd,
} from './helpers.js';

export const NODE_NAME = 'node-1';

export interface PodSpec {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly address: string;
  readonly tcp: readonly number[];
  readonly udp: readonly number[];
  /** Named container ports (for NetworkPolicy named ports). */
  readonly containerPorts?: readonly { name: string; containerPort: number; protocol?: 'TCP' | 'UDP' }[];
}

export interface WorldPod {
  readonly spec: PodSpec;
  readonly netns: Made & { name: string };
  /** The host side of its veth, in the node namespace. */
  readonly hostInterface: string;
  readonly ifindex: number;
}

export interface Result {
  ok: boolean;
  reply?: string;
  code?: string;
}

/** A fixture process driven line by line over stdin/stdout. */
export interface Interactive {
  /** The next line it prints, within timeoutMs. */
  next(timeoutMs?: number): Promise<string>;
  /** Writes one line to its stdin and returns the next line it prints. */
  ask(line: string, timeoutMs?: number): Promise<string>;
  /** Ends its stdin and waits for it to exit (SIGKILL after 3 s). */
  close(): Promise<void>;
}

export interface Target {
  readonly proto: 'tcp' | 'udp';
  readonly host: string;
  readonly port: number;
}

export interface PolicyWorld {
  readonly node: Made & { name: string };
  readonly bpffs: Made;
  readonly nodeAddress: string;
  readonly pods: ReadonlyMap<string, WorldPod>;
  dp: PolicyDatapath;
  /** The objects the translator reads: the namespaces, the pods, and these policies. */
  objects(policies: readonly NetworkPolicy[]): ObjectSet;
  /** Translates and reconciles; the IR, the translator's diagnostics and what reconcile wrote. */
  apply(
    policies: readonly NetworkPolicy[],
  ): Promise<{ ir: PolicyIr; diagnostics: readonly Diagnostic[]; result: ReconcileResult }>;
  /** Attempts from inside a pod, all at once, each bounded by timeoutMs. */
  probe(from: string, targets: readonly Target[], timeoutMs?: number): Promise<Result[]>;
  /** Starts a fixture inside a pod (for traffic that runs while something else happens). */
  spawn(from: string, script: string, args: readonly string[]): Child;
  /** Starts a fixture inside a pod that reads commands from its stdin; ask() sends one, gets one line back. */
  interactive(from: string, script: string, args: readonly string[]): Interactive;
  /** Closes this datapath's handles and loads a new one on the same pins (an agent restart). */
  restart(): PolicyDatapath;
  stop(): Promise<void>;
}

const uniq = (): string => randomBytes(2).toString('hex');

async function mac(netns: string, dev: string): Promise<string> {
  const [link] = JSON.parse(await ip(['-j', 'link', 'show', 'dev', dev], netns)) as { address: string }[];
  if (link === undefined) throw new Error(`no interface ${dev} in ${netns}`);
  return link.address;
}

async function sysctl(netns: string, key: string, value: string): Promise<void> {
  await exec('nsenter', [`--net=${netns}`, '--', 'sysctl', '-q', '-w', `${key}=${value}`]);
}

export async function startPolicyWorld(
  specs: readonly PodSpec[],
  namespaces: readonly Namespace[],
  options: { nodeAddress: string; datapath?: PolicyDatapathOptions },
): Promise<PolicyWorld> {
  const made: Made[] = [];
  const children: Child[] = [];
  const closers: (() => Promise<void>)[] = [];
  let dp: PolicyDatapath | undefined;
  let bpffs: Made | undefined;
  const stop = async (): Promise<void> => {
    for (const c of children) await c.kill();
    for (const close of closers) await close();
    dp?.close();
    // Unmounting the private bpffs would drop the pins too; cleanup is what the agent runs.
    if (bpffs !== undefined) {
      try {
        cleanupPolicy({ pinRoot: bpffs.path, includeShared: true });
      } catch {
        // The unmount below removes whatever is left.
      }
    }
    await removeAll(made);
  };
  try {
    bpffs = await mountBpffs();
    made.push(bpffs);
    const node = await makeNetns();
    made.push(node);
    await sysctl(node.path, 'net.ipv4.ip_forward', '1');
    await sysctl(node.path, 'net.ipv6.conf.all.disable_ipv6', '1');
    await ip(['addr', 'add', `${options.nodeAddress}/32`, 'dev', 'lo'], node.path);

    const pods = new Map<string, WorldPod>();
    const tag = uniq();
    for (const [i, spec] of specs.entries()) {
      const netns = await makeNetns();
      made.push(netns);
      await sysctl(netns.path, 'net.ipv6.conf.all.disable_ipv6', '1');
      const host = `lxc${tag}${i}`;
      const peer = `sp${tag}${i}`;
      // Both ends are made in their own namespaces (no name ever exists in this one), then the pod's
      // end is renamed eth0 as a CNI would.
      await exec('ip', [
        'link',
        'add',
        host,
        'netns',
        node.name,
        'type',
        'veth',
        'peer',
        'name',
        peer,
        'netns',
        netns.name,
      ]);
      await ip(['link', 'set', peer, 'name', 'eth0'], netns.path);
      await ip(['addr', 'add', `${spec.address}/32`, 'dev', 'eth0'], netns.path);
      await ip(['link', 'set', 'eth0', 'up'], netns.path);
      await ip(['link', 'set', host, 'up'], node.path);
      const hostMac = await mac(node.path, host);
      const podMac = await mac(netns.path, 'eth0');
      await ip(['route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link'], netns.path);
      await ip(['route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0'], netns.path);
      await ip(
        ['neigh', 'add', '169.254.1.1', 'lladdr', hostMac, 'dev', 'eth0', 'nud', 'permanent'],
        netns.path,
      );
      await ip(['route', 'add', `${spec.address}/32`, 'dev', host], node.path);
      await ip(['neigh', 'add', spec.address, 'lladdr', podMac, 'dev', host, 'nud', 'permanent'], node.path);
      const server = runInNetns(netns.path, 'echo-server.mjs', [
        spec.name,
        spec.tcp.length === 0 ? '-' : spec.tcp.join(','),
        spec.udp.length === 0 ? '-' : spec.udp.join(','),
      ]);
      children.push(server);
      await server.firstLine();
      pods.set(`${spec.namespace}/${spec.name}`, { spec, netns, hostInterface: host, ifindex: 0 });
    }
    const indexes = await interfaceIndexes(node.path);
    for (const [k, p] of pods) pods.set(k, { ...p, ifindex: indexes.get(p.hostInterface) ?? 0 });

    const datapathOptions: PolicyDatapathOptions = {
      ...options.datapath,
      pinRoot: bpffs.path,
      netns: node.path,
    };
    dp = PolicyDatapath.load(datapathOptions);
    const world: PolicyWorld = {
      node,
      bpffs,
      nodeAddress: options.nodeAddress,
      pods,
      dp,
      objects(policies) {
        return { ...emptyObjectSet, namespaces, pods: specs.map(podObject), networkPolicies: policies };
      },
      async apply(policies) {
        // The edge, as the agent has it: pod interfaces from the node's routes, indexes from its links.
        const interfaces = await podInterfaces(node.path);
        const { ir, diagnostics } = translatePolicy(world.objects(policies), {
          nodeName: NODE_NAME,
          nodeAddresses: [options.nodeAddress],
          interfaces,
        });
        const result = world.dp.reconcile(ir, await interfaceIndexes(node.path));
        return { ir, diagnostics, result };
      },
      async probe(from, targets, timeoutMs = 800) {
        const pod = pods.get(from);
        if (pod === undefined) throw new Error(`no pod ${from}`);
        return (await runToEnd(
          runInNetns(pod.netns.path, 'probe.mjs', [String(timeoutMs), JSON.stringify(targets)]),
          30_000,
        )) as Result[];
      },
      spawn(from, script, args) {
        const pod = pods.get(from);
        if (pod === undefined) throw new Error(`no pod ${from}`);
        const child = runInNetns(pod.netns.path, script, args);
        children.push(child);
        return child;
      },
      interactive(from, script, args) {
        const pod = pods.get(from);
        if (pod === undefined) throw new Error(`no pod ${from}`);
        const child = spawn(
          'nsenter',
          [`--net=${pod.netns.path}`, '--', process.execPath, path.join(FIXTURES, script), ...args],
          {
            stdio: ['pipe', 'pipe', 'pipe'],
          },
        );
        const exited = new Promise<void>((r) => child.on('exit', () => r()));
        let done = false;
        void exited.then(() => {
          done = true;
        });
        const lines = createInterface({ input: child.stdout });
        const queue: string[] = [];
        const waiters: ((line: string) => void)[] = [];
        lines.on('line', (l) => {
          const w = waiters.shift();
          if (w !== undefined) w(l);
          else queue.push(l);
        });
        const next = (timeoutMs = 10_000): Promise<string> => {
          const queued = queue.shift();
          if (queued !== undefined) return Promise.resolve(queued);
          return new Promise((resolve, reject) => {
            const timer = setTimeout(
              () => reject(new Error(`${script} printed nothing within ${timeoutMs} ms`)),
              timeoutMs,
            );
            waiters.push((l) => {
              clearTimeout(timer);
              resolve(l);
            });
          });
        };
        const close = async (): Promise<void> => {
          child.stdin.end();
          if (done) return;
          const t = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(t);
        };
        closers.push(close);
        return {
          next,
          ask(line, timeoutMs) {
            child.stdin.write(`${line}\n`);
            return next(timeoutMs);
          },
          close,
        };
      },
      restart() {
        world.dp.close();
        dp = PolicyDatapath.load(datapathOptions);
        world.dp = dp;
        return dp;
      },
      stop,
    };
    return world;
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}

export function podObject(spec: PodSpec): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: spec.name, namespace: spec.namespace, labels: { ...spec.labels } },
    spec: {
      nodeName: NODE_NAME,
      containers: [
        {
          name: 'app',
          ...(spec.containerPorts === undefined ? {} : { ports: spec.containerPorts.map((p) => ({ ...p })) }),
        },
      ],
    },
    status: { phase: 'Running', podIP: spec.address, podIPs: [{ ip: spec.address }] },
  };
}

export function namespaceObject(name: string, labels: Readonly<Record<string, string>> = {}): Namespace {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { ...labels, 'kubernetes.io/metadata.name': name } },
  };
}

export function networkPolicy(
  namespace: string,
  name: string,
  spec: NonNullable<NetworkPolicy['spec']>,
  annotations?: Record<string, string>,
): NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace, ...(annotations === undefined ? {} : { annotations }) },
    spec,
  };
}
