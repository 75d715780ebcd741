/**
 * One node for the agent's datapath tests, as a chained CNI leaves it, with its Kubernetes objects on the
 * real API server: a "node" network namespace, one namespace per pod joined to it by a veth pair (a /32
 * route per pod on the node, a default route via a link-local gateway in the pod), servers inside the
 * pods, a cgroup v2 directory the pods' clients run in (the socket load-balancing programs attach
 * there), a private bpffs, and the Pods (with their addresses in status), the Node (its address) and
 * the Namespace on the API server. Nothing of Skein runs here: the agent under test programs it all.
 * stop() removes everything, last made first, whatever failed before.
 */

import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { ip } from '../../src/datapath/interfaces.js';
import {
  type Child,
  exec,
  type Made,
  makeCgroup,
  makeNetns,
  mountBpffs,
  removeAll,
  runInCgroup,
  runInNetns,
  runToEnd,
} from '../datapath/helpers.js';
import { SKEIN_BIN, TestObjects } from './helpers.js';

export interface WorldPodSpec {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Line echo servers (test/datapath/fixtures/echo-server.mjs: `NAME:<line>` back). */
  readonly tcp?: readonly number[];
  /** `skein echo` HTTP servers on these ports (the reply echoes the request's headers). */
  readonly http?: readonly number[];
}

export interface WorldPod {
  readonly spec: WorldPodSpec;
  readonly address: string;
  readonly netns: Made & { name: string };
  readonly hostInterface: string;
}

export interface Probe {
  ok: boolean;
  reply?: string;
  code?: string;
}

export interface NodeWorld {
  readonly nodeName: string;
  readonly namespace: string;
  readonly node: Made & { name: string };
  readonly nodeAddress: string;
  readonly bpffs: Made;
  /** `<bpffs>/skein`: the pin root the agent is given. */
  readonly pinRoot: string;
  readonly cgroup: Made;
  readonly stateDir: string;
  readonly pods: ReadonlyMap<string, WorldPod>;
  readonly objects: TestObjects;
  /** TCP attempts from inside a pod, in the cgroup (so its connects are balanced), all at once. */
  probe(
    from: string,
    targets: readonly { host: string; port: number }[],
    timeoutMs?: number,
  ): Promise<Probe[]>;
  /** One HTTP GET from inside a pod: status and the JSON body `skein echo` answers with. */
  httpGet(
    from: string,
    host: string,
    port: number,
  ): Promise<{ status: number; body: unknown } | { error: string }>;
  /** A fixture started inside a pod and the cgroup; stop() ends it. */
  spawnInPod(from: string, script: string, args: readonly string[]): Child;
  /** A Service (ClusterIP allocated by the API server) and its EndpointSlice naming `backends`. */
  service(name: string, port: number, targetPort: number, backends: readonly string[]): Promise<string>;
  apply(o: KubernetesObject): Promise<void>;
  stop(): Promise<void>;
}

const tag = (): string => randomBytes(2).toString('hex');

/** test/kube/fixtures/http-get.mjs, as the datapath helpers name fixtures (relative to theirs). */
const HTTP_GET = '../../kube/fixtures/http-get.mjs';

async function mac(netns: string, dev: string): Promise<string> {
  const [link] = JSON.parse(await ip(['-j', 'link', 'show', 'dev', dev], netns)) as { address: string }[];
  if (link === undefined) throw new Error(`no interface ${dev} in ${netns}`);
  return link.address;
}

async function sysctl(netns: string, key: string, value: string): Promise<void> {
  await exec('nsenter', [`--net=${netns}`, '--', 'sysctl', '-q', '-w', `${key}=${value}`]);
}

