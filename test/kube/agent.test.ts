// Skein on the real API server: the agent (in-process here; test/kube/processes.test.ts runs
// `bin/skein agent`) programs a real Envoy from Gateway API objects and Ingresses, and the operator
// writes their status. Backends live in a network namespace the test creates (EndpointSlices may not
// hold loopback addresses); Envoy listens on a loopback address of its own.

import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, startAgent } from '../../src/agent.js';
import { silentLogger } from '../../src/log.js';
import { type Operator, startOperator } from '../../src/operator.js';
import { KubeClient } from '../../src/sources/kubernetes/kubeClient.js';
import { kubeConfigFor, uniqueName, useKube } from '../harness/kubeContext.js';
import { waitFor } from '../helpers/net.js';
import { createTestCa, type TestCa } from '../helpers/pki.js';
import {
  conditionOf,
  GATEWAY_CONTROLLER,
  gateway,
  gatewayClass,
  get,
  httpRoute,
  INGRESS_CONTROLLER,
  loopback,
  type NetnsBackends,
  namespaceObject,
  SKEIN_BIN,
  service,
  startNetnsBackends,
  TestObjects,
} from './helpers.js';

type Obj = KubernetesObject & Record<string, unknown>;
interface RouteStatus {
  parents?: { controllerName: string; parentRef: { name: string }; conditions: unknown[] }[];
}

