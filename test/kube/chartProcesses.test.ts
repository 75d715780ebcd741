// The chart's pods, run as host processes against the real API server with the chart's own RBAC: the
// agent container's args, the Envoy container's start script (with the real Envoy) and the operator
// container's args, exactly as rendered, after the kubelet's `$(VAR)` expansion; each process talks to
// the API server with a token of the chart's ServiceAccount for it. So the flags exist, the RBAC is
// enough (an informer it forbids would keep /readyz at 503), the Envoy bootstrap the agent writes into
// the shared directory works, and the probes answer where the chart points them.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { CoordinationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type Made, mountBpffs, removeAll, support } from '../datapath/helpers.js';
import { freePort } from '../harness/kube.js';
import { kubeConfigFor, uniqueName, useKube } from '../harness/kubeContext.js';
import { ensureEnvoy } from '../helpers/envoy.js';
import { waitFor } from '../helpers/net.js';
import {
  type Container,
  container,
  expandKubeVars,
  type Obj,
  only,
  parseManifests,
  podSpec,
  render,
} from './chart.js';
import {
  conditionOf,
  gateway,
  gatewayClass,
  get,
  httpRoute,
  loopback,
  type NetnsBackends,
  namespaceObject,
  SKEIN_BIN,
  service,
  startNetnsBackends,
  TestObjects,
} from './helpers.js';

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | string>;
}

function start(name: string, cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  const add = (d: Buffer): void => {
    out += d.toString();
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code ?? -1)),
  );
  return { name, child, output: () => out, exited };
}

/** SIGTERM by pid, SIGKILL after 10 s; resolves with how it ended. */
async function stop(p: Proc): Promise<number | string> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  try {
    return await p.exited;
  } finally {
    clearTimeout(t);
  }
}

/** GET with no connection reuse, bounded to 2 s: the status code, as the kubelet's probe sees it. */
function probe(host: string, port: number, urlPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: urlPath, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** The container's environment as the kubelet builds it: values, fieldRefs and configMapKeyRefs. */
function containerEnv(
  c: Container,
  fields: Readonly<Record<string, string>>,
  configMaps: readonly Obj[],
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of (c.env ?? []) as {
    name: string;
    value?: string;
    valueFrom?: { fieldRef?: { fieldPath: string }; configMapKeyRef?: { name: string; key: string } };
  }[]) {
    if (e.value !== undefined) env[e.name] = expandKubeVars(e.value, env);
    const field = e.valueFrom?.fieldRef?.fieldPath;
    if (field !== undefined) {
      const v = fields[field];
      if (v === undefined) throw new Error(`no value for fieldRef ${field}`);
      env[e.name] = v;
    }
    const ref = e.valueFrom?.configMapKeyRef;
    if (ref !== undefined) {
      const cm = configMaps.find((m) => m.metadata?.name === ref.name);
      const v = (cm?.['data'] as Record<string, string> | undefined)?.[ref.key];
      if (v === undefined) throw new Error(`ConfigMap ${ref.name} has no key ${ref.key}`);
      env[e.name] = v;
    }
  }
  return env;
}

/** The probe's target: host, and the port resolved through the container's named ports. */
function probeTarget(c: Container, which: 'readinessProbe' | 'livenessProbe' | 'startupProbe') {
  const g = c[which]?.httpGet;
  if (g === undefined) throw new Error(`${c.name} has no ${which}`);
  let port = g.port;
  if (typeof port === 'string') {
    const named = ((c as { ports?: { name: string; containerPort: number }[] }).ports ?? []).find(
      (p) => p.name === port,
    );
    if (named === undefined) throw new Error(`${c.name} has no port named ${port}`);
    port = named.containerPort;
  }
  return { host: g.host, port, path: g.path };
}

