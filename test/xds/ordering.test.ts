import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/xds/proto.js';
import { ResourceEncoder } from '../../src/xds/resource.js';
import type { Snapshot } from '../../src/xds/snapshot.js';
import { EnvoyLike, XdsTestClient } from '../helpers/adsClient.js';
import {
  type Harness,
  type Mesh,
  meshSnapshot,
  sameBytes,
  snapshotBytes,
  startServer,
} from './serverFixtures.js';

/**
 * Make-before-break over real streams: an Envoy-like client follows references (EDS after CDS, RDS and
 * SDS after LDS), ACKs everything, and checks on every response that nothing it is sent points at a
 * cluster it does not have, and that nothing it still uses is removed.
 */

const types = [
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.Secret,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
] as const;

const v1: Mesh = {
  clusters: { a: 8001, b: 8002 },
  routes: { rc: ['a'], rc2: ['b'] },
  listeners: { l1: { port: 10000, route: 'rc' }, l2: { port: 10443, route: 'rc2', secrets: ['s1'] } },
  secrets: { s1: 'one' },
};

// Cluster a goes away while routes move to b and a new cluster c; l2 switches to a new secret.
const v2: Mesh = {
  clusters: { b: 8002, c: 8003 },
  routes: { rc: ['b', 'c'], rc2: ['c'] },
  listeners: { l1: { port: 10000, route: 'rc' }, l2: { port: 10443, route: 'rc2', secrets: ['s2'] } },
  secrets: { s2: 'two' },
};

// The TLS listener, its route configuration and its secret go away.
const v3: Mesh = {
  clusters: { b: 8002, c: 8003 },
  routes: { rc: ['c'] },
  listeners: { l1: { port: 10000, route: 'rc' } },
};

let h: Harness;
let client: XdsTestClient;
let enc: ResourceEncoder;

beforeEach(async () => {
  h = await startServer();
  client = new XdsTestClient(h.address);
  enc = new ResourceEncoder();
});

afterEach(async () => {
  client.close();
  await h.close();
});

function converged(envoy: EnvoyLike, s: Snapshot): boolean {
  return types.every((t) => sameBytes(envoy.held(t), snapshotBytes(s, t)));
}

async function publishAndConverge(envoy: EnvoyLike, mesh: Mesh, what: string): Promise<Snapshot> {
  const s = meshSnapshot(enc, mesh);
  expect(h.cache.setSnapshot('default', s)).toEqual([]);
  try {
    await envoy.stream.until(() => converged(envoy, s), 4000, `the client to converge on ${what}`);
  } catch (e) {
    const held = Object.fromEntries(types.map((t) => [t.split('.').pop(), [...envoy.held(t).keys()]]));
    const want = Object.fromEntries(types.map((t) => [t.split('.').pop(), [...snapshotBytes(s, t).keys()]]));
    throw new Error(
      `${(e as Error).message}\nheld ${JSON.stringify(held)}\nwant ${JSON.stringify(want)}\nlog ${JSON.stringify(envoy.log.map((l) => ({ ...l, typeUrl: l.typeUrl.split('.').pop() })))}\nstatus ${JSON.stringify(h.server.status(), null, 1)}`,
    );
  }
  return s;
}

/**
 * Waits until the stream is quiet (no response for 100 ms), allowing a few trailing responses: removals of
 * what the client is about to unsubscribe are legitimate in delta. A loop would exceed the bound.
 */
async function settle(envoy: EnvoyLike): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const n = envoy.stream.received.length;
    await new Promise((r) => setTimeout(r, 100));
    if (envoy.stream.received.length === n) {
      expect(h.server.status().streams[0]?.types.every((t) => t.pendingNonce === null)).toBe(true);
      return;
    }
  }
  throw new Error(`no quiet after v3: ${JSON.stringify(envoy.log.slice(-6))}`);
}

const variants = [
  { name: 'SotW, subscription before ACK', delta: false, subscribeBeforeAck: true },
  { name: 'SotW, ACK before subscription', delta: false, subscribeBeforeAck: false },
  { name: 'delta, subscription before ACK', delta: true, subscribeBeforeAck: true },
  { name: 'delta, ACK before subscription', delta: true, subscribeBeforeAck: false },
];

