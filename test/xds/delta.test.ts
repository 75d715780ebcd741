import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/xds/proto.js';
import { ResourceEncoder } from '../../src/xds/resource.js';
import type { Snapshot } from '../../src/xds/snapshot.js';
import { type DeltaResponse, XdsTestClient } from '../helpers/adsClient.js';
import { type Harness, type Mesh, meshSnapshot, startServer } from './serverFixtures.js';

const node = { id: 'envoy-delta' };

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

/** name → version as the response carries them. */
function versions(r: DeltaResponse): Record<string, string | undefined> {
  return Object.fromEntries(r.resources.map((x) => [x.name, x.version]));
}

function versionIn(s: Snapshot, t: TypeUrl, name: string): string {
  const v = s.resources.get(t)?.get(name)?.version;
  if (v === undefined) throw new Error(`${name} not in snapshot`);
  return v;
}

describe('delta ADS', () => {
  it('treats an empty first CDS subscription as wildcard and sends only what changes', async () => {
    const s = client.delta();
    s.send({ typeUrl: TypeUrl.Cluster, node });
    const r1 = await s.next();
    expect(versions(r1)).toEqual({
      a: versionIn(snap1, TypeUrl.Cluster, 'a'),
      b: versionIn(snap1, TypeUrl.Cluster, 'b'),
    });
    expect(r1.removed).toEqual([]);
    expect(r1.systemVersionInfo).toBe(snap1.versions.get(TypeUrl.Cluster));
    // The resource bytes are the encoder's, untouched.
    expect(
      r1.resources[0]?.any.equals(Buffer.from(snap1.resources.get(TypeUrl.Cluster)?.get('a')?.any ?? [])),
    ).toBe(true);
    s.send({ typeUrl: TypeUrl.Cluster, responseNonce: r1.nonce });
    await s.expectQuiet(100);

    // Adding c sends c alone.
    h.cache.setSnapshot('default', meshSnapshot(enc, { ...mesh1, clusters: { a: 8001, b: 8002, c: 8003 } }));
    const r2 = await s.next();
    expect(Object.keys(versions(r2))).toEqual(['c']);
    expect(r2.removed).toEqual([]);
    s.send({ typeUrl: TypeUrl.Cluster, responseNonce: r2.nonce });

    // Removing b sends a removal and no resources.
    h.cache.setSnapshot('default', meshSnapshot(enc, { ...mesh1, clusters: { a: 8001, c: 8003 } }));
    const r3 = await s.next();
    expect(r3.resources).toEqual([]);
    expect(r3.removed).toEqual(['b']);
    s.send({ typeUrl: TypeUrl.Cluster, responseNonce: r3.nonce });
    await s.expectQuiet(100);
    expect(h.server.status().streams[0]?.types[0]).toMatchObject({
      type: 'CDS',
      wildcard: true,
      resourceCount: 2,
    });
    expect(s.violations).toEqual([]);
  });

  it('accepts an explicit * wildcard, and * in unsubscribe ends it', async () => {
    const s = client.delta();
    s.send({ typeUrl: TypeUrl.Listener, subscribe: ['*'], node });
    const r1 = await s.next();
    expect(Object.keys(versions(r1))).toEqual(['l1']);
    s.send({ typeUrl: TypeUrl.Listener, responseNonce: r1.nonce });
    s.send({ typeUrl: TypeUrl.Listener, unsubscribe: ['*'] });
    await s.expectQuiet(100);
    expect(h.server.status().streams[0]?.types[0]).toMatchObject({ wildcard: false, resourceCount: 0 });
    // No longer subscribed: a new listener is not sent.
    h.cache.setSnapshot(
      'default',
      meshSnapshot(enc, { ...mesh1, listeners: { ...mesh1.listeners, l2: { port: 10001, route: 'rc' } } }),
    );
    await s.expectQuiet(100);
    expect(s.violations).toEqual([]);
  });

  it('serves named subscriptions incrementally: subscribe, unsubscribe, removal', async () => {
    const s = client.delta();
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, subscribe: ['a'], node });
    const r1 = await s.next();
    expect(Object.keys(versions(r1))).toEqual(['a']);
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: r1.nonce });
    // Subscribing to b sends b only.
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, subscribe: ['b'] });
    const r2 = await s.next();
    expect(Object.keys(versions(r2))).toEqual(['b']);
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: r2.nonce });
    // Unsubscribing from a needs no response, and a's changes are no longer sent.
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, unsubscribe: ['a'] });
    await s.expectQuiet(100);
    h.cache.setSnapshot('default', meshSnapshot(enc, { ...mesh1, clusters: { a: 9001, b: 8002 } }));
    await s.expectQuiet(100);
    // b changes: sent.
    const snap3 = meshSnapshot(enc, { ...mesh1, clusters: { a: 9001, b: 9002 } });
    h.cache.setSnapshot('default', snap3);
    const r3 = await s.next();
    expect(versions(r3)).toEqual({ b: versionIn(snap3, TypeUrl.ClusterLoadAssignment, 'b') });
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: r3.nonce });
    // b disappears from the snapshot (no cluster names it any more): removed_resources.
    h.cache.setSnapshot(
      'default',
      meshSnapshot(enc, { clusters: { a: 9001 }, routes: { rc: ['a'] }, listeners: mesh1.listeners }),
    );
    const r4 = await s.next();
    expect(r4.resources).toEqual([]);
    expect(r4.removed).toEqual(['b']);
    // A name that does not exist is not answered until it does.
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: r4.nonce, subscribe: ['z'] });
    await s.expectQuiet(100);
    h.cache.setSnapshot('default', meshSnapshot(enc, { ...mesh1, clusters: { a: 9001, z: 8026 } }));
    expect(Object.keys(versions(await s.next()))).toEqual(['z']);
    expect(s.violations).toEqual([]);
  });

  it('does not resend what the client reports in initial_resource_versions', async () => {
    const s = client.delta();
    s.send({
      typeUrl: TypeUrl.ClusterLoadAssignment,
      subscribe: ['a', 'b', 'gone'],
      initialResourceVersions: {
        a: versionIn(snap1, TypeUrl.ClusterLoadAssignment, 'a'),
        b: 'an-older-version',
        gone: 'v0',
      },
      node,
    });
    const r = await s.next();
    expect(versions(r)).toEqual({ b: versionIn(snap1, TypeUrl.ClusterLoadAssignment, 'b') });
    expect(r.removed).toEqual(['gone']);
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: r.nonce });
    await s.expectQuiet(100);
    expect(s.violations).toEqual([]);
  });

  it('sends nothing to a reconnecting wildcard client that has everything', async () => {
    const s = client.delta();
    const initialResourceVersions = Object.fromEntries(
      [...(snap1.resources.get(TypeUrl.Cluster) ?? [])].map(([n, r]) => [n, r.version]),
    );
    s.send({ typeUrl: TypeUrl.Cluster, initialResourceVersions, node });
    await s.expectQuiet(150);
    expect(h.server.status().streams[0]?.types[0]).toMatchObject({
      wildcard: true,
      resourceCount: 2,
      ackedVersion: snap1.versions.get(TypeUrl.Cluster),
    });
  });

  it('applies subscription changes that come with a stale nonce, but not the stale ACK', async () => {
    const s = client.delta();
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, subscribe: ['a'], node });
    const r1 = await s.next();
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: r1.nonce });
    h.cache.setSnapshot('default', meshSnapshot(enc, { ...mesh1, clusters: { a: 9001, b: 8002 } }));
    const r2 = await s.next();
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: r1.nonce, subscribe: ['b'] });
    await s.expectQuiet(150);
    expect(h.server.status().streams[0]?.types[0]).toMatchObject({
      pendingNonce: r2.nonce,
      names: ['a', 'b'],
    });
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: r2.nonce });
    expect(Object.keys(versions(await s.next()))).toEqual(['b']);
    expect(s.violations).toEqual([]);
  });
});
