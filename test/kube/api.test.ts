// The real API server from the test harness, through @kubernetes/client-node: core objects, Gateway API
// objects validated by the real CRD schemas, watches, authentication and RBAC.

import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1Service,
  Watch,
} from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { kubeRequest } from '../harness/kube.js';
import { kubeConfigFor, uniqueName, useKube } from '../harness/kubeContext.js';

const GW = { group: 'gateway.networking.k8s.io', version: 'v1' } as const;

/** The `Status` object the API server sends with an error. */
interface Status {
  readonly message?: string;
  readonly reason?: string;
  readonly details?: { readonly causes?: readonly { reason?: string; message?: string; field?: string }[] };
}

/** The HTTP code and Status of a failed client-node call (fails the test if the call succeeded). */
async function failureOf(call: Promise<unknown>): Promise<{ code: number; status: Status }> {
  try {
    await call;
  } catch (err) {
    if (err instanceof ApiException) {
      const body: unknown = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
      return { code: err.code, status: (body ?? {}) as Status };
    }
    throw err;
  }
  throw new Error('expected the call to fail');
}

describe('the harness API server', () => {
  const kube = useKube();
  let kc: KubeConfig;
  let core: CoreV1Api;
  let custom: CustomObjectsApi;
  let ns: string;

  beforeAll(async () => {
    // Through the kubeconfig file the harness wrote, as a user of the harness would.
    kc = new KubeConfig();
    kc.loadFromFile(kube().kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    ns = uniqueName('api');
    await core.createNamespace({ body: { metadata: { name: ns } } });
  });

  it('stores and returns a namespace, a Service and an EndpointSlice', async () => {
    expect((await core.readNamespace({ name: ns })).metadata?.name).toBe(ns);

    const svc: V1Service = {
      metadata: { name: 'echo', namespace: ns },
      spec: { selector: { app: 'echo' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    };
    await core.createNamespacedService({ namespace: ns, body: svc });
    const readSvc = await core.readNamespacedService({ namespace: ns, name: 'echo' });
    expect(readSvc.spec?.ports?.[0]).toMatchObject({ name: 'http', port: 80, protocol: 'TCP' });
    // Allocated by the API server from --service-cluster-ip-range.
    expect(readSvc.spec?.clusterIP).toMatch(/^10\.96\./);

    const discovery = kc.makeApiClient(DiscoveryV1Api);
    await discovery.createNamespacedEndpointSlice({
      namespace: ns,
      body: {
        metadata: { name: 'echo-1', namespace: ns, labels: { 'kubernetes.io/service-name': 'echo' } },
        addressType: 'IPv4',
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        // Stored, never dialled. The API server rejects loopback endpoint addresses (127.0.0.0/8, ::1).
        endpoints: [{ addresses: ['10.244.0.5'], conditions: { ready: true } }],
      },
    });
    const slices = await discovery.listNamespacedEndpointSlice({
      namespace: ns,
      labelSelector: 'kubernetes.io/service-name=echo',
    });
    expect(slices.items.map((s) => s.endpoints.map((e) => e.addresses))).toEqual([[['10.244.0.5']]]);
  });

  it('stores Gateway API objects, with the defaults of the real CRD schemas', async () => {
    const className = uniqueName('skein');
    await custom.createClusterCustomObject({
      ...GW,
      plural: 'gatewayclasses',
      body: {
        apiVersion: `${GW.group}/${GW.version}`,
        kind: 'GatewayClass',
        metadata: { name: className },
        spec: { controllerName: 'skein.dev/gateway-controller' },
      },
    });
    await custom.createNamespacedCustomObject({
      ...GW,
      namespace: ns,
      plural: 'gateways',
      body: {
        apiVersion: `${GW.group}/${GW.version}`,
        kind: 'Gateway',
        metadata: { name: 'gw', namespace: ns },
        spec: { gatewayClassName: className, listeners: [{ name: 'http', port: 8080, protocol: 'HTTP' }] },
      },
    });
    await custom.createNamespacedCustomObject({
      ...GW,
      namespace: ns,
      plural: 'httproutes',
      body: {
        apiVersion: `${GW.group}/${GW.version}`,
        kind: 'HTTPRoute',
        metadata: { name: 'route', namespace: ns },
        spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'echo', port: 80 }] }] },
      },
    });

    const gc = await custom.getClusterCustomObject({ ...GW, plural: 'gatewayclasses', name: className });
    expect(gc.spec.controllerName).toBe('skein.dev/gateway-controller');
    const gw = await custom.getNamespacedCustomObject({
      ...GW,
      namespace: ns,
      plural: 'gateways',
      name: 'gw',
    });
    // allowedRoutes comes from the schema's defaults.
    expect(gw.spec.listeners).toEqual([
      { name: 'http', port: 8080, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'Same' } } },
    ]);
    const route = await custom.getNamespacedCustomObject({
      ...GW,
      namespace: ns,
      plural: 'httproutes',
      name: 'route',
    });
    // Filled in by the CRD's structural-schema defaults: a rule without matches matches every path.
    expect(route.spec.rules[0].matches).toEqual([{ path: { type: 'PathPrefix', value: '/' } }]);
    expect(route.spec.rules[0].backendRefs).toEqual([
      { group: '', kind: 'Service', name: 'echo', port: 80, weight: 1 },
    ]);
  });

  it('rejects an HTTPRoute whose path match type is not in the schema enum, with 422', async () => {
    const { code, status } = await failureOf(
      custom.createNamespacedCustomObject({
        ...GW,
        namespace: ns,
        plural: 'httproutes',
        body: {
          apiVersion: `${GW.group}/${GW.version}`,
          kind: 'HTTPRoute',
          metadata: { name: 'bad-route', namespace: ns },
          spec: { rules: [{ matches: [{ path: { type: 'Glob', value: '/*' } }] }] },
        },
      }),
    );
    expect(code).toBe(422);
    expect(status.reason).toBe('Invalid');
    expect(status.details?.causes).toContainEqual({
      reason: 'FieldValueNotSupported',
      field: 'spec.rules[0].matches[0].path.type',
      message: 'Unsupported value: "Glob": supported values: "Exact", "PathPrefix", "RegularExpression"',
    });
  });

  it('delivers watch events', async () => {
    const events: string[] = [];
    let seen: (() => void) | undefined;
    const arrived = new Promise<void>((resolve) => {
      seen = resolve;
    });
    const watch = new Watch(kc);
    const controller = await watch.watch(
      `/apis/${GW.group}/${GW.version}/namespaces/${ns}/httproutes`,
      { allowWatchBookmarks: false },
      (phase, obj: { metadata?: { name?: string } }) => {
        events.push(`${phase} ${obj.metadata?.name}`);
        if (phase === 'ADDED' && obj.metadata?.name === 'watched') seen?.();
      },
      () => {},
    );
    try {
      await custom.createNamespacedCustomObject({
        ...GW,
        namespace: ns,
        plural: 'httproutes',
        body: {
          apiVersion: `${GW.group}/${GW.version}`,
          kind: 'HTTPRoute',
          metadata: { name: 'watched', namespace: ns },
          spec: {},
        },
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        arrived,
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no ADDED event within 10 s; saw ${events.join(', ')}`)),
            10_000,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      expect(events).toContain('ADDED watched');
    } finally {
      controller.abort();
    }
  });

  it('answers 401 to a request without a token and to an unknown token', async () => {
    const conn = kube();
    const none = await kubeRequest(conn, { path: `/api/v1/namespaces/${ns}/services` });
    expect(none.status).toBe(401);
    const unknown = await kubeRequest(conn, {
      path: `/api/v1/namespaces/${ns}/services`,
      token: 'not-a-token',
    });
    expect(unknown.status).toBe(401);
    const viaClient = kubeConfigFor(conn, 'not-a-token').makeApiClient(CoreV1Api);
    expect((await failureOf(viaClient.listNamespacedService({ namespace: ns }))).code).toBe(401);
  });

  it('enforces RBAC: an authenticated user without grants gets 403 until a RoleBinding allows it', async () => {
    const conn = kube();
    await core.createNamespacedService({
      namespace: ns,
      body: { metadata: { name: 'rbac', namespace: ns }, spec: { ports: [{ port: 80 }] } },
    });
    const asUser = kubeConfigFor(conn, conn.userToken).makeApiClient(CoreV1Api);
    const denied = await failureOf(asUser.listNamespacedService({ namespace: ns }));
    expect(denied.code).toBe(403);
    expect(denied.status.reason).toBe('Forbidden');
    expect(denied.status.message).toContain('User "skein-user" cannot list resource "services"');

    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: 'read-services', namespace: ns },
        rules: [{ apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'skein-user-reads-services', namespace: ns },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-services' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'skein-user' }],
      },
    });
    // The RBAC authorizer reads through an informer: the grant takes effect within moments.
    const deadline = Date.now() + 10_000;
    let names: string[] | undefined;
    while (names === undefined && Date.now() < deadline) {
      try {
        names = (await asUser.listNamespacedService({ namespace: ns })).items.map(
          (s) => s.metadata?.name ?? '',
        );
      } catch (err) {
        if (!(err instanceof ApiException) || err.code !== 403) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(names).toContain('rbac');
    // Still nothing beyond the grant.
    expect((await failureOf(asUser.listNamespacedSecret({ namespace: ns }))).code).toBe(403);
  });
});
