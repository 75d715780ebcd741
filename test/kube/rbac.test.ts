// The RBAC rules in docs/kubernetes.md are enough, and no more than needed: the agent and the operator
// run as users bound to exactly the rules the document lists (read from it), through impersonation
// (the harness's admin may impersonate), and do their work; the agent's user cannot read a Secret by
// `get` or write any status.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  RbacAuthorizationV1Api,
  type V1PolicyRule,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { silentLogger } from '../../src/log.js';
import { type Operator, startOperator } from '../../src/operator.js';
import { KubeClient } from '../../src/sources/kubernetes/kubeClient.js';
import { KubeSource } from '../../src/sources/kubernetes/kubeSource.js';
import type { KubeConnection } from '../harness/kube.js';
import { kubeConfigFor, uniqueName, useKube } from '../harness/kubeContext.js';
import { waitFor } from '../helpers/net.js';
import { createTestCa } from '../helpers/pki.js';
import {
  conditionOf,
  gateway,
  gatewayClass,
  httpRoute,
  loopback,
  namespaceObject,
  ROOT,
  service,
  TestObjects,
} from './helpers.js';

/** The `rules:` documents of the ```yaml blocks under a heading of docs/kubernetes.md. */
async function documentedRules(heading: string): Promise<V1PolicyRule[][]> {
  const doc = await readFile(path.join(ROOT, 'docs/kubernetes.md'), 'utf8');
  const section = doc.split(/^### /m).find((s) => s.startsWith(heading));
  const block = section === undefined ? undefined : /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  if (block === undefined) throw new Error(`docs/kubernetes.md has no yaml block under "### ${heading}"`);
  return parseAllDocuments(block).map((d) => (d.toJS() as { rules: V1PolicyRule[] }).rules);
}

/** A KubeConfig acting as `user` (impersonated by the admin). */
function asUser(conn: KubeConnection, user: string): KubeConfig {
  const admin = kubeConfigFor(conn);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: admin.clusters,
    users: [{ name: user, token: conn.token, impersonateUser: user }],
    contexts: [{ name: user, cluster: 'skein-test', user }],
    currentContext: user,
  });
  return kc;
}

async function statusCode(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return 200;
  } catch (e) {
    if (e instanceof ApiException) return e.code;
    throw e;
  }
}

