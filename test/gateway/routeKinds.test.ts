import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BackendTlsIndex } from '../../src/gateway/backendTlsPolicies.js';
import { grpcPathMatch } from '../../src/gateway/grpcRoutes.js';
import { comparePrecedence, type PrecedenceKey } from '../../src/gateway/precedence.js';
import { ReferenceGrantIndex } from '../../src/gateway/referenceGrants.js';
import { createGatewayTranslator, translateGateway } from '../../src/gateway/translate.js';
import type { Ir } from '../../src/model/ir.js';
import { FileCache } from '../../src/sources/file/FileCache.js';
import type { ObjectSet, ObjectStatus, ReferenceGrant } from '../../src/sources/objects.js';

/**
 * GRPCRoute, TLSRoute, TCPRoute, UDPRoute, ReferenceGrant and BackendTLSPolicy beyond the golden files:
 * status stability, memo invalidation across builds (a grant or a CA that changes), and the small pure
 * pieces (gRPC path matches, gRPC precedence, grants).
 */

const T1 = '2024-01-01T00:00:00Z';
const T2 = '2024-01-01T00:05:00Z';
const testdata = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata');
const NEW_KINDS =
  /^(grpcroute|tlsroute|tcproute|udproute|l4route|backendtlspolicy|httproute-(invalid-)?reference-grant)/;

function objectsOf(files: Record<string, string>): ObjectSet {
  const cache = new FileCache();
  for (const [file, content] of Object.entries(files)) cache.update(file, content);
  const { objects, diagnostics } = cache.snapshot();
  expect(diagnostics).toEqual([]);
  return objects;
}

function caseObjects(name: string): ObjectSet {
  return objectsOf({ [`${name}.in.yaml`]: readFileSync(path.join(testdata, `${name}.in.yaml`), 'utf8') });
}

function statusOf(statuses: readonly ObjectStatus[], kind: string, name: string): ObjectStatus {
  const s = statuses.find((x) => x.kind === kind && x.name === name);
  if (s === undefined) throw new Error(`no status of ${kind} ${name}`);
  return s;
}

function conditionsOf(status: ObjectStatus): { type: string; status: string; reason: string }[] {
  const entries = (status.status['parents'] ?? status.status['ancestors']) as {
    conditions: { type: string; status: string; reason: string }[];
  }[];
  return entries.flatMap((e) =>
    e.conditions.map((c) => ({ type: c.type, status: c.status, reason: c.reason })),
  );
}

const cases = readdirSync(testdata)
  .filter((f) => f.endsWith('.in.yaml'))
  .map((f) => f.slice(0, -'.in.yaml'.length))
  .filter((n) => NEW_KINDS.test(n));

describe('statuses of the new kinds', () => {
  it('has cases of every new kind', () => {
    const prefixes = [
      'grpcroute-',
      'tlsroute-',
      'tcproute-',
      'udproute-',
      'l4route-',
      'backendtlspolicy',
      'httproute-reference-grant',
    ];
    expect(prefixes.filter((p) => !cases.some((c) => c.startsWith(p)))).toEqual([]);
  });

  it.each(cases)('%s: a recompute with no change is byte-identical, later too', (name) => {
    const translator = createGatewayTranslator();
    const first = translator.translate(caseObjects(name), { transitionTime: T1 });
    // A fresh source snapshot (new objects, equal content) at a later time, from a warm translator…
    const again = translator.translate(caseObjects(name), { transitionTime: T2, previous: first.statuses });
    expect(JSON.stringify(again.statuses)).toBe(JSON.stringify(first.statuses));
    // …and from a cold one that is only given the previous statuses.
    const cold = translateGateway(caseObjects(name), { transitionTime: T2, previous: first.statuses });
    expect(JSON.stringify(cold.statuses)).toBe(JSON.stringify(first.statuses));
  });

  it('every condition of every new kind carries the generation it describes', () => {
    const yaml = readFileSync(path.join(testdata, 'backendtlspolicy.in.yaml'), 'utf8')
      .replace(
        'name: normative-test-backendtlspolicy\n',
        'name: normative-test-backendtlspolicy\n  generation: 4\n',
      )
      .replace('name: backendtlspolicy-test\n', 'name: backendtlspolicy-test\n  generation: 7\n');
    const { statuses } = translateGateway(objectsOf({ 'a.yaml': yaml }), { transitionTime: T1 });
    const policy = statusOf(statuses, 'BackendTLSPolicy', 'normative-test-backendtlspolicy');
    const route = statusOf(statuses, 'HTTPRoute', 'backendtlspolicy-test');
    const generations = (s: ObjectStatus) =>
      ((s.status['parents'] ?? s.status['ancestors']) as { conditions: { observedGeneration: number }[] }[])
        .flatMap((p) => p.conditions)
        .map((c) => c.observedGeneration);
    // Every condition, each with the generation of its own object.
    expect(generations(policy)).toEqual([4, 4]);
    expect(generations(route)).toEqual([7, 7]);
  });
});

