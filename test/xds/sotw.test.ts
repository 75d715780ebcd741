import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SnapshotCache } from '../../src/xds/cache.js';
import { TypeUrl } from '../../src/xds/proto.js';
import { ResourceEncoder } from '../../src/xds/resource.js';
import type { Snapshot } from '../../src/xds/snapshot.js';
import { type SotwResponse, XdsTestClient, type XdsTestStream } from '../helpers/adsClient.js';
import { type Harness, type Mesh, meshSnapshot, snapshotBytes, startServer } from './serverFixtures.js';

const node = { id: 'envoy-1' };

const mesh1: Mesh = {
  clusters: { a: 8001, b: 8002 },
  routes: { rc: ['a'] },
  listeners: { l1: { port: 10000, route: 'rc' } },
};

let h: Harness;
let client: XdsTestClient;
let enc: ResourceEncoder;
let snap1: Snapshot;

beforeEach(async () => {
  h = await startServer();
  client = new XdsTestClient(h.address);
  enc = new ResourceEncoder();
  snap1 = meshSnapshot(enc, mesh1);
  expect(h.cache.setSnapshot('default', snap1)).toEqual([]);
});

afterEach(async () => {
  client.close();
  await h.close();
});

function ack(
  s: XdsTestStream<{ typeUrl: string }, SotwResponse>,
  res: SotwResponse,
  names: string[] = [],
): void {
  (s as XdsTestStream<import('../helpers/adsClient.js').SotwRequestInit, SotwResponse>).send({
    typeUrl: res.typeUrl,
    versionInfo: res.versionInfo,
    responseNonce: res.nonce,
    resourceNames: names,
  });
}

function bytesOf(res: SotwResponse): Map<string, Buffer> {
  return new Map(res.resources.map((r) => [r.name, r.any]));
}

