// `skein operator` and `skein agent` as the processes a cluster runs (`bin/skein`, built by `npm run
// build`): two operators elect one leader through a Lease, only the leader writes status, and when it
// is killed (SIGKILL, by pid) the other takes over and status is still written, once. The agent process
// programs its Envoy and stops cleanly on SIGTERM.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CoordinationV1Api, type KubeConfig, type KubernetesObject, Watch } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findEnvoy } from '../../src/envoy/findEnvoy.js';
import { freePort } from '../harness/kube.js';
import { kubeConfigFor, uniqueName, useKube } from '../harness/kubeContext.js';
import { waitFor } from '../helpers/net.js';
import {
  conditionOf,
  gateway,
  gatewayClass,
  get,
  httpRoute,
  loopback,
  namespaceObject,
  SKEIN_BIN,
  service,
  startNetnsBackends,
  TestObjects,
} from './helpers.js';

interface Proc {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | string>;
}

const live = new Set<Proc>();

function skein(args: readonly string[]): Proc {
  const child = spawn(process.execPath, [SKEIN_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SKEIN_LOG_FORMAT: 'json', SKEIN_LOG_LEVEL: 'info' },
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code ?? -1)),
  );
  const p = { child, output: () => out, exited };
  live.add(p);
  void exited.then(() => live.delete(p));
  return p;
}

async function kill(p: Proc, signal: NodeJS.Signals): Promise<number | string> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
  const t = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  try {
    return await p.exited;
  } finally {
    clearTimeout(t);
  }
}

type Obj = KubernetesObject & Record<string, unknown>;