describe('the documented RBAC rules', () => {
  const kube = useKube();
  const ns = uniqueName('rbac');
  const className = uniqueName('skein');
  const agentUser = uniqueName('agent-user');
  const operatorUser = uniqueName('operator-user');
  let rbac: RbacAuthorizationV1Api;
  let objects: TestObjects;
  const cleanup: (() => Promise<unknown>)[] = [];
  const clients: KubeClient[] = [];
  let source: KubeSource | undefined;
  let operator: Operator | undefined;

  async function bind(user: string, rules: V1PolicyRule[], namespace?: string): Promise<void> {
    const name = uniqueName('skein-rbac');
    const subjects = [{ kind: 'User', name: user, apiGroup: 'rbac.authorization.k8s.io' }];
    const roleRef = {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: namespace === undefined ? 'ClusterRole' : 'Role',
      name,
    };
    if (namespace === undefined) {
      await rbac.createClusterRole({ body: { metadata: { name }, rules } });
      await rbac.createClusterRoleBinding({ body: { metadata: { name }, subjects, roleRef } });
      cleanup.push(
        () => rbac.deleteClusterRoleBinding({ name }),
        () => rbac.deleteClusterRole({ name }),
      );
    } else {
      await rbac.createNamespacedRole({ namespace, body: { metadata: { name }, rules } });
      await rbac.createNamespacedRoleBinding({ namespace, body: { metadata: { name }, subjects, roleRef } });
    }
  }

  beforeAll(async () => {
    const admin = kubeConfigFor(kube());
    rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    objects = new TestObjects(admin);
    await objects.apply(namespaceObject(ns));
    const [agentRules] = await documentedRules('Agent');
    const [operatorRules, leaseRules] = await documentedRules('Operator');
    if (agentRules === undefined || operatorRules === undefined || leaseRules === undefined)
      throw new Error('docs/kubernetes.md: expected one agent and two operator rule documents');
    await bind(agentUser, agentRules);
    await bind(operatorUser, operatorRules);
    await bind(operatorUser, leaseRules, ns);

    const cert = createTestCa().issue(['tls.example']);
    await objects.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'cert', namespace: ns },
      type: 'kubernetes.io/tls',
      stringData: { 'tls.crt': cert.certPem, 'tls.key': cert.keyPem },
    });
    await objects.applyAll(service(ns, 'svc', { address: '198.18.0.2', port: 8080 }));
    await objects.apply(gatewayClass(className));
    const gw = gateway(ns, 'gw', { className, address: loopback(), port: 30_001 });
    (gw['spec'] as { listeners: unknown[] }).listeners.push({
      name: 'https',
      protocol: 'HTTPS',
      port: 30_002,
      hostname: 'tls.example',
      tls: { certificateRefs: [{ name: 'cert' }] },
    });
    await objects.apply(gw);
    await objects.apply(
      httpRoute(ns, 'web', { gateway: 'gw', hostname: 'web.example', rules: [{ backend: 'svc' }] }),
    );
  });

  afterAll(async () => {
    await source?.stop();
    await operator?.stop();
    for (const c of clients) c.close();
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
    await objects?.delete(gatewayClass(className)).catch(() => undefined);
    await objects?.delete(namespaceObject(ns)).catch(() => undefined);
  });

  it("are enough for the agent's informers, cluster-wide, and its Secret watches by name", async () => {
    const client = new KubeClient(asUser(kube(), agentUser));
    clients.push(client);
    let built = 0;
    // The agent's source exactly as `skein agent` builds it, across all namespaces (no Envoy: this
    // is about what the API server lets it read).
    source = new KubeSource({
      api: client,
      logger: silentLogger,
      nodeName: uniqueName('node'),
      onChange: () => built++,
    });
    source.start();
    await waitFor('every informer to sync', () => (source?.isSynced === true ? true : undefined), 20_000);
    await waitFor('the named Secret watch', () => {
      const w = source?.status().byName.find((b) => b.selector === `namespace=${ns},metadata.name=cert`);
      return w?.synced === true ? w : undefined;
    });
    const s = source.status();
    // Forbidden is what missing rules give; other failures (a 429 while other test files start their
    // informers on the same server) are retried and do not count against the rules.
    expect(s.informers.filter((i) => i.forbidden > 0).map((i) => `${i.resource}: ${i.lastError}`)).toEqual(
      [],
    );
    expect(s.informers.every((i) => i.synced)).toBe(true);
    expect(source.store.get('Secret', ns, 'cert')).toBeDefined();
    // The first build came once the named Secret had been listed too.
    await waitFor('the first build', () => (built > 0 ? true : undefined));
  });

  it('counts 403s per informer, so a missing rule shows (the control for the checks above)', async () => {
    // The harness's unprivileged user has no bindings at all.
    const client = new KubeClient(kubeConfigFor(kube(), kube().userToken));
    clients.push(client);
    const bare = new KubeSource({
      api: client,
      logger: silentLogger,
      nodeName: uniqueName('node'),
      onChange: () => {},
    });
    bare.start();
    try {
      await waitFor(
        'a forbidden list',
        () => (bare.status().informers.some((i) => i.forbidden > 0) ? true : undefined),
        20_000,
      );
      expect(bare.isSynced).toBe(false);
    } finally {
      await bare.stop();
    }
  });

  it("does not let the agent's user get a Secret or write a status", async () => {
    const kc = asUser(kube(), agentUser);
    const core = kc.makeApiClient(CoreV1Api);
    expect(await statusCode(core.readNamespacedSecret({ name: 'cert', namespace: ns }))).toBe(403);
    const custom = kc.makeApiClient(CustomObjectsApi);
    expect(
      await statusCode(
        custom.patchNamespacedCustomObjectStatus({
          group: 'gateway.networking.k8s.io',
          version: 'v1',
          namespace: ns,
          plural: 'httproutes',
          name: 'web',
          body: { status: { parents: [] } },
        }),
      ),
    ).toBe(403);
  });

  it('are enough for the operator: the Lease, and status written', async () => {
    const client = new KubeClient(asUser(kube(), operatorUser));
    clients.push(client);
    operator = await startOperator({
      api: client,
      logger: silentLogger,
      namespace: ns,
      lease: {
        namespace: ns,
        name: 'skein-operator',
        identity: 'rbac-op',
        leaseDurationMs: 4000,
        renewDeadlineMs: 3000,
        retryPeriodMs: 500,
      },
      statusPort: 0,
    });
    await waitFor(
      'the route status',
      async () => {
        const r = await objects.read<
          KubernetesObject & { status?: { parents?: { conditions: unknown[] }[] } }
        >(httpRoute(ns, 'web', { gateway: 'gw', hostname: 'web.example', rules: [] }));
        return conditionOf(r.status?.parents?.[0]?.conditions, 'Accepted')?.status === 'True'
          ? true
          : undefined;
      },
      20_000,
    );
    const report = operator.statusReport();
    expect(report.leader.isLeader).toBe(true);
    expect(report.statusWriter.failures).toBe(0);
    expect(report.kubernetes.informers.filter((i) => i.forbidden > 0)).toEqual([]);
    // The re-read after a 409 goes through the status subresource, which the rules allow.
    await expect(
      client.request('GET', `/apis/gateway.networking.k8s.io/v1/namespaces/${ns}/httproutes/web/status`),
    ).resolves.toMatchObject({ metadata: { name: 'web' } });
  });
});
