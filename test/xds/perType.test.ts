import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/xds/proto.js';
import { ResourceEncoder } from '../../src/xds/resource.js';
import { type Snapshot, versionOf } from '../../src/xds/snapshot.js';
import {
  type DeltaResponse,
  type SotwResponse,
  XdsTestClient,
  type XdsTestStream,
} from '../helpers/adsClient.js';
import { type Harness, type Mesh, meshSnapshot, snapshotBytes, startServer } from './serverFixtures.js';

/**
 * The five per-type services (LDS, RDS, CDS, EDS, SDS), each in state-of-the-world and in delta:
 * subscribe, get exactly the resources asked for, ACK, get a change, get a removal; the checking client
 * records every protocol rule the server breaks (nonces, versions, type URLs, one response in flight),
 * and there must be none. Paths are spelled out here, not taken from the server's own table.
 */

const node = { id: 'envoy-per-type' };

const base: Mesh = {
  clusters: { a: 8001, b: 8002 },
  routes: { rc: ['a'] },
  listeners: { l1: { port: 10000, route: 'rc', secrets: ['s1'] } },
  secrets: { s1: 'AAAA' },
};

interface Case {
  readonly service: string;
  readonly kind: string;
  readonly typeUrl: TypeUrl;
  /** What the client subscribes to: [] is a wildcard subscription (LDS and CDS, as Envoy does). */
  readonly subscribe: readonly string[];
  /** What the first response holds. */
  readonly initial: readonly string[];
  /** A mesh in which `changed` (one of the subscribed resources) has new content. */
  readonly change: Mesh;
  readonly changed: string;
  /** A mesh (after `change`) without `removed`. */
  readonly removal: Mesh;
  readonly removed: string;
  /**
   * Named types: what the client subscribes to once `removed` is gone. In state of the world only
   * Listener and Cluster removals are signalled (by omission); for the others the client drops a
   * resource by no longer asking for it, as Envoy does when the listener or cluster naming it changes.
   */
  readonly resubscribe?: readonly string[];
}

const cases: readonly Case[] = [
  {
    service: 'envoy.service.listener.v3.ListenerDiscoveryService',
    kind: 'lds',
    typeUrl: TypeUrl.Listener,
    subscribe: [],
    initial: ['l1'],
    change: { ...base, listeners: { l1: { port: 10001, route: 'rc', secrets: ['s1'] } } },
    changed: 'l1',
    removal: { ...base, listeners: { l2: { port: 10002, route: 'rc', secrets: ['s1'] } } },
    removed: 'l1',
  },
  {
    service: 'envoy.service.route.v3.RouteDiscoveryService',
    kind: 'rds',
    typeUrl: TypeUrl.RouteConfiguration,
    subscribe: ['rc'],
    initial: ['rc'],
    change: { ...base, routes: { rc: ['b'] } },
    changed: 'rc',
    removal: {
      ...base,
      routes: { rc2: ['a'] },
      listeners: { l1: { port: 10000, route: 'rc2', secrets: ['s1'] } },
    },
    removed: 'rc',
    resubscribe: ['rc2'],
  },
  {
    service: 'envoy.service.cluster.v3.ClusterDiscoveryService',
    kind: 'cds',
    typeUrl: TypeUrl.Cluster,
    subscribe: [],
    initial: ['a', 'b'],
    change: { ...base, clusters: { a: 8001, b: 8002, c: 8003 } },
    changed: 'c',
    removal: { ...base, clusters: { a: 8001, c: 8003 } },
    removed: 'b',
  },
  {
    service: 'envoy.service.endpoint.v3.EndpointDiscoveryService',
    kind: 'eds',
    typeUrl: TypeUrl.ClusterLoadAssignment,
    subscribe: ['b'],
    initial: ['b'],
    change: { ...base, clusters: { a: 8001, b: 9002 } },
    changed: 'b',
    removal: { ...base, clusters: { a: 8001 } },
    removed: 'b',
    resubscribe: ['a'],
  },
  {
    service: 'envoy.service.secret.v3.SecretDiscoveryService',
    kind: 'sds',
    typeUrl: TypeUrl.Secret,
    subscribe: ['s1'],
    initial: ['s1'],
    change: { ...base, secrets: { s1: 'BBBB' } },
    changed: 's1',
    removal: {
      ...base,
      listeners: { l1: { port: 10000, route: 'rc', secrets: ['s2'] } },
      secrets: { s2: 'CCCC' },
    },
    removed: 's1',
    resubscribe: ['s2'],
  },
];