describe('SotW ADS', () => {
  it('answers a wildcard CDS request with every cluster, then pushes changes after the ACK', async () => {
    const s = client.sotw();
    s.send({ typeUrl: TypeUrl.Cluster, node });
    const r1 = await s.next();
    expect(r1.typeUrl).toBe(TypeUrl.Cluster);
    expect(r1.versionInfo).toBe(snap1.versions.get(TypeUrl.Cluster));
    expect(r1.controlPlane).toBe('skein');
    expect(bytesOf(r1)).toEqual(snapshotBytes(snap1, TypeUrl.Cluster));
    ack(s, r1);
    await s.expectQuiet(100);

    const [stream] = h.server.status().streams;
    expect(stream).toMatchObject({ kind: 'ads-sotw', nodeId: 'envoy-1', group: 'default' });
    expect(stream?.types).toEqual([
      expect.objectContaining({
        type: 'CDS',
        wildcard: true,
        ackedVersion: r1.versionInfo,
        sentVersion: r1.versionInfo,
        pendingNonce: null,
        resourceCount: 2,
        lastNack: null,
      }),
    ]);

    // A new cluster: the full set again, with a new version and a higher nonce.
    const snap2 = meshSnapshot(enc, { ...mesh1, clusters: { a: 8001, b: 8002, c: 8003 } });
    h.cache.setSnapshot('default', snap2);
    const r2 = await s.next();
    expect(r2.resources.map((r) => r.name).sort()).toEqual(['a', 'b', 'c']);
    expect(r2.versionInfo).toBe(snap2.versions.get(TypeUrl.Cluster));
    expect(r2.versionInfo).not.toBe(r1.versionInfo);
    expect(BigInt(r2.nonce)).toBeGreaterThan(BigInt(r1.nonce));
    expect(s.violations).toEqual([]);
  });

  it('removes a cluster by leaving it out of the next response', async () => {
    const s = client.sotw();
    s.send({ typeUrl: TypeUrl.Cluster, node });
    ack(s, await s.next());
    const snap2 = meshSnapshot(enc, { ...mesh1, clusters: { a: 8001 } });
    h.cache.setSnapshot('default', snap2);
    const r2 = await s.next();
    expect(r2.resources.map((r) => r.name)).toEqual(['a']);
    expect(r2.versionInfo).toBe(snap2.versions.get(TypeUrl.Cluster));
    expect(s.violations).toEqual([]);
  });

  it('sends nothing while a response is unanswered, then the latest state in one response', async () => {
    const s = client.sotw();
    s.send({ typeUrl: TypeUrl.Cluster, node });
    const r1 = await s.next();
    h.cache.setSnapshot('default', meshSnapshot(enc, { ...mesh1, clusters: { a: 8001, b: 8002, c: 8003 } }));
    const snap3 = meshSnapshot(enc, { ...mesh1, clusters: { a: 8001, b: 8002, c: 8003, d: 8004 } });
    h.cache.setSnapshot('default', snap3);
    await s.expectQuiet(150);
    ack(s, r1);
    const r2 = await s.next();
    expect(r2.versionInfo).toBe(snap3.versions.get(TypeUrl.Cluster));
    await s.expectQuiet(100);
    expect(s.violations).toEqual([]);
  });

  it('serves named EDS subscriptions: subscribe, missing names, unsubscribe', async () => {
    const s = client.sotw();
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['a'], node });
    const r1 = await s.next();
    expect(r1.resources.map((r) => r.name)).toEqual(['a']);
    ack(s, r1, ['a']);
    await s.expectQuiet(100);

    // Subscribe to b as well (carrying the latest nonce): the response holds both.
    s.send({
      typeUrl: TypeUrl.ClusterLoadAssignment,
      resourceNames: ['a', 'b'],
      responseNonce: r1.nonce,
      versionInfo: r1.versionInfo,
    });
    const r2 = await s.next();
    expect(r2.resources.map((r) => r.name)).toEqual(['a', 'b']);
    ack(s, r2, ['a', 'b']);

    // A name that does not exist is not answered until it does.
    s.send({
      typeUrl: TypeUrl.ClusterLoadAssignment,
      resourceNames: ['a', 'b', 'z'],
      responseNonce: r2.nonce,
      versionInfo: r2.versionInfo,
    });
    await s.expectQuiet(150);
    h.cache.setSnapshot('default', meshSnapshot(enc, { ...mesh1, clusters: { a: 8001, b: 8002, z: 8026 } }));
    const r3 = await s.next();
    expect(r3.resources.map((r) => r.name)).toEqual(['a', 'b', 'z']);
    ack(s, r3, ['a', 'b', 'z']);

    // Unsubscribing needs no response; the server forgets the names.
    s.send({
      typeUrl: TypeUrl.ClusterLoadAssignment,
      resourceNames: ['b'],
      responseNonce: r3.nonce,
      versionInfo: r3.versionInfo,
    });
    await s.expectQuiet(150);
    const eds = h.server.status().streams[0]?.types.find((t) => t.type === 'EDS');
    expect(eds).toMatchObject({ wildcard: false, names: ['b'], resourceCount: 1 });
    // A change to an unsubscribed resource pushes nothing; one to a subscribed resource does.
    h.cache.setSnapshot('default', meshSnapshot(enc, { ...mesh1, clusters: { a: 9001, b: 8002, z: 8026 } }));
    await s.expectQuiet(150);
    h.cache.setSnapshot('default', meshSnapshot(enc, { ...mesh1, clusters: { a: 9001, b: 9002, z: 8026 } }));
    const r4 = await s.next();
    expect(r4.resources.map((r) => r.name)).toEqual(['b']);
    expect(s.violations).toEqual([]);
  });

  it('serves named LDS (as proxyless gRPC asks); dropping a name sends the smaller full set', async () => {
    h.cache.setSnapshot(
      'default',
      meshSnapshot(enc, {
        ...mesh1,
        listeners: { l1: { port: 10000, route: 'rc' }, l2: { port: 10001, route: 'rc' } },
      }),
    );
    const s = client.sotw();
    s.send({ typeUrl: TypeUrl.Listener, resourceNames: ['l1', 'l2'], node });
    const r1 = await s.next();
    expect(r1.resources.map((r) => r.name)).toEqual(['l1', 'l2']);
    expect(h.server.status().streams[0]?.types[0]).toMatchObject({ wildcard: false, names: ['l1', 'l2'] });
    ack(s, r1, ['l1', 'l2']);
    // For LDS and CDS a response is the whole set: leaving l2 out is what removes it at the client.
    s.send({
      typeUrl: TypeUrl.Listener,
      resourceNames: ['l1'],
      responseNonce: r1.nonce,
      versionInfo: r1.versionInfo,
    });
    const r2 = await s.next();
    expect(r2.resources.map((r) => r.name)).toEqual(['l1']);
    ack(s, r2, ['l1']);
    await s.expectQuiet(100);
    expect(s.violations).toEqual([]);
  });

  it('ignores a request carrying a stale nonce', async () => {
    const s = client.sotw();
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['a'], node });
    const r1 = await s.next();
    ack(s, r1, ['a']);
    h.cache.setSnapshot('default', meshSnapshot(enc, { ...mesh1, clusters: { a: 9001, b: 8002 } }));
    const r2 = await s.next();
    // Answering r1 again (stale) with a new subscription: ignored, even though r2 is unanswered.
    s.send({
      typeUrl: TypeUrl.ClusterLoadAssignment,
      resourceNames: ['a', 'b'],
      responseNonce: r1.nonce,
      versionInfo: r1.versionInfo,
    });
    await s.expectQuiet(150);
    expect(h.server.status().streams[0]?.types[0]).toMatchObject({ pendingNonce: r2.nonce, names: ['a'] });
    // The ACK of r2 carries the new subscription and is honoured.
    ack(s, r2, ['a', 'b']);
    const r3 = await s.next();
    expect(r3.resources.map((r) => r.name)).toEqual(['a', 'b']);
    expect(s.violations).toEqual([]);
  });

  it('holds a route configuration back until its clusters and endpoints are ACKed', async () => {
    const s = client.sotw();
    s.send({ typeUrl: TypeUrl.Cluster, node });
    s.send({ typeUrl: TypeUrl.Listener });
    s.send({ typeUrl: TypeUrl.RouteConfiguration, resourceNames: ['rc'] });
    const cds = await s.next();
    const lds = await s.next();
    expect([cds.typeUrl, lds.typeUrl]).toEqual([TypeUrl.Cluster, TypeUrl.Listener]);
    // CDS not ACKed yet: no RDS.
    await s.expectQuiet(150);
    ack(s, cds);
    ack(s, lds);
    // CDS ACKed, but the endpoints of cluster a are not at the client yet: still no RDS.
    await s.expectQuiet(150);
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['a', 'b'] });
    const eds = await s.next();
    expect(eds.typeUrl).toBe(TypeUrl.ClusterLoadAssignment);
    await s.expectQuiet(100);
    ack(s, eds, ['a', 'b']);
    const rds = await s.next();
    expect(rds.typeUrl).toBe(TypeUrl.RouteConfiguration);
    expect(rds.resources.map((r) => r.name)).toEqual(['rc']);
    expect(s.violations).toEqual([]);
  });

  it('answers an empty wildcard LDS at once, so a starting Envoy can finish initializing', async () => {
    h.cache.setSnapshot('default', meshSnapshot(enc, { clusters: {}, routes: {}, listeners: {} }));
    const s = client.sotw();
    s.send({ typeUrl: TypeUrl.Listener, node });
    const r = await s.next();
    expect(r.resources).toEqual([]);
    expect(r.versionInfo).toBe('empty');
    ack(s, r);
    await s.expectQuiet(100);
    expect(s.violations).toEqual([]);
  });

  it('sends nothing to a reconnecting client that already runs the current version', async () => {
    const s1 = client.sotw();
    s1.send({ typeUrl: TypeUrl.Cluster, node });
    const r1 = await s1.next();
    s1.cancel();
    const s2 = client.sotw();
    s2.send({ typeUrl: TypeUrl.Cluster, versionInfo: r1.versionInfo, node });
    await s2.expectQuiet(150);
    await s2.until(() => h.server.status().streams.length === 1, 2000, 'the first stream to go');
    expect(h.server.status().streams[0]?.types[0]).toMatchObject({
      ackedVersion: r1.versionInfo,
      resourceCount: 2,
    });
    // Its first request had no nonce; the next change is pushed as usual.
    const snap2 = meshSnapshot(enc, { ...mesh1, clusters: { a: 8001, b: 8002, c: 8003 } });
    h.cache.setSnapshot('default', snap2);
    const r2 = await s2.next();
    expect(r2.versionInfo).toBe(snap2.versions.get(TypeUrl.Cluster));
    // A client with an older version gets the full set at once.
    const s3 = client.sotw();
    s3.send({ typeUrl: TypeUrl.Cluster, versionInfo: r1.versionInfo, node });
    expect((await s3.next()).versionInfo).toBe(snap2.versions.get(TypeUrl.Cluster));
    expect([...s1.violations, ...s2.violations, ...s3.violations]).toEqual([]);
  });

  it('groups nodes by the strategy and waits for a snapshot when the group has none yet', async () => {
    const grouped = await startServer({ cache: new SnapshotCache({ groupOf: (n) => n.cluster }) });
    const c = new XdsTestClient(grouped.address);
    try {
      grouped.cache.setSnapshot('east', snap1);
      const west = c.sotw();
      west.send({ typeUrl: TypeUrl.Cluster, node: { id: 'w', cluster: 'west' } });
      const east = c.sotw();
      east.send({ typeUrl: TypeUrl.Cluster, node: { id: 'e', cluster: 'east' } });
      expect((await east.next()).versionInfo).toBe(snap1.versions.get(TypeUrl.Cluster));
      await west.expectQuiet(100);
      const snapWest = meshSnapshot(enc, { ...mesh1, clusters: { a: 7001, b: 7002 } });
      grouped.cache.setSnapshot('west', snapWest);
      expect((await west.next()).versionInfo).toBe(snapWest.versions.get(TypeUrl.Cluster));
      await east.expectQuiet(100);
      const groups = grouped.server.status().streams.map((x) => [x.nodeId, x.group]);
      expect(groups).toEqual([
        ['w', 'west'],
        ['e', 'east'],
      ]);
    } finally {
      c.close();
      await grouped.close();
    }
  });
});