export async function startNodeWorld(
  kc: KubeConfig,
  opts: { nodeName: string; namespace: string; pods: readonly WorldPodSpec[] },
): Promise<NodeWorld> {
  const made: Made[] = [];
  const children: Child[] = [];
  const kubeObjects: KubernetesObject[] = [];
  const objects = new TestObjects(kc);
  const core = kc.makeApiClient(CoreV1Api);
  const stop = async (): Promise<void> => {
    for (const c of children) await c.kill();
    for (const o of [...kubeObjects].reverse()) await objects.delete(o).catch(() => undefined);
    await removeAll(made);
  };
  const apply = async (o: KubernetesObject): Promise<void> => {
    await objects.apply(o);
    if (!kubeObjects.some((k) => k.kind === o.kind && k.metadata?.name === o.metadata?.name))
      kubeObjects.push(o);
  };
  try {
    const bpffs = await mountBpffs();
    made.push(bpffs);
    const cgroup = await makeCgroup();
    made.push(cgroup);
    const stateDir = await mkdtemp(path.join(os.tmpdir(), 'skein-state-'));
    made.push({ path: stateDir, remove: () => rm(stateDir, { recursive: true, force: true }) });
    const node = await makeNetns();
    made.push(node);
    const subnet = `10.${randomInt(100, 200)}.${randomInt(0, 256)}`;
    const nodeAddress = `${subnet}.1`;
    await sysctl(node.path, 'net.ipv4.ip_forward', '1');
    await sysctl(node.path, 'net.ipv6.conf.all.disable_ipv6', '1');
    await ip(['addr', 'add', `${nodeAddress}/32`, 'dev', 'lo'], node.path);

    await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: opts.namespace } });
    await apply({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: opts.nodeName },
      status: { addresses: [{ type: 'InternalIP', address: nodeAddress }] },
    } as KubernetesObject);

    const pods = new Map<string, WorldPod>();
    const t = tag();
    for (const [i, spec] of opts.pods.entries()) {
      const netns = await makeNetns();
      made.push(netns);
      await sysctl(netns.path, 'net.ipv6.conf.all.disable_ipv6', '1');
      const address = `${subnet}.${10 + i}`;
      const host = `lxa${t}${i}`;
      const peer = `spa${t}${i}`;
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
      await ip(['addr', 'add', `${address}/32`, 'dev', 'eth0'], netns.path);
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
      await ip(['route', 'add', `${address}/32`, 'dev', host], node.path);
      await ip(['neigh', 'add', address, 'lladdr', podMac, 'dev', host, 'nud', 'permanent'], node.path);
      if ((spec.tcp ?? []).length > 0) {
        const server = runInNetns(netns.path, 'echo-server.mjs', [
          spec.name,
          (spec.tcp ?? []).join(','),
          '-',
        ]);
        children.push(server);
        await server.firstLine();
      }
      if ((spec.http ?? []).length > 0) {
        const listen = (spec.http ?? []).flatMap((p) => ['--listen', `${spec.name}-${p}=${address}:${p}`]);
        const child = spawn(
          'nsenter',
          [`--net=${netns.path}`, '--', process.execPath, SKEIN_BIN, 'echo', ...listen],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        children.push(trackChild(child));
      }
      pods.set(spec.name, { spec, address, netns, hostInterface: host });
      // The Pod as the kubelet would report it: scheduled here, running, with its address.
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: spec.name, namespace: opts.namespace, labels: { ...spec.labels } },
        spec: { nodeName: opts.nodeName, containers: [{ name: 'app', image: 'skein-test' }] },
      };
      await apply(pod);
      const current = await core.readNamespacedPod({ name: spec.name, namespace: opts.namespace });
      await core.replaceNamespacedPodStatus({
        name: spec.name,
        namespace: opts.namespace,
        body: { ...current, status: { phase: 'Running', podIP: address, podIPs: [{ ip: address }] } },
      });
    }
    // Every HTTP server answers before the test starts.
    for (const p of pods.values()) {
      for (const port of p.spec.http ?? []) {
        const deadline = Date.now() + 15_000;
        for (;;) {
          const r = await runToEnd(
            runInNetns(p.netns.path, HTTP_GET, [p.address, String(port), '2000']),
          ).catch(() => [{ error: 'fixture failed' }]);
          if ((r[0] as { status?: number }).status === 200) break;
          if (Date.now() > deadline) throw new Error(`HTTP server ${p.spec.name}:${port} did not answer`);
          await new Promise((res) => setTimeout(res, 100));
        }
      }
    }

    const pod = (name: string): WorldPod => {
      const p = pods.get(name);
      if (p === undefined) throw new Error(`no pod ${name}`);
      return p;
    };
    return {
      nodeName: opts.nodeName,
      namespace: opts.namespace,
      node,
      nodeAddress,
      bpffs,
      pinRoot: path.join(bpffs.path, 'skein'),
      cgroup,
      stateDir,
      pods,
      objects,
      async probe(from, targets, timeoutMs = 1500) {
        const child = runInCgroup(cgroup.path, pod(from).netns.path, 'probe.mjs', [
          String(timeoutMs),
          JSON.stringify(targets.map((t) => ({ proto: 'tcp', ...t }))),
        ]);
        return (await runToEnd(child, 30_000)) as Probe[];
      },
      async httpGet(from, host, port) {
        const child = runInCgroup(cgroup.path, pod(from).netns.path, HTTP_GET, [host, String(port), '3000']);
        const [r] = await runToEnd(child, 30_000);
        return r as { status: number; body: unknown } | { error: string };
      },
      spawnInPod(from, script, args) {
        const child = runInCgroup(cgroup.path, pod(from).netns.path, script, args);
        children.push(child);
        return child;
      },
      async service(name, port, targetPort, backends) {
        await apply({
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name, namespace: opts.namespace },
          spec: { ports: [{ name: 'tcp', port, targetPort, protocol: 'TCP' }] },
        } as KubernetesObject);
        await apply({
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: {
            name: `${name}-1`,
            namespace: opts.namespace,
            labels: { 'kubernetes.io/service-name': name },
          },
          addressType: 'IPv4',
          ports: [{ name: 'tcp', port: targetPort, protocol: 'TCP' }],
          endpoints: backends.map((b) => ({ addresses: [pod(b).address], conditions: { ready: true } })),
        } as KubernetesObject);
        const svc = await core.readNamespacedService({ name, namespace: opts.namespace });
        const vip = svc.spec?.clusterIP;
        if (vip === undefined) throw new Error(`Service ${name} has no cluster IP`);
        return vip;
      },
      apply,
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

function trackChild(child: import('node:child_process').ChildProcess): Child {
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => {
    done = true;
  });
  return {
    process: child,
    lines: [],
    exited,
    firstLine: () => Promise.resolve(''),
    async kill() {
      if (done || child.pid === undefined) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}