const SOTW_METHOD: Record<string, string> = {
  lds: 'StreamListeners',
  rds: 'StreamRoutes',
  cds: 'StreamClusters',
  eds: 'StreamEndpoints',
  sds: 'StreamSecrets',
};
const DELTA_METHOD: Record<string, string> = {
  lds: 'DeltaListeners',
  rds: 'DeltaRoutes',
  cds: 'DeltaClusters',
  eds: 'DeltaEndpoints',
  sds: 'DeltaSecrets',
};

let h: Harness;
let client: XdsTestClient;
let enc: ResourceEncoder;
let snap1: Snapshot;

beforeEach(async () => {
  h = await startServer();
  client = new XdsTestClient(h.address);
  enc = new ResourceEncoder();
  snap1 = meshSnapshot(enc, base);
  expect(h.cache.setSnapshot('default', snap1)).toEqual([]);
});

afterEach(async () => {
  client.close();
  await h.close();
});

function publish(mesh: Mesh): Snapshot {
  const s = meshSnapshot(enc, mesh);
  expect(h.cache.setSnapshot('default', s)).toEqual([]);
  return s;
}

/** The snapshot's bytes of `names` (all of the type when `names` is undefined). */
function expected(s: Snapshot, t: TypeUrl, names?: readonly string[]): Map<string, Buffer> {
  const all = snapshotBytes(s, t);
  return names === undefined ? all : new Map([...all].filter(([n]) => names.includes(n)));
}

/** The SotW version_info of `names` of the type (all of it when `names` is undefined). */
function versionOfSent(s: Snapshot, t: TypeUrl, names?: readonly string[]): string {
  const all = [...(s.resources.get(t)?.values() ?? [])];
  return versionOf(names === undefined ? all : all.filter((r) => names.includes(r.name)));
}

function bytesOf(res: SotwResponse | DeltaResponse): Map<string, Buffer> {
  return new Map(res.resources.map((r) => [r.name, r.any]));
}

