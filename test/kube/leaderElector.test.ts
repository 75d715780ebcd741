// Leader election on a real Lease: a leader cut off from the API server steps down (by its renew
// deadline) before the other replica may take the Lease (after the lease duration), so two leaders
// never overlap; a leader that stops releases the Lease and the other takes it at its next retry.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { KubeClient } from '../../src/sources/kubernetes/kubeClient.js';
import { LeaderElector } from '../../src/sources/kubernetes/leaderElector.js';
import { kubeConfigFor, uniqueName, useKube } from '../harness/kubeContext.js';
import { waitFor } from '../helpers/net.js';
import { type CuttableProxy, namespaceObject, startCuttableProxy, TestObjects } from './helpers.js';

const TIMING = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 300 };

describe('LeaderElector on a real Lease', () => {
  const kube = useKube();
  const ns = uniqueName('lease');
  let objects: TestObjects;
  let proxy: CuttableProxy;
  const clients: KubeClient[] = [];
  const electors: LeaderElector[] = [];

  beforeAll(async () => {
    objects = new TestObjects(kubeConfigFor(kube()));
    await objects.apply(namespaceObject(ns));
    proxy = await startCuttableProxy(kube().server);
  });
  afterAll(async () => {
    for (const e of electors) await e.stop();
    for (const c of clients) c.close();
    await proxy?.close();
    await objects?.delete(namespaceObject(ns)).catch(() => undefined);
  });

  function elector(name: string, identity: string, server: string, events: string[]): LeaderElector {
    const client = new KubeClient(kubeConfigFor({ ...kube(), server }));
    clients.push(client);
    const e = new LeaderElector({
      api: client,
      namespace: ns,
      name,
      identity,
      ...TIMING,
      logger: silentLogger,
      onStartedLeading: () => events.push(`${identity} started`),
      onStoppedLeading: () => events.push(`${identity} stopped`),
    });
    electors.push(e);
    return e;
  }

  it('a partitioned leader steps down before the other replica takes over', async () => {
    const events: string[] = [];
    const a = elector('partition', 'a', proxy.server, events);
    a.start();
    await waitFor('a to lead', () => (a.isLeader ? true : undefined));
    const b = elector('partition', 'b', kube().server, events);
    b.start();
    await new Promise((r) => setTimeout(r, 1000));
    expect(b.isLeader).toBe(false);
    expect(b.status().holder).toBe('a');

    const cutAt = Date.now();
    proxy.cut();
    await waitFor('b to lead', () => (b.isLeader ? true : undefined), 10_000);
    const tookOver = Date.now() - cutAt;
    // Never two leaders: a stepped down (renew deadline) before b started (lease duration).
    expect(events).toEqual(['a started', 'a stopped', 'b started']);
    expect(tookOver).toBeGreaterThanOrEqual(TIMING.leaseDurationMs - TIMING.retryPeriodMs);
    expect(a.status().isLeader).toBe(false);

    // Back on the network, a sees b's renewals and stays a follower.
    proxy.restore();
    await new Promise((r) => setTimeout(r, 1500));
    expect(a.isLeader).toBe(false);
    expect(a.status().holder).toBe('b');
  });

  it('a leader that stops releases the Lease, and the other takes it within a retry period', async () => {
    const events: string[] = [];
    const a = elector('release', 'a', kube().server, events);
    a.start();
    await waitFor('a to lead', () => (a.isLeader ? true : undefined));
    const b = elector('release', 'b', kube().server, events);
    b.start();
    await new Promise((r) => setTimeout(r, 500));
    const stoppedAt = Date.now();
    await a.stop();
    await waitFor('b to lead', () => (b.isLeader ? true : undefined), 5000);
    // Without the release b would wait the whole lease duration.
    expect(Date.now() - stoppedAt).toBeLessThan(TIMING.leaseDurationMs);
    expect(events).toEqual(['a started', 'a stopped', 'b started']);
  });

  it('refuses timings that would let two leaders overlap', () => {
    expect(
      () =>
        new LeaderElector({
          api: clients[0] as KubeClient,
          namespace: ns,
          name: 'x',
          identity: 'x',
          leaseDurationMs: 2000,
          renewDeadlineMs: 3000,
          retryPeriodMs: 500,
          logger: silentLogger,
        }),
    ).toThrow(
      'Cannot elect a leader with lease duration 2000 ms, renew deadline 3000 ms and retry period 500 ms: need 0 < retry period < renew deadline < lease duration',
    );
  });
});