describe("the chart's pods as host processes, with the chart's RBAC", () => {
  const kube = useKube();
  const ns = uniqueName('chart-pods');
  const release = uniqueName('rel');
  const className = uniqueName('skein');
  const nodeName = uniqueName('node');
  const address = loopback();
  const port = randomInt(20_000, 59_000);
  let kc: KubeConfig;
  let objects: TestObjects;
  let dir: string;
  let backends: NetnsBackends | undefined;
  let rendered: Obj[];
  const clusterScoped: Obj[] = [];
  const procs: Proc[] = [];
  const mounts: Made[] = [];
  const ports = { status: 0, admin: 0, operator: 0 };

  beforeAll(async () => {
    kc = kubeConfigFor(kube());
    objects = new TestObjects(kc);
    dir = await mkdtemp(path.join(os.tmpdir(), 'skein-chart-pods-'));
    ports.status = await freePort();
    ports.admin = await freePort();
    ports.operator = await freePort();
    const kubeconfig = (sa: string): string => path.join(dir, `${sa}.kubeconfig`);
    rendered = parseManifests(
      await render({
        release,
        namespace: ns,
        values: {
          agent: {
            statusPort: ports.status,
            runDir: path.join(dir, 'run'),
            // On a node the agent finds the API server in-cluster; here it is told, and kept to its
            // namespace (other tests' objects share the API server).
            extraArgs: [`--kubeconfig=${kubeconfig('agent')}`, `--namespace=${ns}`],
          },
          envoy: { adminPort: ports.admin },
          operator: {
            statusAddress: '127.0.0.1',
            statusPort: ports.operator,
            extraArgs: [`--kubeconfig=${kubeconfig('operator')}`, `--namespace=${ns}`],
          },
        },
      }),
    );
    await objects.apply(namespaceObject(ns));
    // What the pods need besides themselves: ServiceAccounts, RBAC, the settings ConfigMap.
    for (const o of rendered) {
      if (
        ['DaemonSet', 'Deployment', 'PodDisruptionBudget', 'GatewayClass', 'IngressClass'].includes(
          o.kind ?? '',
        )
      )
        continue;
      await objects.apply(o);
      if (o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding') clusterScoped.push(o);
    }
    // A kubeconfig per ServiceAccount, with a token the API server issues for it.
    const core = kc.makeApiClient(CoreV1Api);
    for (const sa of rendered.filter((o) => o.kind === 'ServiceAccount')) {
      const name = sa.metadata?.name ?? '';
      const which = name.endsWith('-agent') ? 'agent' : 'operator';
      const token = await core.createNamespacedServiceAccountToken({
        name,
        namespace: ns,
        body: { spec: { audiences: [], expirationSeconds: 3600 } },
      });
      await writeFile(
        kubeconfig(which),
        stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [
            {
              name: 'c',
              cluster: {
                server: kube().server,
                'certificate-authority-data': Buffer.from(kube().caPem).toString('base64'),
              },
            },
          ],
          users: [{ name: which, user: { token: token.status?.token } }],
          contexts: [{ name: 'c', context: { cluster: 'c', user: which } }],
          'current-context': 'c',
        }),
        { mode: 0o600 },
      );
    }
    backends = await startNetnsBackends(['blue']);
    await objects.applyAll(
      service(ns, 'blue', { address: backends.address, port: backends.ports['blue'] ?? 0 }),
    );
    await objects.apply(gatewayClass(className));
    await objects.apply(gateway(ns, 'gw', { className, address, port }));
    await objects.apply(
      httpRoute(ns, 'web', { gateway: 'gw', hostname: 'web.example', rules: [{ backend: 'blue' }] }),
    );
  }, 120_000);

  afterAll(async () => {
    for (const p of procs.reverse()) await stop(p);
    await removeAll(mounts);
    await objects?.delete(gatewayClass(className)).catch(() => undefined);
    for (const o of clusterScoped) await objects.delete(o).catch(() => undefined);
    await objects?.delete(namespaceObject(ns)).catch(() => undefined);
    await backends?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const logs = (): string => procs.map((p) => `--- ${p.name}\n${p.output().slice(-3000)}`).join('\n');

  /**
   * config.yaml of the chart's ConfigMap written where `--config` finds it, as the ConfigMap volume
   * would be, with the host paths it names (bpffs, state directory) replaced by this test's own.
   */
  const mountSettings = async (configMaps: readonly Obj[]): Promise<{ map(arg: string): string }> => {
    const text = (configMaps[0]?.['data'] as Record<string, string> | undefined)?.['config.yaml'];
    if (text === undefined) throw new Error('the chart has no config.yaml');
    const bpffs = await mountBpffs();
    mounts.push(bpffs);
    const file = path.join(dir, 'etc-skein', 'config.yaml');
    await mkdir(path.dirname(file), { recursive: true });
    const settings = text
      .replaceAll('/sys/fs/bpf', bpffs.path)
      .replaceAll('/var/lib/skein', path.join(dir, 'state'));
    await writeFile(file, settings);
    return { map: (arg) => (arg === '--config=/etc/skein/config.yaml' ? `--config=${file}` : arg) };
  };

  it('serve a route through Envoy, answer their probes, and write status with the chart RBAC', async () => {
    const configMaps = rendered.filter((o) => o.kind === 'ConfigMap');
    const pod = podSpec(only(rendered, 'DaemonSet'));
    const agentC = container(pod, 'agent');
    const envoyC = container(pod, 'envoy');
    const operatorC = container(podSpec(only(rendered, 'Deployment')), 'operator');

    // Envoy first: its start script must wait for the agent's socket.
    const envoy = await ensureEnvoy();
    const bin = path.join(dir, 'bin');
    await mkdir(bin);
    await symlink(envoy.path, path.join(bin, 'envoy'));
    const envoyEnv = containerEnv(envoyC, {}, configMaps);
    const [shell, ...shellArgs] = [...(envoyC.command ?? []), ...(envoyC.args ?? [])].map((a) =>
      expandKubeVars(a, envoyEnv),
    );
    if (shell === undefined) throw new Error('the Envoy container has no command');
    procs.push(
      start('envoy', shell, shellArgs, {
        ...process.env,
        ...envoyEnv,
        PATH: `${bin}:${process.env['PATH']}`,
      }),
    );
    await new Promise((r) => setTimeout(r, 1000));
    expect(procs[0]?.child.exitCode, procs[0]?.output()).toBeNull();
    await expect(probe('127.0.0.1', ports.admin, '/ready')).rejects.toThrow(/ECONNREFUSED/);

    // The image's entrypoint is `node bin/skein`; the container gives the args.
    const agentEnv = containerEnv(agentC, { 'spec.nodeName': nodeName }, configMaps);
    expect(agentEnv['NODE_NAME']).toBe(nodeName);
    // The settings file, where the chart mounts its ConfigMap (/etc/skein/config.yaml), with the host
    // paths the kubelet would mount at the paths it names (the bpffs, the state directory) made this
    // test's own: a private bpffs, a temporary directory.
    const settings = await mountSettings(configMaps);
    const agentArgs = (agentC.args ?? []).map((a) => settings.map(expandKubeVars(a, agentEnv)));
    expect(agentC.args).toContain('--config=/etc/skein/config.yaml');
    expect(agentArgs).toContain(`--node-name=${nodeName}`);
    procs.push(start('agent', process.execPath, [SKEIN_BIN, ...agentArgs], { ...process.env, ...agentEnv }));

    const podName = `${release}-operator-abc12`;
    const operatorEnv = containerEnv(
      operatorC,
      { 'metadata.name': podName, 'metadata.namespace': ns },
      configMaps,
    );
    expect(operatorC.args).toContain('--config=/etc/skein/config.yaml');
    const operatorArgs = (operatorC.args ?? []).map((a) => settings.map(expandKubeVars(a, operatorEnv)));
    expect(operatorArgs).toContain(`--lease-namespace=${ns}`);
    procs.push(
      start('operator', process.execPath, [SKEIN_BIN, ...operatorArgs], { ...process.env, ...operatorEnv }),
    );

    // Every probe the chart declares answers 200 where it points (the agent's /readyz only once every
    // informer synced with the agent's RBAC and the first snapshot is out).
    const probes: [string, ReturnType<typeof probeTarget>][] = [];
    for (const c of [agentC, envoyC, operatorC]) {
      for (const which of ['startupProbe', 'readinessProbe', 'livenessProbe'] as const) {
        if (c[which] !== undefined) probes.push([`${c.name} ${which}`, probeTarget(c, which)]);
      }
    }
    expect(probes).toHaveLength(9);
    for (const [what, t] of probes) {
      await waitFor(
        `${what} (${t.host ?? '127.0.0.1'}:${t.port}${t.path})`,
        async () => {
          for (const p of procs)
            if (p.child.exitCode !== null) throw new Error(`${p.name} exited:\n${logs()}`);
          return (await probe(t.host ?? '127.0.0.1', t.port, t.path)) === 200 ? true : undefined;
        },
        30_000,
        100,
      ).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n${logs()}`);
      });
    }

    // The Envoy the chart starts serves what the agent translated.
    const reply = await waitFor(
      'a request through Envoy',
      async () => {
        const r = await get(address, port, 'web.example').catch(() => undefined);
        return r?.status === 200 ? r : undefined;
      },
      20_000,
      100,
    );
    expect(reply.backend).toBe('blue');
    // The bootstrap came from the agent, in the shared directory, pointing at the socket there.
    const bootstrap = JSON.parse(await readFile(path.join(dir, 'run/envoy-bootstrap.json'), 'utf8')) as {
      node: { id: string };
      static_resources: { clusters: { load_assignment: unknown }[] };
    };
    expect(bootstrap.node.id).toBe(`skein-${nodeName}`);
    expect(JSON.stringify(bootstrap.static_resources.clusters)).toContain(
      JSON.stringify({ pipe: { path: path.join(dir, 'run/xds.sock') } }),
    );

    // The agent read the settings file: its datapath runs with the chart's settings (policy and the L7
    // proxy on, no socket load-balancing), pinned where the file says.
    const agentStatus = (await (await fetch(`http://127.0.0.1:${ports.status}/status`)).json()) as {
      datapath: {
        enabled: boolean;
        pinRoot?: string;
        serviceLb?: boolean;
        l7Proxy?: boolean;
        reason?: string;
      };
    };
    expect(agentStatus.datapath).toMatchObject(
      support.ok ? { enabled: true, serviceLb: false, l7Proxy: true } : { enabled: false },
    );
    if (support.ok) expect(agentStatus.datapath.pinRoot).toBe(path.join(mounts[0]?.path ?? '', 'skein'));

    // The operator holds its Lease (the Role's one name) and writes status with its ClusterRole.
    const lease = await waitFor(
      'the Lease',
      async () =>
        (
          await kc
            .makeApiClient(CoordinationV1Api)
            .readNamespacedLease({ name: `${release}-skein-operator`, namespace: ns })
            .catch(() => undefined)
        )?.spec,
    );
    expect(lease.holderIdentity).toBe(podName);
    const route = httpRoute(ns, 'web', {
      gateway: 'gw',
      hostname: 'web.example',
      rules: [{ backend: 'blue' }],
    });
    const accepted = await waitFor(
      'the HTTPRoute status',
      async () => {
        const s = (await objects.read<Obj & { status?: { parents?: { conditions: unknown[] }[] } }>(route))
          .status;
        return conditionOf(s?.parents?.[0]?.conditions, 'Accepted');
      },
      20_000,
    );
    expect(accepted).toMatchObject({ status: 'True', observedGeneration: 1 });

    // SIGTERM ends each cleanly (the kubelet's stop); Envoy runs as the shell's exec'd image.
    for (const p of [...procs].reverse())
      expect(await stop(p), `${p.name}:\n${p.output().slice(-2000)}`).not.toBe('SIGKILL');
  });
});
