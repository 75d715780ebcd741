import { describe, expect, it } from 'vitest';
import { SnapshotCache } from '../../src/xds/cache.js';
import { TypeUrl } from '../../src/xds/proto.js';
import { ResourceEncoder } from '../../src/xds/resource.js';
import { createSnapshot, type Snapshot } from '../../src/xds/snapshot.js';
import { clusterSpec, listenerSpec, meshSnapshot, routeSpec } from './serverFixtures.js';

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
});