describe('HTTPRoutes and GRPCRoutes that share a hostname, across builds', () => {
  const base = readFileSync(path.join(testdata, 'grpcroute-httproute-hostname-conflict.in.yaml'), 'utf8');
  const docs = base.split(/^---\n/m);
  const web = docs.find((d) => /^kind: HTTPRoute$/m.test(d) && /^ {2}name: web$/m.test(d)) ?? '';
  const rest = docs.filter((d) => d !== web).join('---\n');

  const accepted = (statuses: readonly ObjectStatus[], kind: string, name: string): string => {
    const c = conditionsOf(statusOf(statuses, kind, name)).find((x) => x.type === 'Accepted');
    return `${c?.status} ${c?.reason}`;
  };
  const attached = (statuses: readonly ObjectStatus[], listener: string): number => {
    const gw = statusOf(statuses, 'Gateway', 'mixed');
    const l = (gw.status['listeners'] as { name: string; attachedRoutes: number }[]).find(
      (x) => x.name === listener,
    );
    return l?.attachedRoutes ?? -1;
  };

  it('the GRPCRoute that lost a hostname is accepted once the older HTTPRoute goes, and loses it again when it comes back', () => {
    const cache = new FileCache();
    cache.update('rest.yaml', rest);
    cache.update('web.yaml', web);
    const translator = createGatewayTranslator();
    const first = translator.translate(cache.snapshot().objects, { transitionTime: T1 });
    expect(accepted(first.statuses, 'GRPCRoute', 'api-grpc')).toBe('False HostnameConflict');
    expect(attached(first.statuses, 'http')).toBe(4);
    const hosts = (ir: Ir) =>
      ir.listeners[0]?.virtualHosts.map((vh) => [vh.hostnames[0], vh.routes.map((r) => r.name)]);
    expect(hosts(first.ir)).toContainEqual(['api.example.com', ['httproute/infra/web/rule/0/match/0']]);

    // The GRPCRoute object is the same (its memo entry is reused); what the other route took is not.
    cache.update('web.yaml', '');
    const second = translator.translate(cache.snapshot().objects, {
      transitionTime: T2,
      previous: first.statuses,
    });
    expect(accepted(second.statuses, 'GRPCRoute', 'api-grpc')).toBe('True Accepted');
    expect(attached(second.statuses, 'http')).toBe(4); // web gone, api-grpc counted
    expect(hosts(second.ir)).toContainEqual(['api.example.com', ['grpcroute/infra/api-grpc/rule/0/match/0']]);
    const cold = translateGateway(cache.snapshot().objects, { transitionTime: T2, previous: first.statuses });
    expect(JSON.stringify(second.statuses)).toBe(JSON.stringify(cold.statuses));
    expect(JSON.stringify(second.ir)).toBe(JSON.stringify(cold.ir));

    cache.update('web.yaml', web);
    const third = translator.translate(cache.snapshot().objects, {
      transitionTime: T1,
      previous: second.statuses,
    });
    expect(accepted(third.statuses, 'GRPCRoute', 'api-grpc')).toBe('False HostnameConflict');
    expect(JSON.stringify(third.ir)).toBe(JSON.stringify(first.ir));
  });
});

