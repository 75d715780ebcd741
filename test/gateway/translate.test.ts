import { describe, expect, it } from 'vitest';
import { carryTransitionTimes } from '../../src/gateway/conditions.js';
import { SUPPORTED_FEATURES } from '../../src/gateway/gatewayClasses.js';
import { createGatewayTranslator, translateGateway } from '../../src/gateway/translate.js';
import type { Ir, IrRoute } from '../../src/model/ir.js';
import { FileCache } from '../../src/sources/file/FileCache.js';
import type { Gateway, HTTPRoute, ObjectSet, ObjectStatus } from '../../src/sources/objects.js';
import { emptyObjectSet } from '../../src/sources/objects.js';

const T1 = '2024-01-01T00:00:00Z';
const T2 = '2024-01-01T00:05:00Z';

const base = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: skein }
spec: { controllerName: skein.io/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  gatewayClassName: skein
  listeners:
    - { name: http, port: 8080, protocol: HTTP }
    - { name: other, port: 9090, protocol: HTTP }
---
apiVersion: v1
kind: Service
metadata: { name: blue, namespace: default }
spec: { ports: [{ name: http, port: 80 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: blue-1, namespace: default, labels: { kubernetes.io/service-name: blue } }
addressType: IPv4
ports: [{ name: http, port: 9081 }]
endpoints: [{ addresses: ["127.0.0.1"] }]
---
apiVersion: v1
kind: Service
metadata: { name: green, namespace: default }
spec: { ports: [{ name: http, port: 80 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: green-1, namespace: default, labels: { kubernetes.io/service-name: green } }
addressType: IPv4
ports: [{ name: http, port: 9082 }]
endpoints: [{ addresses: ["127.0.0.2"] }]
`;

function route(name: string, path: string, service: string, section = 'http'): string {
  return `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: default }
spec:
  parentRefs: [{ name: gw, sectionName: ${section} }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: ${path} } }]
      backendRefs: [{ name: ${service}, port: 80 }]
`;
}

/** A directory of files, as the file source would hold it: unchanged files keep their objects. */
function files(initial: Record<string, string>): { cache: FileCache; objects: () => ObjectSet } {
  const cache = new FileCache();
  for (const [file, content] of Object.entries(initial)) cache.update(file, content);
  return {
    cache,
    objects: () => {
      const { objects, diagnostics } = cache.snapshot();
      expect(diagnostics).toEqual([]);
      return objects;
    },
  };
}

function routesByName(ir: Ir): Map<string, IrRoute> {
  const out = new Map<string, IrRoute>();
  for (const l of ir.listeners)
    for (const vh of l.virtualHosts) for (const r of vh.routes) out.set(r.name, r);
  return out;
}

describe('memoisation', () => {
  it('re-translates only the changed route; everything else keeps its identity', () => {
    const dir = files({
      'base.yaml': base,
      'a.yaml': route('a', '/a', 'blue'),
      'b.yaml': route('b', '/b', 'green'),
      'c.yaml': route('c', '/c', 'blue', 'other'),
    });
    const translator = createGatewayTranslator();
    const first = translator.translate(dir.objects(), { transitionTime: T1 });
    const before = routesByName(first.ir);

    // An identical input gives back the very same IR.
    const same = translator.translate(dir.objects(), { transitionTime: T1 });
    expect(same.ir).toBe(first.ir);

    dir.cache.update('b.yaml', route('b', '/b-changed', 'green'));
    const second = translator.translate(dir.objects(), { transitionTime: T1 });
    const after = routesByName(second.ir);

    expect(after.get('httproute/default/a/rule/0/match/0')).toBe(
      before.get('httproute/default/a/rule/0/match/0'),
    );
    expect(after.get('httproute/default/c/rule/0/match/0')).toBe(
      before.get('httproute/default/c/rule/0/match/0'),
    );
    const b = after.get('httproute/default/b/rule/0/match/0');
    expect(b).not.toBe(before.get('httproute/default/b/rule/0/match/0'));
    expect(b?.match.path).toEqual({ kind: 'PathPrefix', value: '/b-changed' });

    // Backends whose Service and slices did not change are the same objects.
    expect(second.ir.backends).toHaveLength(2);
    for (const [i, backend] of second.ir.backends.entries()) expect(backend).toBe(first.ir.backends[i]);
    // The listener on 9090 only holds route c: shared. The one on 8080 holds b: rebuilt.
    const l9090 = (ir: Ir) => ir.listeners.find((l) => l.port === 9090);
    const l8080 = (ir: Ir) => ir.listeners.find((l) => l.port === 8080);
    expect(l9090(second.ir)).toBe(l9090(first.ir));
    expect(l8080(second.ir)).not.toBe(l8080(first.ir));
  });

  it('re-translates a route whose backend stops resolving even though the route object is the same', () => {
    const dir = files({ 'base.yaml': base, 'a.yaml': route('a', '/a', 'blue') });
    const translator = createGatewayTranslator();
    const first = translator.translate(dir.objects(), { transitionTime: T1 });
    const a1 = routesByName(first.ir).get('httproute/default/a/rule/0/match/0');
    expect(a1?.action.kind).toBe('forward');

    dir.cache.update(
      'base.yaml',
      base.replace(
        'metadata: { name: blue, namespace: default }',
        'metadata: { name: cyan, namespace: default }',
      ),
    );
    const second = translator.translate(dir.objects(), { transitionTime: T1 });
    const a2 = routesByName(second.ir).get('httproute/default/a/rule/0/match/0');
    expect(a2?.action).toEqual({ kind: 'directResponse', status: 500 });
  });

  it('builds a new backend when its EndpointSlice changes', () => {
    const dir = files({ 'base.yaml': base, 'a.yaml': route('a', '/a', 'blue') });
    const translator = createGatewayTranslator();
    const first = translator.translate(dir.objects(), { transitionTime: T1 });
    dir.cache.update('base.yaml', base.replace('port: 9081', 'port: 9181'));
    const second = translator.translate(dir.objects(), { transitionTime: T1 });
    expect(second.ir.backends[0]).not.toBe(first.ir.backends[0]);
    expect(second.ir.backends[0]?.endpoints).toEqual([{ address: '127.0.0.1', port: 9181, ready: true }]);
    // The route itself did not change: same IR route object.
    expect(routesByName(second.ir).get('httproute/default/a/rule/0/match/0')).toBe(
      routesByName(first.ir).get('httproute/default/a/rule/0/match/0'),
    );
  });
});

describe('carryTransitionTimes', () => {
  it('gives byte-identical status when nothing changed, and a new time only where a condition changed', () => {
    const dir = files({
      'base.yaml': base,
      'a.yaml': route('a', '/a', 'blue'),
      'b.yaml': route('b', '/b', 'green'),
    });
    const first = translateGateway(dir.objects(), { transitionTime: T1 }).statuses;
    const recomputed = translateGateway(dir.objects(), { transitionTime: T2 }).statuses;
    expect(JSON.stringify(recomputed)).not.toBe(JSON.stringify(first));
    expect(JSON.stringify(carryTransitionTimes(first, recomputed))).toBe(JSON.stringify(first));

    // Route b now points at a Service that does not exist: its ResolvedRefs changes, Accepted does not.
    dir.cache.update('b.yaml', route('b', '/b', 'missing'));
    const next = carryTransitionTimes(
      first,
      translateGateway(dir.objects(), { transitionTime: T2 }).statuses,
    );
    const conditionsOf = (statuses: ObjectStatus[], name: string) => {
      const s = statuses.find((x) => x.kind === 'HTTPRoute' && x.name === name);
      const parents = s?.status['parents'] as {
        conditions: { type: string; status: string; lastTransitionTime: string }[];
      }[];
      return parents[0]?.conditions ?? [];
    };
    const b = conditionsOf(next, 'b');
    expect(b.find((c) => c.type === 'ResolvedRefs')).toMatchObject({
      status: 'False',
      lastTransitionTime: T2,
    });
    expect(b.find((c) => c.type === 'Accepted')).toMatchObject({ status: 'True', lastTransitionTime: T1 });
    expect(JSON.stringify(conditionsOf(next, 'a'))).toBe(JSON.stringify(conditionsOf(first, 'a')));
    // The Gateway's listener conditions did not change either (attachedRoutes is not a condition).
    const gw = (statuses: ObjectStatus[]) => statuses.find((x) => x.kind === 'Gateway');
    expect(JSON.stringify(gw(next))).toBe(JSON.stringify(gw(first)));
  });

  it('does not modify its inputs and keeps the new time for a changed generation', () => {
    const prev: ObjectStatus[] = [
      {
        apiVersion: 'v',
        kind: 'GatewayClass',
        namespace: '',
        name: 'x',
        status: {
          conditions: [
            {
              type: 'Accepted',
              status: 'True',
              reason: 'Accepted',
              message: 'm',
              observedGeneration: 1,
              lastTransitionTime: T1,
            },
          ],
        },
      },
    ];
    const next: ObjectStatus[] = [
      {
        apiVersion: 'v',
        kind: 'GatewayClass',
        namespace: '',
        name: 'x',
        status: {
          conditions: [
            {
              type: 'Accepted',
              status: 'True',
              reason: 'Accepted',
              message: 'm',
              observedGeneration: 2,
              lastTransitionTime: T2,
            },
          ],
        },
      },
    ];
    const frozenPrev = JSON.stringify(prev);
    const frozenNext = JSON.stringify(next);
    const out = carryTransitionTimes(prev, next);
    expect(JSON.stringify(out)).toBe(frozenNext);
    expect(JSON.stringify(prev)).toBe(frozenPrev);
    expect(JSON.stringify(next)).toBe(frozenNext);
  });
});

describe('bad input never throws', () => {
  it('turns values the schema would catch (or not) into conditions, and translates everything else', () => {
    const gateways = [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: 'bad-ip', namespace: 'default' },
        spec: {
          gatewayClassName: 'skein',
          addresses: [{ type: 'IPAddress', value: 'not-an-ip' }],
          listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }],
        },
      },
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: 'good', namespace: 'default' },
        spec: {
          gatewayClassName: 'skein',
          listeners: [
            {
              name: 'http',
              port: 80,
              protocol: 'HTTP',
              allowedRoutes: {
                namespaces: {
                  from: 'Selector',
                  selector: { matchExpressions: [{ key: 'a', operator: 'Near' }] },
                },
              },
            },
            { name: 'ok', port: 81, protocol: 'HTTP' },
          ],
        },
      },
    ] as unknown as Gateway[];
    const httpRoutes = [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'weird', namespace: 'default' },
        spec: {
          parentRefs: [{ name: 'good', sectionName: 'ok' }],
          rules: [
            { matches: [{ path: { type: 'Glob', value: '/x*' } }] },
            { matches: [{ path: { type: 'RegularExpression', value: '(unclosed' } }] },
            { matches: [{ path: { type: 'Exact', value: 'relative' } }] },
            { matches: [{ headers: [{ name: 'x', type: 'Fuzzy', value: 'y' }] }] },
            { matches: [{ method: 'BREW' }] },
            { filters: [{ type: 'Teleport' }] },
            { timeouts: { request: 'soon' } },
            { matches: [{ path: { type: 'Exact', value: '/fine' } }] },
          ],
        },
      },
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'no-spec', namespace: 'default' },
      },
    ] as unknown as HTTPRoute[];
    const objects: ObjectSet = {
      ...emptyObjectSet,
      gatewayClasses: [
        {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'GatewayClass',
          metadata: { name: 'skein' },
          spec: { controllerName: 'skein.io/gateway-controller' },
        },
      ],
      gateways,
      httpRoutes,
    };
    const result = translateGateway(objects, { transitionTime: T1 });
    expect(result.diagnostics).toEqual([]);
    const status = (name: string) =>
      result.statuses.find((s) => s.name === name)?.status as Record<string, unknown>;

    const badIp = status('bad-ip')['conditions'] as { type: string; status: string; reason: string }[];
    expect(badIp).toContainEqual(
      expect.objectContaining({ type: 'Programmed', status: 'False', reason: 'AddressNotUsable' }),
    );

    const good = status('good')['listeners'] as {
      name: string;
      conditions: { type: string; status: string; reason: string }[];
    }[];
    expect(good[0]?.conditions).toContainEqual(
      expect.objectContaining({ type: 'Accepted', status: 'False', reason: 'UnsupportedValue' }),
    );
    expect(good[1]?.conditions).toContainEqual(
      expect.objectContaining({ type: 'Programmed', status: 'True' }),
    );

    const weird = (
      status('weird')['parents'] as { conditions: { type: string; status: string; message: string }[] }[]
    )[0];
    const partially = weird?.conditions.find((c) => c.type === 'PartiallyInvalid');
    expect(partially?.status).toBe('True');
    for (let i = 0; i < 7; i++) expect(partially?.message).toContain(`rules[${i}]`);
    // The one good rule serves; the route without spec gets no status (it names no parent).
    expect([...routes(result.ir)]).toEqual(['httproute/default/weird/rule/7/match/0']);
    expect(status('no-spec')).toBeUndefined();
  });
});

function* routes(ir: Ir): Generator<string> {
  for (const l of ir.listeners) for (const vh of l.virtualHosts) for (const r of vh.routes) yield r.name;
}

describe('GatewayClass supportedFeatures', () => {
  it('lists each feature once, in the ascending order the spec asks for', () => {
    expect([...SUPPORTED_FEATURES].sort()).toEqual(SUPPORTED_FEATURES);
    expect(new Set(SUPPORTED_FEATURES).size).toBe(SUPPORTED_FEATURES.length);
  });
});

describe('incremental assembly', () => {
  // Listeners with and without hostnames on one socket (isolation), a second socket, and routes with
  // precise, wildcard and no hostnames, HTTPRoutes and GRPCRoutes, some on two listeners: every kind of
  // change the per-domain update has to get right. Each step's warm result must equal a cold build's.
  const gateway = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: skein }
spec: { controllerName: skein.io/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  gatewayClassName: skein
  listeners:
    - { name: any, port: 8080, protocol: HTTP }
    - { name: wild, port: 8080, protocol: HTTP, hostname: "*.example.com" }
    - { name: exact, port: 8080, protocol: HTTP, hostname: a.example.com }
    - { name: other, port: 9090, protocol: HTTP }
---
apiVersion: v1
kind: Service
metadata: { name: blue, namespace: default }
spec: { ports: [{ name: http, port: 80 }] }
`;
  const HOSTS = [
    '',
    'a.example.com',
    'b.example.com',
    '*.example.com',
    'x.other.test',
    '*.other.test',
    'c.b.example.com',
  ];
  const SECTIONS = ['', 'any', 'wild', 'exact', 'other'];

  /** A small deterministic generator (mulberry32), so a failure is reproducible. */
  function rng(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function routeYaml(kind: 'HTTPRoute' | 'GRPCRoute', name: string, r: () => number): string {
    const pick = <T>(list: readonly T[]): T => list[Math.floor(r() * list.length)] as T;
    const hosts = [...new Set([pick(HOSTS), pick(HOSTS)])].filter((h) => h !== '');
    const sections = [...new Set([pick(SECTIONS), pick(SECTIONS)])];
    const parents = sections.map((s) => (s === '' ? '{ name: gw }' : `{ name: gw, sectionName: ${s} }`));
    const match =
      kind === 'HTTPRoute'
        ? `{ path: { type: PathPrefix, value: /p${Math.floor(r() * 4)} } }`
        : `{ method: { service: svc${Math.floor(r() * 4)}.Api } }`;
    return `apiVersion: gateway.networking.k8s.io/v1
kind: ${kind}
metadata: { name: ${name}, namespace: default, creationTimestamp: "2024-01-0${1 + Math.floor(r() * 9)}T00:00:00Z" }
spec:
  parentRefs: [${parents.join(', ')}]
${hosts.length === 0 ? '' : `  hostnames: [${hosts.map((h) => `"${h}"`).join(', ')}]\n`}  rules: [{ matches: [${match}], backendRefs: [{ name: blue, port: 80 }] }]
`;
  }

  it.each([1, 2, 3])('gives what a cold build gives, edit after edit (seed %i)', (seed) => {
    const r = rng(seed);
    const dir = files({ 'gw.yaml': gateway });
    const translator = createGatewayTranslator();
    let previous: readonly ObjectStatus[] | undefined;
    const live = new Set<string>();
    for (let step = 0; step < 60; step++) {
      const name = `r${Math.floor(r() * 12)}`;
      if (live.has(name) && r() < 0.35) {
        dir.cache.update(`${name}.yaml`, '');
        live.delete(name);
      } else {
        dir.cache.update(`${name}.yaml`, routeYaml(r() < 0.7 ? 'HTTPRoute' : 'GRPCRoute', name, r));
        live.add(name);
      }
      const objects = dir.objects();
      const warm = translator.translate(objects, { transitionTime: T1, ...(previous ? { previous } : {}) });
      const cold = translateGateway(objects, { transitionTime: T1 });
      expect(JSON.stringify(warm.ir), `step ${step}`).toBe(JSON.stringify(cold.ir));
      expect(JSON.stringify(warm.statuses), `step ${step}`).toBe(JSON.stringify(cold.statuses));
      previous = warm.statuses;
    }
  });
});
