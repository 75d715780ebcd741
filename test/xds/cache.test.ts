import { describe, expect, it } from 'vitest';
import { SnapshotCache } from '../../src/xds/cache.js';
import { TypeUrl } from '../../src/xds/proto.js';
import { ResourceEncoder } from '../../src/xds/resource.js';
import { createSnapshot, type Snapshot } from '../../src/xds/snapshot.js';
import {
  clusterSpec,
  endpointsSpec,
  listenerSpec,
  meshResources,
  meshSnapshot,
  routeSpec,
} from './serverFixtures.js';

const mesh = {
  clusters: { a: 8001 },
  routes: { rc: ['a'] },
  listeners: { l1: { port: 10000, route: 'rc' } },
};

describe('SnapshotCache', () => {
  it('refuses an inconsistent snapshot and keeps the published one', () => {
    const enc = new ResourceEncoder();
    const cache = new SnapshotCache();
    const good = meshSnapshot(enc, mesh);
    const seen: Snapshot[] = [];
    cache.watch('default', (s) => seen.push(s));
    expect(cache.setSnapshot('default', good)).toEqual([]);

    // A route to a cluster that is not there, and a cluster whose endpoints are missing.
    const bad = createSnapshot(
      [clusterSpec('a'), routeSpec('rc', ['a', 'ghost']), listenerSpec('l1', 10000, 'rc')].map((s) =>
        enc.encode(s),
      ),
    );
    const errors = cache.setSnapshot('default', bad);
    expect(errors.map((e) => e.code)).toContain('SKEIN_XDS_DANGLING_REF');
    expect(errors.some((e) => e.message.includes('"ghost"'))).toBe(true);
    expect(errors.some((e) => e.message.includes(TypeUrl.ClusterLoadAssignment))).toBe(true);
    expect(cache.getSnapshot('default')).toBe(good);
    expect(seen).toEqual([good]);
  });

  it('refuses endpoints no cluster names and a route configuration no listener names (SKEIN_XDS_ORPHAN)', () => {
    const enc = new ResourceEncoder();
    const cache = new SnapshotCache();
    const good = meshSnapshot(enc, mesh);
    expect(cache.setSnapshot('default', good)).toEqual([]);
    const seen: Snapshot[] = [];
    cache.watch('default', (s) => seen.push(s));

    // Every reference resolves (no DANGLING_REF), but two resources hang from nothing.
    const orphans = createSnapshot([
      ...meshResources(enc, mesh),
      enc.encode(endpointsSpec('stray', 8009)),
      enc.encode(routeSpec('rc2', ['a'])),
    ]);
    const errors = cache.setSnapshot('default', orphans);
    expect(errors).toEqual([
      {
        code: 'SKEIN_XDS_ORPHAN',
        message: `${TypeUrl.ClusterLoadAssignment} "stray" is not referenced by any cluster`,
      },
      {
        code: 'SKEIN_XDS_ORPHAN',
        message: `${TypeUrl.RouteConfiguration} "rc2" is not referenced by any listener`,
      },
    ]);
    // Nothing published, nobody told.
    expect(cache.getSnapshot('default')).toBe(good);
    expect(seen).toEqual([]);

    // A route configuration's deps do not count as naming endpoints: only a cluster's children do.
    const namedByRouteOnly = createSnapshot(
      [
        clusterSpec('a'),
        endpointsSpec('a', 8001),
        endpointsSpec('b', 8002),
        { ...routeSpec('rc', ['a']), deps: [{ typeUrl: TypeUrl.ClusterLoadAssignment, name: 'b' }] },
        listenerSpec('l1', 10000, 'rc'),
      ].map((s) => enc.encode(s)),
    );
    expect(cache.setSnapshot('default', namedByRouteOnly).map((e) => e.code)).toEqual(['SKEIN_XDS_ORPHAN']);
  });

  it('does not notify for a snapshot with the same versions', () => {
    const cache = new SnapshotCache();
    const first = meshSnapshot(new ResourceEncoder(), mesh);
    // Built again by another encoder: equal content, equal versions.
    const same = meshSnapshot(new ResourceEncoder(), mesh);
    let pushes = 0;
    cache.watch('default', () => pushes++);
    cache.setSnapshot('default', first);
    expect(cache.setSnapshot('default', same)).toEqual([]);
    expect(pushes).toBe(1);
    expect(cache.getSnapshot('default')).toBe(first);
    cache.setSnapshot('default', meshSnapshot(new ResourceEncoder(), { ...mesh, clusters: { a: 9001 } }));
    expect(pushes).toBe(2);
  });

  it('keeps groups apart, groups nodes by the strategy, and stops notifying after unwatch', () => {
    const cache = new SnapshotCache({
      groupOf: (n) => (n.userAgentName.startsWith('grpc') ? 'grpc' : 'envoy'),
    });
    expect(cache.groupOf({ id: 'x', cluster: '', userAgentName: 'grpc-node-js', metadata: {} })).toBe('grpc');
    expect(cache.groupOf({ id: 'y', cluster: '', userAgentName: 'envoy', metadata: {} })).toBe('envoy');
    expect(new SnapshotCache().groupOf({ id: 'z', cluster: 'c', userAgentName: '', metadata: {} })).toBe(
      'default',
    );

    const enc = new ResourceEncoder();
    const envoyPushes: Snapshot[] = [];
    const stop = cache.watch('envoy', (s) => envoyPushes.push(s));
    const s1 = meshSnapshot(enc, mesh);
    cache.setSnapshot('grpc', s1);
    expect(envoyPushes).toEqual([]);
    cache.setSnapshot('envoy', s1);
    expect(envoyPushes).toEqual([s1]);
    stop();
    cache.setSnapshot('envoy', meshSnapshot(enc, { ...mesh, clusters: { a: 9001 } }));
    expect(envoyPushes).toEqual([s1]);
    expect(cache.groups()).toEqual(['envoy', 'grpc']);
    expect(cache.getSnapshot('nobody')).toBeUndefined();
  });

  it('offers the last accepted version in place of a rejected one, until the rejected batch changes', () => {
    const enc = new ResourceEncoder();
    const cache = new SnapshotCache();
    const v1 = meshSnapshot(enc, { ...mesh, clusters: { a: 8001, b: 8002 }, routes: { rc: ['a', 'b'] } });
    cache.setSnapshot('default', v1);
    const good = v1.resources.get(TypeUrl.RouteConfiguration)?.get('rc');
    if (good === undefined) throw new Error('no rc');
    cache.accepted('default', [good]);

    // v2 changes the route configuration; a client rejects it.
    const v2 = meshSnapshot(enc, { ...mesh, clusters: { a: 8001, b: 8002 }, routes: { rc: ['b'] } });
    cache.setSnapshot('default', v2);
    const bad = v2.resources.get(TypeUrl.RouteConfiguration)?.get('rc');
    if (bad === undefined) throw new Error('no rc');
    cache.rejected('default', [bad]);
    expect(cache.offer('default', bad)).toBe(good);
    // Another group knows nothing of it.
    expect(cache.offer('other', bad)).toBe(bad);
    // Unrelated resources are offered as they are.
    const a = v2.resources.get(TypeUrl.Cluster)?.get('a');
    if (a === undefined) throw new Error('no a');
    expect(cache.offer('default', a)).toBe(a);

    // A publish that changes the rejected resource dissolves the batch.
    const v3 = meshSnapshot(enc, { ...mesh, clusters: { a: 8001, b: 8002 }, routes: { rc: ['a'] } });
    cache.setSnapshot('default', v3);
    expect(cache.offer('default', bad)).toBe(bad);
  });

  it('withholds a rejected resource that never had an accepted version, and ignores NACKs of stale versions', () => {
    const enc = new ResourceEncoder();
    const cache = new SnapshotCache();
    const v1 = meshSnapshot(enc, mesh);
    cache.setSnapshot('default', v1);
    const l1 = v1.resources.get(TypeUrl.Listener)?.get('l1');
    if (l1 === undefined) throw new Error('no l1');
    cache.rejected('default', [l1]);
    expect(cache.offer('default', l1)).toBeUndefined();
    // Another client accepts that very version: it is not the config's fault after all.
    cache.accepted('default', [l1]);
    expect(cache.offer('default', l1)).toBe(l1);

    // A NACK of a version the published snapshot no longer has is not recorded.
    const v2 = meshSnapshot(enc, { ...mesh, listeners: { l1: { port: 10001, route: 'rc' } } });
    cache.setSnapshot('default', v2);
    cache.rejected('default', [l1]);
    const l1v2 = v2.resources.get(TypeUrl.Listener)?.get('l1');
    if (l1v2 === undefined) throw new Error('no l1');
    expect(cache.offer('default', l1v2)).toBe(l1v2);
  });
});
