import { describe, expect, it } from 'vitest';
import { ControlPlane } from '../../src/controlPlane.js';
import { carryTransitionTimes } from '../../src/gateway/conditions.js';
import { createGatewayTranslator, translateGateway } from '../../src/gateway/translate.js';
import { silentLogger } from '../../src/log.js';
import type {
  EndpointSlice,
  Gateway,
  GatewayClass,
  HTTPRoute,
  ObjectSet,
  ObjectStatus,
  Service,
} from '../../src/sources/objects.js';
import { emptyObjectSet } from '../../src/sources/objects.js';
import { messageType, TypeUrl } from '../../src/xds/proto.js';
import { createIrTranslator } from '../../src/xds/translate/translate.js';

/**
 * The memo caches that make a one-route change cost what it changes (route memo, reused Gateways,
 * interned Services, incremental route order, statuses carried from the memo, route messages memoised
 * per IR route, canonical JSON and bytes cached per repeated item) must never change what comes out.
 * A warm control plane fed a sequence of changes is compared, build after build, with a fresh one given
 * the same objects: same IR, same statuses (transition times carried the plain way), same resources,
 * byte for byte.
 */

const classes: GatewayClass[] = [
  {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GatewayClass',
    metadata: { name: 'skein', generation: 1 },
    spec: { controllerName: 'skein.io/gateway-controller' },
  },
];

function gateway(port: number): Gateway {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'edge', namespace: 'ns', generation: 1 },
    spec: {
      gatewayClassName: 'skein',
      addresses: [{ type: 'IPAddress', value: '127.0.0.1' }],
      listeners: [
        { name: 'any', protocol: 'HTTP', port, allowedRoutes: { namespaces: { from: 'Same' } } },
        {
          name: 'a',
          protocol: 'HTTP',
          port,
          hostname: '*.a.example',
          allowedRoutes: { namespaces: { from: 'Same' } },
        },
      ],
    },
  };
}

function service(s: number, port = 80): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `svc-${s}`, namespace: 'ns' },
    spec: { ports: [{ name: 'http', port }] },
  };
}

function slice(s: number, address: string): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `svc-${s}-a`, namespace: 'ns', labels: { 'kubernetes.io/service-name': `svc-${s}` } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 9000 }],
    endpoints: [{ addresses: [address], conditions: { ready: true } }],
  };
}

/** Routes with clashing path lengths, several hostnames and match kinds, so that order matters. */
function route(i: number, variant = 0): HTTPRoute {
  const hostnames = i % 3 === 0 ? ['x.a.example'] : i % 3 === 1 ? ['*.a.example', 'y.example'] : [];
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: `r-${i}`, namespace: 'ns', generation: 1 + variant },
    spec: {
      parentRefs: [{ name: 'edge' }],
      ...(hostnames.length > 0 ? { hostnames } : {}),
      rules: [
        {
          matches: [
            { path: { type: i % 4 === 0 ? 'Exact' : 'PathPrefix', value: `/p${i % 7}/${variant}` } },
            ...(i % 5 === 0
              ? [{ path: { type: 'PathPrefix' as const, value: '/' }, method: 'GET' as const }]
              : []),
          ],
          backendRefs: [{ name: `svc-${i % 6}`, port: 80 }],
        },
      ],
    },
  };
}

interface World {
  gateways: Gateway[];
  routes: HTTPRoute[];
  services: Service[];
  slices: EndpointSlice[];
}

function objects(w: World): ObjectSet {
  return {
    ...emptyObjectSet,
    gatewayClasses: classes,
    gateways: w.gateways,
    httpRoutes: w.routes,
    services: w.services,
    endpointSlices: w.slices,
  };
}

function resourcesOf(cp: ControlPlane, group: string): Map<string, { version: string; any: Uint8Array }> {
  const out = new Map<string, { version: string; any: Uint8Array }>();
  for (const [type, m] of cp.cache.getSnapshot(group)?.resources ?? []) {
    for (const [name, r] of m) out.set(`${type} ${name}`, { version: r.version, any: r.any });
  }
  return out;
}