describe.each(variants)('make before break ($name)', ({ delta, subscribeBeforeAck }) => {
  it('never references a cluster the client lacks, and removes clusters only once unused', async () => {
    const options = { node: { id: 'envoy-order' }, subscribeBeforeAck };
    const envoy = delta ? EnvoyLike.delta(client.delta(), options) : EnvoyLike.sotw(client.sotw(), options);
    const s1 = meshSnapshot(enc, v1);
    expect(h.cache.setSnapshot('default', s1)).toEqual([]);
    envoy.start();
    await envoy.stream.until(() => converged(envoy, s1), 4000, 'the client to converge on v1');

    // Startup order: clusters and their endpoints were ACKed before the first route configuration.
    const firstRds = envoy.log.findIndex((e) => e.typeUrl === TypeUrl.RouteConfiguration);
    const firstEds = envoy.log.findIndex((e) => e.typeUrl === TypeUrl.ClusterLoadAssignment);
    const firstCds = envoy.log.findIndex((e) => e.typeUrl === TypeUrl.Cluster);
    expect(firstCds).toBe(0);
    expect(firstEds).toBeGreaterThan(firstCds);
    expect(firstRds).toBeGreaterThan(firstEds);

    const before = envoy.log.length;
    await publishAndConverge(envoy, v2, 'v2');
    const changes = envoy.log.slice(before);
    // Cluster a was removed only after both route configurations had stopped using it.
    const removal = changes.findIndex(
      (e) => e.typeUrl === TypeUrl.Cluster && (delta ? e.removed.includes('a') : !e.names.includes('a')),
    );
    const rcMoved = changes.findIndex(
      (e) => e.typeUrl === TypeUrl.RouteConfiguration && e.names.includes('rc'),
    );
    expect(removal).toBeGreaterThan(-1);
    expect(rcMoved).toBeGreaterThan(-1);
    expect(removal).toBeGreaterThan(rcMoved);
    // The new cluster came before the routes that use it.
    const cAdded = changes.findIndex((e) => e.typeUrl === TypeUrl.Cluster && e.names.includes('c'));
    expect(cAdded).toBeLessThan(rcMoved);

    const s3 = await publishAndConverge(envoy, v3, 'v3');
    await settle(envoy);
    expect(converged(envoy, s3)).toBe(true);

    expect(envoy.breaches).toEqual([]);
    expect(envoy.stream.violations).toEqual([]);
    expect(envoy.log.filter((e) => e.nacked)).toEqual([]);
  });
});

describe('dependencies the client can only learn from the resource itself', () => {
  it('does not deadlock a client that discovers clusters from routes (proxyless gRPC)', async () => {
    h.cache.setSnapshot('default', meshSnapshot(enc, v1));
    const s = client.sotw();
    s.send({ typeUrl: TypeUrl.Listener, resourceNames: ['l1'], node: { id: 'grpc-client' } });
    const lds = await s.next();
    s.send({
      typeUrl: TypeUrl.Listener,
      resourceNames: ['l1'],
      responseNonce: lds.nonce,
      versionInfo: lds.versionInfo,
    });
    s.send({ typeUrl: TypeUrl.RouteConfiguration, resourceNames: ['rc'] });
    // Cluster a is not subscribed and nothing else would make the client ask for it: rc goes out.
    const rds = await s.next();
    expect(rds.resources.map((r) => r.name)).toEqual(['rc']);
    s.send({
      typeUrl: TypeUrl.RouteConfiguration,
      resourceNames: ['rc'],
      responseNonce: rds.nonce,
      versionInfo: rds.versionInfo,
    });
    s.send({ typeUrl: TypeUrl.Cluster, resourceNames: ['a'] });
    const cds = await s.next();
    expect(cds.resources.map((r) => r.name)).toEqual(['a']);
    expect(s.violations).toEqual([]);
  });

  it('sends a listener before the secret it needs, since Envoy asks for secrets only once it has the listener', async () => {
    h.cache.setSnapshot('default', meshSnapshot(enc, v1));
    const s = client.delta();
    s.send({ typeUrl: TypeUrl.Listener, node: { id: 'envoy-tls' } });
    const lds = await s.next();
    expect(lds.resources.map((r) => r.name).sort()).toEqual(['l1', 'l2']);
    s.send({ typeUrl: TypeUrl.Listener, responseNonce: lds.nonce });
    s.send({ typeUrl: TypeUrl.Secret, subscribe: ['s1'] });
    const sds = await s.next();
    expect(sds.resources.map((r) => r.name)).toEqual(['s1']);
    s.send({ typeUrl: TypeUrl.Secret, responseNonce: sds.nonce });
    // Once the secret is subscribed, a listener change that needs a subscribed secret waits for its ACK.
    const v1b: Mesh = {
      ...v1,
      listeners: { ...v1.listeners, l3: { port: 10444, route: 'rc2', secrets: ['s1', 's3'] } },
      secrets: { s1: 'one', s3: 'three' },
    };
    h.cache.setSnapshot('default', meshSnapshot(enc, v1b));
    // l3 needs s1 (held) and s3 (not subscribed, only l3 would make the client ask): it is sent.
    const lds2 = await s.next();
    expect(lds2.resources.map((r) => r.name)).toEqual(['l3']);
    expect(s.violations).toEqual([]);
  });
});
