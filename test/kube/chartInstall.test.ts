// A real `helm install` of the chart on a private API server that has no Gateway API CRDs yet: one
// release installs the CRDs and the GatewayClass that needs them (the reason the CRDs live in a
// subchart's crds/, see charts/skein/Chart.yaml). Then the RBAC it made is checked with
// SubjectAccessReviews (least privilege: what each process needs, and nothing next to it), an upgrade
// changes a value, and an uninstall removes the release but leaves the CRDs (users' Gateways survive).

import {
  ApiextensionsV1Api,
  AuthorizationV1Api,
  CustomObjectsApi,
  KubeConfig,
  NetworkingV1Api,
  type V1ResourceAttributes,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KubeCluster, startKube } from '../harness/kube.js';
import { CHART_DIR, ensureChartCrds, helm } from './chart.js';

const NAMESPACE = 'skein-system';
const RELEASE = 'skein';

describe('helm install on a cluster without the Gateway API CRDs', () => {
  let cluster: KubeCluster;
  let kc: KubeConfig;
  let installed: { code: number; stdout: string; stderr: string };

  const helmOn = (args: readonly string[]) =>
    helm([...args, '--kubeconfig', cluster.kubeconfigPath], 120_000);

  beforeAll(async () => {
    await ensureChartCrds();
    cluster = await startKube({ gatewayApi: false });
    kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfigPath);
    installed = await helmOn(['install', RELEASE, CHART_DIR, '--namespace', NAMESPACE, '--create-namespace']);
  }, 180_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it('installs the CRDs and the GatewayClass in one release', async () => {
    expect(installed.stderr).toBe('');
    expect(installed.stdout).toContain('STATUS: deployed');
    const crds = await kc.makeApiClient(ApiextensionsV1Api).listCustomResourceDefinition();
    const gatewayCrds = crds.items.filter((c) => c.spec.group === 'gateway.networking.k8s.io');
    expect(gatewayCrds.map((c) => c.metadata?.name).sort()).toContain('httproutes.gateway.networking.k8s.io');
    expect(gatewayCrds).toHaveLength(10);
    for (const c of gatewayCrds) {
      expect(c.status?.conditions?.find((x) => x.type === 'Established')?.status, c.metadata?.name).toBe(
        'True',
      );
    }
    const gc = (await kc.makeApiClient(CustomObjectsApi).getClusterCustomObject({
      group: 'gateway.networking.k8s.io',
      version: 'v1',
      plural: 'gatewayclasses',
      name: 'skein',
    })) as { spec: { controllerName: string } };
    expect(gc.spec.controllerName).toBe('skein.io/gateway-controller');
    const manifest = await helmOn(['get', 'manifest', RELEASE, '--namespace', NAMESPACE]);
    // The CRDs are not release resources (Helm never upgrades or deletes crds/), the class is.
    expect(manifest.stdout).not.toContain('kind: CustomResourceDefinition');
    expect(manifest.stdout).toContain('kind: GatewayClass');
    expect(manifest.stdout).toContain('kind: DaemonSet');
  });

  // [allowed, verb, group, resource (with /subresource), namespace, name]
  type Check = readonly [boolean, string, string, string, (string | undefined)?, string?];

  async function allowed(serviceAccount: string, c: Check): Promise<boolean> {
    const [, verb, group, resourceAndSub, namespace, name] = c;
    const [resource, subresource] = resourceAndSub.split('/');
    const attrs: V1ResourceAttributes = { verb, group, resource: resource ?? '' };
    if (subresource !== undefined) attrs.subresource = subresource;
    if (namespace !== undefined) attrs.namespace = namespace;
    if (name !== undefined) attrs.name = name;
    const review = await kc.makeApiClient(AuthorizationV1Api).createSubjectAccessReview({
      body: {
        spec: {
          user: `system:serviceaccount:${NAMESPACE}:${serviceAccount}`,
          groups: ['system:serviceaccounts', `system:serviceaccounts:${NAMESPACE}`, 'system:authenticated'],
          resourceAttributes: attrs,
        },
      },
    });
    return review.status?.allowed === true;
  }

  async function mismatches(serviceAccount: string, checks: readonly Check[]): Promise<string[]> {
    const out: string[] = [];
    for (const c of checks) {
      const got = await allowed(serviceAccount, c);
      if (got !== c[0]) out.push(`${got ? 'allowed' : 'denied'}: ${c.slice(1).join(' ')}`);
    }
    return out;
  }

  it('lets the agent list and watch what it reads, and write nothing', async () => {
    const gw = 'gateway.networking.k8s.io';
    const checks: Check[] = [
      [true, 'list', gw, 'httproutes'],
      [true, 'watch', gw, 'gateways', 'apps'],
      [true, 'watch', gw, 'backendtlspolicies'],
      [true, 'list', '', 'secrets', 'apps'],
      [true, 'watch', '', 'pods'],
      [true, 'watch', '', 'nodes'],
      [true, 'list', 'discovery.k8s.io', 'endpointslices'],
      [true, 'watch', 'networking.k8s.io', 'networkpolicies'],
      [true, 'watch', 'networking.k8s.io', 'ingressclasses'],
      // Read by name only through list+watch with a field selector: never a plain get of a Secret.
      [false, 'get', '', 'secrets', 'apps', 'tls'],
      [false, 'update', gw, 'gateways/status', 'apps', 'gw'],
      [false, 'update', gw, 'httproutes', 'apps', 'r'],
      [false, 'create', '', 'configmaps', NAMESPACE],
      [false, 'create', 'coordination.k8s.io', 'leases', NAMESPACE],
      [false, 'create', '', 'events', NAMESPACE],
      [false, 'list', 'apps', 'deployments'],
    ];
    expect(await mismatches('skein-agent', checks)).toEqual([]);
  });

  it('lets the operator write status and its own Lease in its namespace, and nothing else', async () => {
    const gw = 'gateway.networking.k8s.io';
    const checks: Check[] = [
      [true, 'watch', gw, 'tcproutes'],
      [true, 'update', gw, 'gatewayclasses/status', undefined, 'skein'],
      [true, 'update', gw, 'gateways/status', 'apps', 'gw'],
      [true, 'get', gw, 'httproutes/status', 'apps', 'r'],
      [true, 'update', gw, 'udproutes/status', 'apps', 'r'],
      [true, 'update', gw, 'backendtlspolicies/status', 'apps', 'p'],
      [true, 'update', 'networking.k8s.io', 'ingresses/status', 'apps', 'i'],
      [true, 'create', 'coordination.k8s.io', 'leases', NAMESPACE],
      [true, 'get', 'coordination.k8s.io', 'leases', NAMESPACE, 'skein-operator'],
      [true, 'update', 'coordination.k8s.io', 'leases', NAMESPACE, 'skein-operator'],
      // Spec is the users'; other Leases and other namespaces are not the operator's.
      [false, 'update', gw, 'httproutes', 'apps', 'r'],
      [false, 'update', gw, 'referencegrants/status', 'apps', 'g'],
      [false, 'update', 'networking.k8s.io', 'ingresses', 'apps', 'i'],
      [false, 'update', 'coordination.k8s.io', 'leases', NAMESPACE, 'kube-controller-manager'],
      [false, 'create', 'coordination.k8s.io', 'leases', 'kube-system'],
      [false, 'delete', 'coordination.k8s.io', 'leases', NAMESPACE, 'skein-operator'],
      [false, 'get', '', 'secrets', 'apps', 'tls'],
      [false, 'list', '', 'pods'],
      [false, 'list', '', 'nodes'],
      [false, 'create', '', 'events', NAMESPACE],
    ];
    expect(await mismatches('skein-operator', checks)).toEqual([]);
  });

  it('upgrades a value in place, and uninstalls everything but the CRDs', async () => {
    const net = kc.makeApiClient(NetworkingV1Api);
    const isDefault = async (): Promise<string | undefined> =>
      (await net.readIngressClass({ name: 'skein' })).metadata?.annotations?.[
        'ingressclass.kubernetes.io/is-default-class'
      ];
    expect(await isDefault()).toBeUndefined();
    const up = await helmOn([
      'upgrade',
      RELEASE,
      CHART_DIR,
      '--namespace',
      NAMESPACE,
      '--reuse-values',
      '--set',
      'ingressClass.default=true',
    ]);
    expect(up.stderr).toBe('');
    expect(up.stdout).toContain('STATUS: deployed');
    expect(await isDefault()).toBe('true');

    const un = await helmOn(['uninstall', RELEASE, '--namespace', NAMESPACE]);
    expect(un.stdout).toContain(`release "${RELEASE}" uninstalled`);
    const gone = await net.readIngressClass({ name: 'skein' }).then(
      () => 'still there',
      (e: { code?: number }) => e.code,
    );
    expect(gone).toBe(404);
    const classes = (await kc.makeApiClient(CustomObjectsApi).listClusterCustomObject({
      group: 'gateway.networking.k8s.io',
      version: 'v1',
      plural: 'gatewayclasses',
    })) as { items: unknown[] };
    expect(classes.items).toEqual([]);
    const crds = await kc.makeApiClient(ApiextensionsV1Api).listCustomResourceDefinition();
    expect(crds.items.filter((c) => c.spec.group === 'gateway.networking.k8s.io')).toHaveLength(10);
  });
});