describe.each(cases)('per-type $kind ($service)', (c) => {
  const names = c.subscribe.length === 0 ? undefined : c.subscribe;

  it('serves state of the world: what is subscribed, changes after the ACK, then the removal', async () => {
    const s = client.sotw(`/${c.service}/${SOTW_METHOD[c.kind]}`);
    s.send({ typeUrl: c.typeUrl, resourceNames: c.subscribe, node });
    const r1 = await s.next();
    expect(r1.typeUrl).toBe(c.typeUrl);
    expect([...bytesOf(r1).keys()].sort()).toEqual([...c.initial]);
    expect(bytesOf(r1)).toEqual(expected(snap1, c.typeUrl, names));
    // The version is that of what was sent: the whole type for a wildcard, the named ones otherwise.
    expect(r1.versionInfo).toBe(versionOfSent(snap1, c.typeUrl, names));
    expect(h.server.status().streams[0]?.kind).toBe(`${c.kind}-sotw`);
    const ack = (r: SotwResponse, resourceNames: readonly string[] = c.subscribe): void =>
      s.send({ typeUrl: c.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce, resourceNames });
    ack(r1);
    await s.expectQuiet(50);
    expect(h.server.status().streams[0]?.types[0]?.ackedVersion).toBe(r1.versionInfo);

    const snap2 = publish(c.change);
    const r2 = await s.next();
    expect(r2.versionInfo).toBe(versionOfSent(snap2, c.typeUrl, names));
    expect(bytesOf(r2).get(c.changed)).toEqual(expected(snap2, c.typeUrl).get(c.changed));
    expect(bytesOf(r2)).toEqual(expected(snap2, c.typeUrl, names));
    ack(r2);

    const snap3 = publish(c.removal);
    if (c.resubscribe === undefined) {
      // Listener and Cluster: the removal is the resource's absence from the next response.
      const r3 = await s.next();
      expect(r3.versionInfo).toBe(snap3.versions.get(c.typeUrl));
      expect(bytesOf(r3).has(c.removed)).toBe(false);
      expect(bytesOf(r3)).toEqual(expected(snap3, c.typeUrl));
      ack(r3);
    } else {
      // Named types: nothing to say about a name that is gone until the client asks for others.
      await s.expectQuiet(100);
      ack(r2, c.resubscribe);
      const r3 = await s.next();
      expect([...bytesOf(r3).keys()]).toEqual([...c.resubscribe]);
      expect(bytesOf(r3)).toEqual(expected(snap3, c.typeUrl, c.resubscribe));
      expect(r3.versionInfo).toBe(versionOfSent(snap3, c.typeUrl, c.resubscribe));
      ack(r3, c.resubscribe);
    }
    await s.expectQuiet(50);
    expect(s.violations).toEqual([]);
  });

  it('serves delta: what is subscribed, only the change after the ACK, removal in removed_resources', async () => {
    const s = client.delta(`/${c.service}/${DELTA_METHOD[c.kind]}`);
    s.send({ typeUrl: c.typeUrl, subscribe: c.subscribe, node });
    const r1 = await s.next();
    expect(r1.typeUrl).toBe(c.typeUrl);
    expect(r1.removed).toEqual([]);
    expect(bytesOf(r1)).toEqual(expected(snap1, c.typeUrl, names));
    expect([...bytesOf(r1).keys()].sort()).toEqual([...c.initial]);
    for (const r of r1.resources)
      expect(r.version).toBe(snap1.resources.get(c.typeUrl)?.get(r.name)?.version);
    expect(h.server.status().streams[0]?.kind).toBe(`${c.kind}-delta`);
    s.send({ typeUrl: c.typeUrl, responseNonce: r1.nonce });
    await s.expectQuiet(50);

    const snap2 = publish(c.change);
    const r2 = await s.next();
    // Only what changed goes out.
    expect(bytesOf(r2)).toEqual(expected(snap2, c.typeUrl, [c.changed]));
    expect(r2.resources[0]?.version).toBe(snap2.resources.get(c.typeUrl)?.get(c.changed)?.version);
    expect(r2.removed).toEqual([]);
    s.send({ typeUrl: c.typeUrl, responseNonce: r2.nonce });

    publish(c.removal);
    const r3 = await s.next();
    expect(r3.removed).toEqual([c.removed]);
    expect(bytesOf(r3).has(c.removed)).toBe(false);
    s.send({ typeUrl: c.typeUrl, responseNonce: r3.nonce });
    await s.expectQuiet(50);
    expect(s.violations).toEqual([]);
  });
});

describe('per-type streams', () => {
  it('ignore a request for another type and go on', async () => {
    for (const open of [
      () => client.sotw('/envoy.service.listener.v3.ListenerDiscoveryService/StreamListeners'),
      () => client.delta('/envoy.service.listener.v3.ListenerDiscoveryService/DeltaListeners'),
    ]) {
      const s = open() as XdsTestStream<
        { typeUrl: string; node?: typeof node; responseNonce?: string },
        SotwResponse
      >;
      s.send({ typeUrl: TypeUrl.Listener, node });
      const r = await s.next();
      expect(r.typeUrl).toBe(TypeUrl.Listener);
      s.send({ typeUrl: TypeUrl.Cluster, responseNonce: r.nonce });
      await s.expectQuiet(100);
      expect(s.violations).toEqual([]);
    }
  });

  it('take the type URL from the service when the request leaves it empty', async () => {
    const s = client.sotw('/envoy.service.route.v3.RouteDiscoveryService/StreamRoutes');
    s.send({ typeUrl: '', resourceNames: ['rc'], node });
    const r = await s.next();
    expect(r.typeUrl).toBe(TypeUrl.RouteConfiguration);
    expect(r.resources.map((x) => x.name)).toEqual(['rc']);
  });

  it('do not order across types: RDS goes out without any CDS on the stream', async () => {
    // On ADS the route configuration would wait for its clusters to be ACKed; a per-type stream
    // cannot see the other types, so it sends what is subscribed at once.
    const s = client.delta('/envoy.service.route.v3.RouteDiscoveryService/DeltaRoutes');
    s.send({ typeUrl: TypeUrl.RouteConfiguration, subscribe: ['rc'], node });
    expect((await s.next()).resources.map((x) => x.name)).toEqual(['rc']);
    expect(s.violations).toEqual([]);
  });
});