describe('memoised builds follow what the new kinds depend on', () => {
  const route = readFileSync(path.join(testdata, 'httproute-reference-grant.in.yaml'), 'utf8');
  const [withoutGrant = '', grant = '', httpRoute = ''] = (() => {
    const docs = route.split(/^---\n/m);
    const grantDoc = docs.find((d) => /^kind: ReferenceGrant$/m.test(d)) ?? '';
    const routeDoc = docs.find((d) => /^kind: HTTPRoute$/m.test(d)) ?? '';
    const rest = docs.filter((d) => d !== grantDoc && d !== routeDoc).join('---\n');
    return [rest, grantDoc, routeDoc];
  })();

  it('a ReferenceGrant that appears, then goes, flips the same route object between resolved and not', () => {
    const cache = new FileCache();
    cache.update('base.yaml', withoutGrant);
    cache.update('route.yaml', httpRoute);
    const translator = createGatewayTranslator();
    const reason = (objects: ObjectSet): string => {
      const { statuses } = translator.translate(objects, { transitionTime: T1 });
      const rr = conditionsOf(statusOf(statuses, 'HTTPRoute', 'reference-grant')).find(
        (c) => c.type === 'ResolvedRefs',
      );
      return rr?.reason ?? '';
    };
    expect(reason(cache.snapshot().objects)).toBe('RefNotPermitted');
    cache.update('grant.yaml', grant);
    expect(reason(cache.snapshot().objects)).toBe('ResolvedRefs');
    cache.update('grant.yaml', grant.replace('name: web-backend', 'name: someone-else'));
    expect(reason(cache.snapshot().objects)).toBe('RefNotPermitted');
  });

  it('a CA ConfigMap that changes changes the backend TLS; one that goes makes the backend fail', () => {
    const yaml = readFileSync(path.join(testdata, 'backendtlspolicy.in.yaml'), 'utf8');
    const docs = yaml.split(/^---\n/m);
    const configMap = docs.find((d) => /^kind: ConfigMap$/m.test(d)) ?? '';
    const cache = new FileCache();
    cache.update('rest.yaml', docs.filter((d) => d !== configMap).join('---\n'));
    cache.update('ca.yaml', configMap);
    const translator = createGatewayTranslator();
    const backend = (ir: Ir) => ir.backends.find((b) => b.name === 'infra/tls-backend/443');
    const first = translator.translate(cache.snapshot().objects, { transitionTime: T1 });
    expect(backend(first.ir)?.tls?.trust.kind).toBe('pem');
    expect(backend(first.ir)?.endpoints).toHaveLength(1);

    cache.update('ca.yaml', configMap.replace(/name: backend-tls-checks-certificate/, 'name: renamed'));
    const second = translator.translate(cache.snapshot().objects, { transitionTime: T2 });
    expect(backend(second.ir)?.tls).toBeUndefined();
    expect(backend(second.ir)?.endpoints).toEqual([]);
    const policy = statusOf(second.statuses, 'BackendTLSPolicy', 'normative-test-backendtlspolicy');
    expect(conditionsOf(policy)).toEqual([
      { type: 'Accepted', status: 'False', reason: 'NoValidCACertificate' },
      { type: 'ResolvedRefs', status: 'False', reason: 'InvalidCACertificateRef' },
    ]);

    cache.update('ca.yaml', configMap);
    const third = translator.translate(cache.snapshot().objects, { transitionTime: T2 });
    expect(backend(third.ir)).toEqual(backend(first.ir));
  });

  it('an HTTPRoute and a TCPRoute to one Service port get two backends, one per protocol', () => {
    const yaml = readFileSync(path.join(testdata, 'tcproute-multiple-routes-attachment.in.yaml'), 'utf8');
    const extra = `---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: web, namespace: infra }
spec:
  gatewayClassName: skein
  listeners: [{ name: http, port: 80, protocol: HTTP }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: admin, namespace: infra }
spec:
  parentRefs: [{ name: web }]
  rules: [{ backendRefs: [{ name: db-primary, port: 5432 }] }]
`;
    const { ir } = translateGateway(objectsOf({ 'a.yaml': yaml + extra }), { transitionTime: T1 });
    const primary = ir.backends.filter((b) => b.name.startsWith('infra/db-primary/'));
    expect(primary.map((b) => [b.name, b.protocol])).toEqual([
      ['infra/db-primary/5432', 'http1'],
      ['infra/db-primary/5432/tcp', 'tcp'],
    ]);
  });
});