describe('one change among N gives what a cold build gives', () => {
  it('keeps IR, statuses and resources identical to a fresh build, change after change', () => {
    const n = 120;
    const w: World = {
      gateways: [gateway(8080)],
      routes: Array.from({ length: n }, (_, i) => route(i)),
      services: Array.from({ length: 6 }, (_, s) => service(s)),
      slices: Array.from({ length: 6 }, (_, s) => slice(s, '127.0.0.1')),
    };
    const changes: ((w: World) => void)[] = [
      () => {},
      (w) => {
        w.routes[5] = route(5, 1);
      },
      (w) => {
        w.routes = w.routes.filter((_, i) => i !== 7 && i !== 50);
      },
      (w) => {
        w.routes = [...w.routes, route(7, 2), route(200)];
      },
      // Equal objects built afresh (as after a relist): nothing changes.
      (w) => {
        w.services = w.services.map((_, s) => service(s));
        w.slices = w.slices.map((_, s) => slice(s, '127.0.0.1'));
        w.gateways = [gateway(8080)];
      },
      (w) => {
        w.slices[2] = slice(2, '127.0.0.2');
      },
      // A Service port that no longer matches: its routes' backends stop resolving.
      (w) => {
        w.services[3] = service(3, 81);
      },
      (w) => {
        w.routes[0] = route(0, 3);
        w.routes[1] = route(1, 3);
      },
      (w) => {
        w.gateways = [gateway(9090)];
      },
      (w) => {
        w.routes = w.routes.slice(10);
      },
    ];

    const warm = new ControlPlane({ logger: silentLogger });
    let reference: ObjectStatus[] = [];
    changes.forEach((change, build) => {
      change(w);
      const set = objects(w);
      const report = warm.apply(set);
      expect(report.errors).toEqual([]);

      // Statuses: a fresh translation, carried the plain way from the reference of the last build.
      const fresh = translateGateway(set, { transitionTime: report.at });
      reference = carryTransitionTimes(reference, fresh.statuses);
      expect(JSON.stringify(warm.statuses), `statuses after change ${build}`).toBe(JSON.stringify(reference));
      expect(JSON.stringify(warm.ir), `IR after change ${build}`).toBe(JSON.stringify(fresh.ir));

      // Resources: versions and bytes as a fresh control plane makes them.
      const cold = new ControlPlane({ logger: silentLogger });
      cold.apply(set);
      for (const group of ['envoy', 'grpc']) {
        const a = resourcesOf(warm, group);
        const b = resourcesOf(cold, group);
        expect([...a.keys()]).toEqual([...b.keys()]);
        for (const [key, r] of a) {
          expect(r.version, key).toBe(b.get(key)?.version);
          expect(Buffer.from(r.any).equals(Buffer.from(b.get(key)?.any ?? [])), key).toBe(true);
        }
      }
    });
  });

  it('encodes a route configuration whose routes come from the cache exactly as protobufjs does', () => {
    const cp = new ControlPlane({ logger: silentLogger });
    const w: World = {
      gateways: [gateway(8080)],
      routes: Array.from({ length: 60 }, (_, i) => route(i)),
      services: Array.from({ length: 6 }, (_, s) => service(s)),
      slices: Array.from({ length: 6 }, (_, s) => slice(s, '127.0.0.1')),
    };
    cp.apply(objects(w));
    w.routes[3] = route(3, 1);
    cp.apply(objects(w));
    const any = messageType('google.protobuf.Any');
    for (const type of [TypeUrl.RouteConfiguration, TypeUrl.ClusterLoadAssignment]) {
      const t = messageType(type);
      for (const r of cp.cache.getSnapshot('envoy')?.resources.get(type)?.values() ?? []) {
        // Neither type nests an Any, so protobufjs can encode the plain object directly.
        const plain = any
          .encode({ type_url: type, value: t.encode(t.fromObject(r.message)).finish() })
          .finish();
        expect(Buffer.from(r.any).equals(Buffer.from(plain)), `${type} ${r.name}`).toBe(true);
      }
    }
  });
});

describe('one change among many hostnames costs that hostname', () => {
  function hostRoute(i: number, path: string): HTTPRoute {
    return {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: `h-${i}`, namespace: 'ns', generation: 1 },
      spec: {
        parentRefs: [{ name: 'edge' }],
        hostnames: [`h${i}.example`],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: path } }],
            backendRefs: [{ name: 'svc-0', port: 80 }],
          },
        ],
      },
    };
  }

  it('re-encodes the Envoy route configuration and only the changed host’s two proxyless-gRPC resources', () => {
    const n = 50;
    const routes = Array.from({ length: n }, (_, i) => hostRoute(i, '/'));
    const world: World = {
      gateways: [gateway(8080)],
      routes,
      services: [service(0)],
      slices: [slice(0, '10.0.0.1')],
    };
    const cp = new ControlPlane({ logger: silentLogger });
    expect(cp.apply(objects(world)).published).toBe(true);
    const before = resourcesOf(cp, 'grpc');
    expect(before.size).toBeGreaterThan(2 * n);
    const changed = [...routes];
    changed[7] = hostRoute(7, '/changed');
    const report = cp.apply(objects({ ...world, routes: changed }));
    expect(report.published).toBe(true);
    const after = resourcesOf(cp, 'grpc');
    const differ = [...after].filter(([k, r]) => before.get(k)?.version !== r.version).map(([k]) => k);
    expect(differ.sort()).toEqual([`${TypeUrl.RouteConfiguration} grpc/h7.example`]);
    // Envoy's one route configuration for the socket, plus gRPC's route configuration of h7 (its
    // Listener's bytes are unchanged, so it is not encoded again).
    expect(report.encoded).toBe(2);
  });

  it('keeps the unchanged hosts’ gRPC resources the same objects, so they are not even hashed again', () => {
    const n = 20;
    const routes = Array.from({ length: n }, (_, i) => hostRoute(i, '/'));
    const world: World = {
      gateways: [gateway(8080)],
      routes,
      services: [service(0)],
      slices: [slice(0, '10.0.0.1')],
    };
    const T = '2024-01-01T00:00:00Z';
    const gw = createGatewayTranslator();
    const xds = createIrTranslator();
    const first = xds.translate(gw.translate(objects(world), { transitionTime: T }).ir, { flavor: 'grpc' });
    const changed = [...routes];
    changed[3] = hostRoute(3, '/changed');
    const second = xds.translate(
      gw.translate(objects({ ...world, routes: changed }), { transitionTime: T }).ir,
      { flavor: 'grpc' },
    );
    const old = new Set(first);
    const remade = second.filter((r) => !old.has(r)).map((r) => `${r.typeUrl} ${r.name}`);
    expect(remade.sort()).toEqual([
      `${TypeUrl.Listener} h3.example`,
      `${TypeUrl.RouteConfiguration} grpc/h3.example`,
    ]);
  });
});
