// Faults, on a private API server (restarted here, so not the shared one): the agent rides out a
// kube-apiserver restart with Envoy serving throughout, and a watch that expires (410 Gone) while the
// agent is cut off from the API server is listed again without losing an update, a deletion included.

import { randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, startAgent } from '../../src/agent.js';
import { silentLogger } from '../../src/log.js';
import { KubeClient } from '../../src/sources/kubernetes/kubeClient.js';
import { type KubeCluster, startKube } from '../harness/kube.js';
import { kubeConfigFor } from '../harness/kubeContext.js';
import { waitFor } from '../helpers/net.js';
import {
  type CuttableProxy,
  gateway,
  gatewayClass,
  get,
  httpRoute,
  loopback,
  type NetnsBackends,
  namespaceObject,
  service,
  startCuttableProxy,
  startNetnsBackends,
  TestObjects,
} from './helpers.js';

const ns = 'faults';
const address = loopback();
const port = randomInt(20_000, 59_000);
const ROUTES = 'httproutes.gateway.networking.k8s.io';

async function metricValue(agent: Agent, name: string, labels: Record<string, string>): Promise<number> {
  const metric = await agent.controlPlane.registry.getSingleMetric(name)?.get();
  const v = metric?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return v?.value ?? 0;
}

async function backendOf(host: string): Promise<string | number | undefined> {
  const r = await get(address, port, host).catch(() => undefined);
  return r?.backend ?? r?.status;
}

describe('the agent under API server faults', () => {
  let cluster: KubeCluster;
  let proxy: CuttableProxy;
  let objects: TestObjects;
  let backends: NetnsBackends;
  let agent: Agent;
  let client: KubeClient;
  let runDir: string;

  beforeAll(async () => {
    cluster = await startKube();
    proxy = await startCuttableProxy(cluster.server);
    objects = new TestObjects(kubeConfigFor(cluster));
    backends = await startNetnsBackends(['blue', 'green']);
    await objects.apply(namespaceObject(ns));
    for (const name of ['blue', 'green']) {
      await objects.applyAll(
        service(ns, name, { address: backends.address, port: backends.ports[name] ?? 0 }),
      );
    }
    await objects.apply(gatewayClass('skein'));
    await objects.apply(gateway(ns, 'gw', { className: 'skein', address, port }));
    await objects.apply(
      httpRoute(ns, 'web', { gateway: 'gw', hostname: 'web.example', rules: [{ backend: 'blue' }] }),
    );
    await objects.apply(
      httpRoute(ns, 'extra', { gateway: 'gw', hostname: 'extra.example', rules: [{ backend: 'blue' }] }),
    );
    runDir = await mkdtemp(path.join(os.tmpdir(), 'skein-faults-'));
    // The agent reaches the API server only through the proxy, so the test can cut it off.
    client = new KubeClient(kubeConfigFor({ ...cluster, server: proxy.server }));
    agent = await startAgent({
      api: client,
      nodeName: 'node-1',
      logger: silentLogger,
      xdsSocketPath: path.join(runDir, 'xds.sock'),
      adminPort: 0,
      statusPort: 0,
      delta: true,
      envoy: true,
      nodeId: 'faults',
      nodeCluster: 'skein-test',
      runDir,
      drainTimeoutMs: 0,
      backoff: { initialMs: 100, maxMs: 1000 },
    });
    await agent.firstBuild;
    await waitFor(
      'web.example on blue',
      async () => ((await backendOf('web.example')) === 'blue' ? true : undefined),
      20_000,
    );
  }, 180_000);

  afterAll(async () => {
    await agent?.stop();
    client?.close();
    await proxy?.close();
    await backends?.stop();
    await cluster?.stop();
    if (runDir !== undefined) await rm(runDir, { recursive: true, force: true });
  });

  it('keeps Envoy serving through a kube-apiserver restart, then reconnects and converges', async () => {
    const failures: string[] = [];
    let requests = 0;
    let stop = false;
    // A bounded loop: one request every 20 ms until told to stop, at most 2000 requests.
    const loop = (async () => {
      while (!stop && requests < 2000) {
        requests++;
        const b = await backendOf('web.example');
        if (b !== 'blue') failures.push(String(b));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const informer = async () => {
      const s = (await agent.statusReport()).kubernetes.informers.find((i) => i.resource === ROUTES);
      if (s === undefined) throw new Error('no HTTPRoute informer');
      return s;
    };
    const before = await informer();
    await cluster.restartApiServer();
    // Keep the loop going while the agent reconnects: its watch broke and a new one was accepted.
    const after = await waitFor(
      'the agent to watch HTTPRoutes again',
      async () => {
        const s = await informer();
        return s.failures > before.failures && s.watches > before.watches ? s : undefined;
      },
      30_000,
    );
    stop = true;
    await loop;
    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(100);
    expect(after.synced).toBe(true);

    // Converged: a change made after the restart reaches Envoy.
    await objects.apply(
      httpRoute(ns, 'web', { gateway: 'gw', hostname: 'web.example', rules: [{ backend: 'green' }] }),
    );
    await waitFor(
      'web.example on green',
      async () => ((await backendOf('web.example')) === 'green' ? true : undefined),
      20_000,
    );
  }, 120_000);

  it('lists again after 410 Gone and loses no update made while it was cut off', async () => {
    const expiredBefore = await metricValue(agent, 'skein_kube_lists_total', {
      resource: ROUTES,
      reason: 'expired',
    });
    expect(await backendOf('extra.example')).toBe('blue');
    proxy.cut();
    // While the agent cannot see the API server: an edit, a deletion and a new route.
    await objects.apply(
      httpRoute(ns, 'web', { gateway: 'gw', hostname: 'web.example', rules: [{ backend: 'blue' }] }),
    );
    await objects.delete(
      httpRoute(ns, 'extra', { gateway: 'gw', hostname: 'extra.example', rules: [] }) as KubernetesObject,
    );
    await objects.apply(
      httpRoute(ns, 'late', { gateway: 'gw', hostname: 'late.example', rules: [{ backend: 'green' }] }),
    );
    // A restarted API server starts its watch cache at the current revision: the agent's last
    // resourceVersion is older than anything it can replay, so resuming the watch gets 410 Gone.
    await cluster.restartApiServer();
    // Envoy still serves what it had.
    expect(await backendOf('web.example')).toBe('green');
    expect(await backendOf('extra.example')).toBe('blue');
    proxy.restore();

    await waitFor(
      'the edit, the deletion and the new route',
      async () => {
        const seen = [
          await backendOf('web.example'),
          await backendOf('extra.example'),
          await backendOf('late.example'),
        ];
        return seen[0] === 'blue' && seen[1] === 404 && seen[2] === 'green' ? seen : undefined;
      },
      30_000,
    );
    expect(
      await metricValue(agent, 'skein_kube_lists_total', { resource: ROUTES, reason: 'expired' }),
    ).toBeGreaterThan(expiredBefore);
  }, 120_000);
});