describe('skein operator and skein agent as processes', () => {
  const kube = useKube();
  const ns = uniqueName('procs');
  const className = uniqueName('skein');
  let kc: KubeConfig;
  let objects: TestObjects;

  beforeAll(async () => {
    kc = kubeConfigFor(kube());
    objects = new TestObjects(kc);
    await objects.apply(namespaceObject(ns));
    await objects.apply(gatewayClass(className));
  });

  afterAll(async () => {
    for (const p of [...live]) await kill(p, 'SIGKILL');
    await objects.delete(gatewayClass(className)).catch(() => undefined);
    await objects.delete(namespaceObject(ns)).catch(() => undefined);
  });

  it('two operators: one leader writes status; kill it and the other takes over, writing once', async () => {
    const coordination = kc.makeApiClient(CoordinationV1Api);
    const holder = async (): Promise<string | undefined> =>
      (
        await coordination
          .readNamespacedLease({ name: 'skein-operator', namespace: ns })
          .catch(() => undefined)
      )?.spec?.holderIdentity;
    const operator = async (identity: string): Promise<Proc> =>
      skein([
        'operator',
        '--kubeconfig',
        kube().kubeconfigPath,
        '--namespace',
        ns,
        '--lease-namespace',
        ns,
        '--identity',
        identity,
        '--lease-duration',
        '3',
        '--renew-deadline',
        '2',
        '--retry-period',
        '0.5',
        '--status-port',
        String(await freePort()),
      ]);

    // Every change of the route's status, as a watch on the route sees it.
    const statusChanges: { rv: string; status: string; at: number }[] = [];
    let last = '';
    const watch = await new Watch(kc).watch(
      `/apis/gateway.networking.k8s.io/v1/namespaces/${ns}/httproutes`,
      {},
      (type: string, obj: { metadata?: { resourceVersion?: string }; status?: unknown }) => {
        if (type !== 'ADDED' && type !== 'MODIFIED') return;
        const status = JSON.stringify(obj.status ?? null);
        if (status !== last)
          statusChanges.push({ rv: obj.metadata?.resourceVersion ?? '', status, at: Date.now() });
        last = status;
      },
      () => {},
    );
    try {
      const a = await operator('op-a');
      await waitFor(
        'op-a to hold the Lease',
        async () => ((await holder()) === 'op-a' ? true : undefined),
        20_000,
      );
      const b = await operator('op-b');
      await waitFor(
        'op-b to be ready',
        async () => (b.output().includes('every informer has synced') ? true : undefined),
        20_000,
      );

      const route = (rules: { backend: string }[]): Obj =>
        httpRoute(ns, 'web', { gateway: 'gw', hostname: 'web.example', rules });
      await objects.applyAll(service(ns, 'blue', { address: '198.18.0.2', port: 8080 }));
      const gw = gateway(ns, 'gw', { className, address: loopback(), port: randomInt(20_000, 59_000) });
      await objects.apply(gw);
      // The route comes once the leader has seen the Service and the Gateway, so its first status is its
      // final one (the count below is exact).
      await waitFor('the Gateway status', async () => {
        const s = (await objects.read<Obj & { status?: { conditions?: unknown[] } }>(gw)).status;
        return conditionOf(s?.conditions, 'Programmed')?.status === 'True' ? true : undefined;
      });
      await objects.apply(route([{ backend: 'blue' }]));
      await waitFor('the route status', async () =>
        statusChanges.some((c) => c.status.includes('"Accepted"')) ? true : undefined,
      );
      await new Promise((r) => setTimeout(r, 1500));
      // ADDED without status, then exactly one write.
      expect(statusChanges.map((c) => (c.status === 'null' ? 'none' : 'written'))).toEqual([
        'none',
        'written',
      ]);
      expect(b.output()).not.toContain('became the leader');

      expect(await kill(a, 'SIGKILL')).toBe('SIGKILL');
      const killedAt = Date.now();
      await waitFor(
        'op-b to take the Lease',
        async () => ((await holder()) === 'op-b' ? true : undefined),
        15_000,
      );
      const tookOver = Date.now() - killedAt;
      expect(tookOver).toBeLessThan(3000 + 2000);
      // The new leader compares everything with the server and finds nothing to write.
      await new Promise((r) => setTimeout(r, 1500));
      expect(statusChanges).toHaveLength(2);

      // A change after the takeover: the new leader writes it, once.
      const edited = route([{ backend: 'blue' }, { backend: 'missing' }]);
      await objects.apply(edited);
      const written = await waitFor('observedGeneration 2', async () => {
        const s = (await objects.read<Obj & { status?: { parents?: { conditions: unknown[] }[] } }>(edited))
          .status;
        const c = conditionOf(s?.parents?.[0]?.conditions, 'ResolvedRefs');
        return c?.observedGeneration === 2 ? c : undefined;
      });
      expect(written).toMatchObject({ status: 'False', reason: 'BackendNotFound' });
      await new Promise((r) => setTimeout(r, 1500));
      expect(statusChanges).toHaveLength(3);

      // SIGTERM: op-b releases the Lease on the way out.
      expect(await kill(b, 'SIGTERM')).toBe(0);
      expect(await holder()).toBe('');
    } finally {
      watch.abort();
    }
  }, 120_000);

  it('the agent process programs its Envoy, serves traffic and stops cleanly on SIGTERM', async () => {
    const backends = await startNetnsBackends(['blue']);
    const runDir = await mkdtemp(path.join(os.tmpdir(), 'skein-agent-proc-'));
    try {
      const address = loopback();
      const port = randomInt(20_000, 59_000);
      await objects.applyAll(
        service(ns, 'echo', { address: backends.address, port: backends.ports['blue'] ?? 0 }),
      );
      await objects.apply(gateway(ns, 'agent-gw', { className, address, port }));
      await objects.apply(
        httpRoute(ns, 'agent-route', {
          gateway: 'agent-gw',
          hostname: 'agent.example',
          rules: [{ backend: 'echo' }],
        }),
      );
      const statusPort = await freePort();
      const agent = skein([
        'agent',
        // No datapath here: this host is shared (test/kube/agentDatapath.test.ts has one of its own).
        '--no-datapath',
        '--kubeconfig',
        kube().kubeconfigPath,
        '--node-name',
        uniqueName('node'),
        '--namespace',
        ns,
        '--xds-socket',
        path.join(runDir, 'xds.sock'),
        '--admin-port',
        String(await freePort()),
        '--status-port',
        String(statusPort),
      ]);
      await waitFor(
        'agent.example through the agent process',
        async () => {
          const r = await get(address, port, 'agent.example').catch(() => undefined);
          return r?.backend === 'blue' ? r : undefined;
        },
        30_000,
      );
      expect((await fetch(`http://127.0.0.1:${statusPort}/readyz`)).status).toBe(200);
      const status = (await (await fetch(`http://127.0.0.1:${statusPort}/status`)).json()) as {
        kubernetes: { synced: boolean; informers: { resource: string; selector: string }[] };
      };
      expect(status.kubernetes.synced).toBe(true);
      // Pods are watched on this node only.
      expect(status.kubernetes.informers.find((i) => i.resource === 'pods')?.selector).toMatch(
        /spec\.nodeName=node-/,
      );
      expect(await kill(agent, 'SIGTERM')).toBe(0);
      await expect(get(address, port, 'agent.example')).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      await backends.stop();
      await rm(runDir, { recursive: true, force: true });
    }
  }, 90_000);

  it('with --no-envoy it writes a bootstrap, and an Envoy started from it elsewhere gets its config', async () => {
    const backends = await startNetnsBackends(['green']);
    const runDir = await mkdtemp(path.join(os.tmpdir(), 'skein-agent-noenvoy-'));
    try {
      const address = loopback();
      const port = randomInt(20_000, 59_000);
      await objects.applyAll(
        service(ns, 'green', { address: backends.address, port: backends.ports['green'] ?? 0 }),
      );
      await objects.apply(gateway(ns, 'split-gw', { className, address, port }));
      await objects.apply(
        httpRoute(ns, 'split-route', {
          gateway: 'split-gw',
          hostname: 'split.example',
          rules: [{ backend: 'green' }],
        }),
      );
      const bootstrap = path.join(runDir, 'shared', 'envoy.json');
      const adminPort = await freePort();
      const statusPort = await freePort();
      const agent = skein([
        'agent',
        '--kubeconfig',
        kube().kubeconfigPath,
        '--node-name',
        uniqueName('node'),
        '--namespace',
        ns,
        '--no-envoy',
        '--bootstrap-out',
        bootstrap,
        '--xds-socket',
        path.join(runDir, 'shared', 'xds.sock'),
        '--admin-port',
        String(adminPort),
        '--status-port',
        String(statusPort),
      ]);
      await waitFor(
        'the agent to be ready',
        async () => {
          const r = await fetch(`http://127.0.0.1:${statusPort}/readyz`).catch(() => undefined);
          return r?.status === 200 ? true : undefined;
        },
        30_000,
      );
      // The chart's other container: Envoy, from nothing but the bootstrap the agent wrote.
      const envoy = spawn(
        (await findEnvoy()).path,
        ['-c', bootstrap, '--base-id', String(randomInt(1000, 60_000)), '-l', 'warning'],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      const envoyExited = new Promise<void>((resolve) => envoy.once('exit', () => resolve()));
      try {
        await waitFor(
          'split.example through the separate Envoy',
          async () => {
            const r = await get(address, port, 'split.example').catch(() => undefined);
            return r?.backend === 'green' ? r : undefined;
          },
          30_000,
        );
        const ready = await fetch(`http://127.0.0.1:${adminPort}/ready`);
        expect(await ready.text()).toBe('LIVE\n');
      } finally {
        envoy.kill('SIGTERM');
        const t = setTimeout(() => envoy.kill('SIGKILL'), 5000);
        await envoyExited;
        clearTimeout(t);
      }
      expect(await kill(agent, 'SIGTERM')).toBe(0);
    } finally {
      await backends.stop();
      await rm(runDir, { recursive: true, force: true });
    }
  }, 90_000);
});