describe('the agent and the operator on a real API server', () => {
  const kube = useKube();
  const ns = uniqueName('agent');
  const className = uniqueName('skein');
  const address = loopback();
  const port = randomInt(20_000, 59_000);
  let objects: TestObjects;
  let backends: NetnsBackends;
  let agent: Agent;
  let operator: Operator;
  let clients: KubeClient[] = [];
  let runDir: string;
  let ca: TestCa;
  const made: Obj[] = [];

  const apply = async (o: Obj): Promise<void> => {
    await objects.apply(o);
    if (!made.some((m) => m.kind === o.kind && m.metadata?.name === o.metadata?.name)) made.push(o);
  };
  const read = <T>(o: Obj): Promise<Obj & { status?: T }> => objects.read<Obj & { status?: T }>(o);

  beforeAll(async () => {
    const kc = kubeConfigFor(kube());
    objects = new TestObjects(kc);
    await objects.apply(namespaceObject(ns));
    backends = await startNetnsBackends(['blue', 'green']);
    ca = createTestCa();
    runDir = await mkdtemp(path.join(os.tmpdir(), 'skein-agent-test-'));
    clients = [new KubeClient(kc), new KubeClient(kc)];
    const [agentClient, operatorClient] = clients as [KubeClient, KubeClient];
    operator = await startOperator({
      api: operatorClient,
      logger: silentLogger,
      namespace: ns,
      lease: {
        namespace: ns,
        name: 'skein-operator',
        identity: 'op-1',
        leaseDurationMs: 4000,
        renewDeadlineMs: 3000,
        retryPeriodMs: 500,
      },
      statusPort: 0,
      minWriteIntervalMs: 100,
    });
    agent = await startAgent({
      api: agentClient,
      nodeName: uniqueName('node'),
      namespace: ns,
      logger: silentLogger,
      xdsSocketPath: path.join(runDir, 'xds.sock'),
      adminPort: 0,
      statusPort: 0,
      delta: true,
      envoy: true,
      nodeId: `test-${ns}`,
      nodeCluster: 'skein-test',
      runDir,
      drainTimeoutMs: 0,
    });
    await agent.firstBuild;
    for (const name of ['blue', 'green']) {
      for (const o of service(ns, name, { address: backends.address, port: backends.ports[name] ?? 0 }))
        await apply(o);
    }
    await apply(gatewayClass(className));
    await apply(gateway(ns, 'gw', { className, address, port }));
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    await operator?.stop();
    for (const c of clients) c.close();
    for (const o of made.reverse()) await objects.delete(o).catch(() => undefined);
    await objects?.delete(namespaceObject(ns)).catch(() => undefined);
    await backends?.stop();
    if (runDir !== undefined) await rm(runDir, { recursive: true, force: true });
  });

  it('serves an HTTPRoute through Envoy and writes the status of the class, the Gateway and the route', async () => {
    const route = httpRoute(ns, 'web', {
      gateway: 'gw',
      hostname: 'web.example',
      rules: [{ backend: 'blue' }],
    });
    await apply(route);
    const reply = await waitFor(
      'web.example to reach blue',
      async () => {
        const r = await get(address, port, 'web.example').catch(() => undefined);
        return r?.backend === 'blue' ? r : undefined;
      },
      20_000,
    );
    expect(reply.status).toBe(200);

    const routeStatus = await waitFor('the route status', async () => {
      const s = (await read<RouteStatus>(route)).status;
      return s?.parents?.length === 1 ? s : undefined;
    });
    const parent = routeStatus.parents?.[0];
    expect(parent?.controllerName).toBe(GATEWAY_CONTROLLER);
    expect(parent?.parentRef.name).toBe('gw');
    expect(conditionOf(parent?.conditions, 'Accepted')).toMatchObject({
      status: 'True',
      reason: 'Accepted',
      observedGeneration: 1,
    });
    expect(conditionOf(parent?.conditions, 'ResolvedRefs')).toMatchObject({
      status: 'True',
      reason: 'ResolvedRefs',
    });

    const gw = await waitFor('the Gateway to be Programmed', async () => {
      const g = await read<{
        conditions?: unknown[];
        listeners?: { name: string; attachedRoutes: number }[];
      }>(gateway(ns, 'gw', { className, address, port }));
      return conditionOf(g.status?.conditions, 'Programmed')?.status === 'True' &&
        g.status?.listeners?.[0]?.attachedRoutes === 1
        ? g
        : undefined;
    });
    expect(conditionOf(gw.status?.conditions, 'Accepted')).toMatchObject({
      status: 'True',
      observedGeneration: 1,
    });
    const gc = await read<{ conditions?: unknown[] }>(gatewayClass(className));
    expect(conditionOf(gc.status?.conditions, 'Accepted')).toMatchObject({
      status: 'True',
      reason: 'Accepted',
    });

    const ready = await fetch(`${agent.status.url}/readyz`);
    expect(ready.status).toBe(200);
    expect((await operator.statusReport()).leader).toMatchObject({ isLeader: true, holder: 'op-1' });
    // skein status reads the operator's /status too.
    const status = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        [SKEIN_BIN, 'status', '--port', new URL(operator.status.url).port],
        { timeout: 30_000 },
        (err, out) => (err === null ? resolve(out) : reject(err)),
      ),
    );
    const lines = status.split('\n');
    expect(lines[0]).toBe(`operator: op-1, API server ${kube().server}`);
    expect(lines[1]).toBe(
      `leader:  this replica (Lease ${ns}/skein-operator, ${(await operator.statusReport()).leader.transitions} transitions)`,
    );
    expect(lines[2]).toMatch(
      /^status: {2}writing; [1-9]\d* written, \d+ conflicts, 0 failures, \d+ pending$/,
    );
  });

  it('follows edits of the route (new backend, new generation in status) and its deletion', async () => {
    const route = httpRoute(ns, 'web', {
      gateway: 'gw',
      hostname: 'web.example',
      rules: [{ backend: 'green' }],
    });
    await apply(route);
    await waitFor('web.example to reach green', async () => {
      const r = await get(address, port, 'web.example').catch(() => undefined);
      return r?.backend === 'green' ? r : undefined;
    });
    await waitFor('observedGeneration 2 in the route status', async () => {
      const s = (await read<RouteStatus>(route)).status;
      return conditionOf(s?.parents?.[0]?.conditions, 'Accepted')?.observedGeneration === 2 ? s : undefined;
    });

    await objects.delete(route);
    // No route for the host any more: Envoy answers 404 itself.
    const gone = await waitFor('web.example to be gone', async () => {
      const r = await get(address, port, 'web.example').catch(() => undefined);
      return r?.status === 404 ? r : undefined;
    });
    expect(gone.backend).toBeUndefined();
    await waitFor('attachedRoutes 0 on the Gateway', async () => {
      const g = await read<{ listeners?: { attachedRoutes: number }[] }>(
        gateway(ns, 'gw', { className, address, port }),
      );
      return g.status?.listeners?.[0]?.attachedRoutes === 0 ? true : undefined;
    });
  });

  it('serves an Ingress of its IngressClass and writes status.loadBalancer', async () => {
    const ingAddress = loopback();
    const ingPort = randomInt(20_000, 59_000);
    const ingClass = uniqueName('skein-ingress');
    await apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'IngressClass',
      metadata: { name: ingClass },
      spec: { controller: INGRESS_CONTROLLER },
    });
    const ingress = (backend: string): Obj => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: {
        name: 'shop',
        namespace: ns,
        annotations: {
          'ingress.skein.io/address': ingAddress,
          'ingress.skein.io/http-port': String(ingPort),
        },
      },
      spec: {
        ingressClassName: ingClass,
        rules: [
          {
            host: 'shop.example',
            http: {
              paths: [
                {
                  path: '/',
                  pathType: 'Prefix',
                  backend: { service: { name: backend, port: { number: 80 } } },
                },
              ],
            },
          },
        ],
      },
    });
    await apply(ingress('blue'));
    await waitFor(
      'shop.example to reach blue',
      async () => {
        const r = await get(ingAddress, ingPort, 'shop.example', '/cart').catch(() => undefined);
        return r?.backend === 'blue' ? r : undefined;
      },
      20_000,
    );
    const lb = await waitFor('status.loadBalancer', async () => {
      const s = (await read<{ loadBalancer?: { ingress?: { ip?: string }[] } }>(ingress('blue'))).status;
      return s?.loadBalancer?.ingress?.length === 1 ? s.loadBalancer : undefined;
    });
    expect(lb.ingress).toEqual([{ ip: ingAddress }]);

    await apply(ingress('green'));
    await waitFor('shop.example to reach green', async () => {
      const r = await get(ingAddress, ingPort, 'shop.example').catch(() => undefined);
      return r?.backend === 'green' ? r : undefined;
    });
    await objects.delete(ingress('green'));
    // Nothing else listens on the Ingress's socket: the listener goes, connections are refused.
    await waitFor('the Ingress listener to close', async () => {
      const err = await get(ingAddress, ingPort, 'shop.example').then(
        () => undefined,
        (e: NodeJS.ErrnoException) => e,
      );
      return err?.code === 'ECONNREFUSED' ? err : undefined;
    });
  });

  it('reads only the Secrets its Gateways name, and serves HTTPS with one', async () => {
    const tlsPort = randomInt(20_000, 59_000);
    const cert = ca.issue(['secure.example']);
    const secret = (name: string): Obj => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace: ns },
      type: 'kubernetes.io/tls',
      stringData: { 'tls.crt': cert.certPem, 'tls.key': cert.keyPem },
    });
    await apply(secret('unrelated'));
    await apply(secret('secure-cert'));
    const tlsGateway: Obj = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'tls-gw', namespace: ns },
      spec: {
        gatewayClassName: className,
        addresses: [{ type: 'IPAddress', value: address }],
        listeners: [
          {
            name: 'https',
            protocol: 'HTTPS',
            port: tlsPort,
            hostname: 'secure.example',
            tls: { mode: 'Terminate', certificateRefs: [{ name: 'secure-cert' }] },
          },
        ],
      },
    };
    await apply(tlsGateway);
    await apply(
      httpRoute(ns, 'secure', {
        gateway: 'tls-gw',
        hostname: 'secure.example',
        rules: [{ backend: 'blue' }],
      }),
    );
    const body = await waitFor(
      'an HTTPS answer from blue',
      () =>
        new Promise<string | undefined>((resolve) => {
          const req = https.request(
            {
              host: address,
              port: tlsPort,
              servername: 'secure.example',
              headers: { host: 'secure.example' },
              ca: ca.certPem,
              agent: false,
              timeout: 3000,
            },
            (res) => {
              resolve(res.headers['x-backend'] === 'blue' ? 'blue' : undefined);
              res.resume();
            },
          );
          req.on('error', () => resolve(undefined));
          req.on('timeout', () => req.destroy());
          req.end();
        }),
      20_000,
    );
    expect(body).toBe('blue');
    // The agent watched the named Secret and never read the other one.
    expect(agent.source.store.get('Secret', ns, 'secure-cert')).toBeDefined();
    expect(agent.source.store.get('Secret', ns, 'unrelated')).toBeUndefined();
    const byName = (await agent.statusReport()).kubernetes.byName.map((w) => `${w.resource} ${w.selector}`);
    expect(byName).toContain(`secrets namespace=${ns},metadata.name=secure-cert`);
    expect(byName.some((w) => w.includes('unrelated'))).toBe(false);
  });

  it('turns bad objects into status conditions and keeps serving the good ones', async () => {
    await apply(
      httpRoute(ns, 'good', { gateway: 'gw', hostname: 'good.example', rules: [{ backend: 'blue' }] }),
    );
    // A backend that does not exist, and a parentRef to a listener the Gateway does not have.
    const missing = httpRoute(ns, 'missing-backend', {
      gateway: 'gw',
      hostname: 'missing.example',
      rules: [{ backend: 'nope' }],
    });
    const noListener: Obj = {
      ...httpRoute(ns, 'no-listener', {
        gateway: 'gw',
        hostname: 'nolistener.example',
        rules: [{ backend: 'blue' }],
      }),
    };
    (noListener['spec'] as { parentRefs: unknown[] }).parentRefs = [
      { name: 'gw', sectionName: 'does-not-exist' },
    ];
    // A protocol the CRD's pattern allows but no implementation knows; the Gateway's other listener serves.
    const odd: Obj = gateway(ns, 'odd', { className, address, port: port + 1 });
    (odd['spec'] as { listeners: unknown[] }).listeners.push({
      name: 'odd',
      protocol: 'example.com/odd',
      port: port + 2,
    });
    await apply(missing);
    await apply(noListener);
    await apply(odd);

    const missingStatus = await waitFor('ResolvedRefs False on missing-backend', async () => {
      const s = (await read<RouteStatus>(missing)).status;
      const c = conditionOf(s?.parents?.[0]?.conditions, 'ResolvedRefs');
      return c?.status === 'False' ? c : undefined;
    });
    expect(missingStatus.reason).toBe('BackendNotFound');
    expect(missingStatus.message).toContain('nope');
    // The spec: requests to a rule whose backends do not resolve get 500.
    const r500 = await waitFor('500 for missing.example', async () => {
      const r = await get(address, port, 'missing.example').catch(() => undefined);
      return r?.status === 500 ? r : undefined;
    });
    expect(r500.backend).toBeUndefined();

    const noListenerStatus = await waitFor('Accepted False on no-listener', async () => {
      const s = (await read<RouteStatus>(noListener)).status;
      const c = conditionOf(s?.parents?.[0]?.conditions, 'Accepted');
      return c?.status === 'False' ? c : undefined;
    });
    expect(noListenerStatus.reason).toBe('NoMatchingParent');

    const oddStatus = await waitFor('the odd listener to be refused', async () => {
      const g = await read<{ listeners?: { name: string; conditions: unknown[] }[] }>(odd);
      const l = g.status?.listeners?.find((x) => x.name === 'odd');
      const c = conditionOf(l?.conditions, 'Accepted');
      return c?.status === 'False' ? c : undefined;
    });
    expect(oddStatus.reason).toBe('UnsupportedProtocol');

    expect((await get(address, port, 'good.example')).backend).toBe('blue');
    expect(agent.controlPlane.lastBuild?.published).toBe(true);
    expect((await fetch(`${agent.status.url}/healthz`)).status).toBe(200);
  });
});