describe('gRPC method matches as paths', () => {
  it.each([
    [undefined, { kind: 'PathPrefix', value: '/' }],
    [
      { service: 'pkg.Svc', method: 'Do' },
      { kind: 'Exact', value: '/pkg.Svc/Do' },
    ],
    [{ service: 'pkg.Svc' }, { kind: 'PathPrefix', value: '/pkg.Svc' }],
    [{ method: 'Do' }, { kind: 'RegularExpression', value: '/[^/]+/Do' }],
    [
      { type: 'RegularExpression', service: 'a|b' },
      { kind: 'RegularExpression', value: '/(?:a|b)/[^/]+' },
    ],
    [
      { type: 'RegularExpression', method: 'Get.*' },
      { kind: 'RegularExpression', value: '/[^/]+/(?:Get.*)' },
    ],
  ] as const)('%j → %j', (method, expected) => {
    expect(grpcPathMatch(method as Parameters<typeof grpcPathMatch>[0])).toEqual(expected);
  });

  it('the regular expressions match what the spec says they match', () => {
    const re = (m: Parameters<typeof grpcPathMatch>[0]) => new RegExp(`^${grpcPathMatch(m).value}$`);
    expect(re({ method: 'Do' }).test('/pkg.Svc/Do')).toBe(true);
    expect(re({ method: 'Do' }).test('/pkg.Svc/DoMore')).toBe(false);
    expect(re({ method: 'Do' }).test('/a/b/Do')).toBe(false);
    expect(re({ type: 'RegularExpression', service: 'a|b' }).test('/b/X')).toBe(true);
    expect(re({ type: 'RegularExpression', service: 'a|b' }).test('/c/X')).toBe(false);
  });

  it('orders GRPCRoute matches by service, then method characters, then headers, and before HTTPRoutes', () => {
    const key = (over: Partial<PrecedenceKey>): PrecedenceKey => ({
      pathRank: 0,
      pathLength: 0,
      hasMethod: false,
      headers: 0,
      queryParams: 0,
      createdMs: 0,
      namespace: 'ns',
      name: 'r',
      rule: 0,
      match: 0,
      ...over,
    });
    const service = key({ grpc: { service: 7, method: 0, regex: false }, match: 1 });
    const method = key({ grpc: { service: 0, method: 9, regex: false }, match: 2 });
    const both = key({ grpc: { service: 7, method: 2, regex: false }, match: 3 });
    const headers = key({ grpc: { service: 7, method: 0, regex: false }, headers: 2, match: 4 });
    const http = key({ pathRank: 0, pathLength: 30 });
    const sorted = [http, method, service, headers, both].sort(comparePrecedence);
    expect(sorted).toEqual([both, headers, service, method, http]);
  });
});

describe('ReferenceGrantIndex', () => {
  const grant = (ns: string, from: object[], to: object[]): ReferenceGrant =>
    ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'ReferenceGrant',
      metadata: { name: 'g', namespace: ns },
      spec: { from, to },
    }) as ReferenceGrant;
  const GW = 'gateway.networking.k8s.io';
  const index = new ReferenceGrantIndex([
    grant(
      'app',
      [{ group: GW, kind: 'TCPRoute', namespace: 'edge' }],
      [{ group: '', kind: 'Service', name: 'db' }],
    ),
  ]);
  const from = { group: GW, kind: 'TCPRoute', namespace: 'edge' };
  const to = { group: '', kind: 'Service', namespace: 'app', name: 'db' };

  it('allows what a grant in the target namespace lists, and references within a namespace', () => {
    expect(index.allows(from, to)).toBe(true);
    expect(index.allows({ ...from, namespace: 'app' }, to)).toBe(true);
  });

  it('refuses another kind, namespace, target name, target kind, or a grant elsewhere', () => {
    expect(index.allows({ ...from, kind: 'UDPRoute' }, to)).toBe(false);
    expect(index.allows({ ...from, namespace: 'other' }, to)).toBe(false);
    expect(index.allows(from, { ...to, name: 'cache' })).toBe(false);
    expect(index.allows(from, { ...to, kind: 'Secret' })).toBe(false);
    expect(index.allows(from, { ...to, namespace: 'edge' })).toBe(true); // same namespace: no grant needed
    expect(index.allows({ ...from, namespace: 'x' }, { ...to, namespace: 'edge' })).toBe(false);
  });
});

describe('BackendTlsIndex', () => {
  it('a policy for a port wins over one for the whole Service; no policies cost nothing', () => {
    expect(new BackendTlsIndex([], []).forPort('a', 'b', 'c')).toBeUndefined();
    const objects = caseObjects('backendtlspolicy-conflict-resolution');
    const index = new BackendTlsIndex(objects.backendTLSPolicies, objects.configMaps);
    expect(index.forPort('infra', 'not-conflicted', 'https-1')?.tls?.sni).toBe('other.example.com');
    expect(index.forPort('infra', 'not-conflicted', 'https-2')?.tls?.sni).toBe('abc.example.com');
    expect(index.forPort('infra', 'nobody', 'https')).toBeUndefined();
  });
});
