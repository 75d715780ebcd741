// The status writer against the real API server: a 409 is re-read and re-applied, other controllers'
// route entries are kept, an unchanged status is not written again, and a write the API server refuses
// is logged with the object and retried while the other objects are written.

import { Writable } from 'node:stream';
import type { KubernetesObject } from '@kubernetes/client-node';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient, type KubeObject } from '../../src/sources/kubernetes/kubeClient.js';
import { StatusWriter } from '../../src/sources/kubernetes/statusWriter.js';
import type { ObjectStatus } from '../../src/sources/objects.js';
import { kubeConfigFor, uniqueName, useKube } from '../harness/kubeContext.js';
import { waitFor } from '../helpers/net.js';
import { GATEWAY_CONTROLLER, httpRoute, namespaceObject, TestObjects } from './helpers.js';

const OTHER = 'example.com/other-controller';

function logLines(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n'))
        if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

function parent(gateway: string, controllerName: string, status: string, generation: number, time: string) {
  return {
    parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: gateway },
    controllerName,
    conditions: [
      {
        type: 'Accepted',
        status,
        reason: status === 'True' ? 'Accepted' : 'NotAllowedByListeners',
        message: 'm',
        observedGeneration: generation,
        lastTransitionTime: time,
      },
    ],
  };
}

describe('StatusWriter on a real API server', () => {
  const kube = useKube();
  const ns = uniqueName('writer');
  let objects: TestObjects;
  let client: KubeClient;

  beforeAll(async () => {
    const kc = kubeConfigFor(kube());
    objects = new TestObjects(kc);
    client = new KubeClient(kc);
    await objects.apply(namespaceObject(ns));
  });
  afterAll(async () => {
    client?.close();
    await objects?.delete(namespaceObject(ns)).catch(() => undefined);
  });

  const path = (name: string) => `/apis/gateway.networking.k8s.io/v1/namespaces/${ns}/httproutes/${name}`;
  const route = (name: string): KubernetesObject & Record<string, unknown> =>
    httpRoute(ns, name, { gateway: 'gw', hostname: `${name}.example`, rules: [{ backend: 'svc' }] });
  const desired = (name: string, time: string, status = 'True'): ObjectStatus => ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    namespace: ns,
    name,
    status: { parents: [parent('gw', GATEWAY_CONTROLLER, status, 1, time)] },
  });

  it('re-reads and re-applies on 409, keeps other controllers’ entries, and does not write an unchanged status', async () => {
    await objects.apply(route('conflict'));
    // Another controller's entry, written first.
    const created = await client.request<KubeObject>('GET', path('conflict'));
    await client.request('PUT', `${path('conflict')}/status`, {
      body: { ...created, status: { parents: [parent('theirs', OTHER, 'True', 1, '2020-01-01T00:00:00Z')] } },
    });
    // The writer's copy is stale: the object changes on the server after it was read.
    const stale = await client.request<KubeObject>('GET', path('conflict'));
    await objects.api.patch(
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'conflict', namespace: ns, labels: { touched: 'yes' } },
      },
      undefined,
      undefined,
      'skein-test',
      undefined,
      'application/merge-patch+json',
    );
    let copy: KubeObject = stale;
    const { logger } = logLines();
    const writer = new StatusWriter({
      api: client,
      store: { get: () => copy, list: () => [copy] },
      logger,
      isLeader: () => true,
      minIntervalMs: 0,
    });
    writer.setActive(true);
    writer.update([desired('conflict', '2024-05-01T10:00:00Z')]);
    await waitFor('the write', () => (writer.status().written === 1 ? true : undefined));
    await writer.idle();
    expect(writer.status()).toMatchObject({ written: 1, conflicts: 1, failures: 0 });
    const after = await client.request<KubeObject & { status: { parents: { controllerName: string }[] } }>(
      'GET',
      path('conflict'),
    );
    expect(after.metadata?.['labels']).toEqual({ touched: 'yes' });
    expect(after.status.parents.map((p) => p.controllerName)).toEqual([OTHER, GATEWAY_CONTROLLER]);

    // A later build: same conditions, a new transition time. Nothing to write; the server's time stays.
    copy = after;
    writer.update([desired('conflict', '2024-05-01T11:00:00Z')]);
    await writer.idle();
    expect(writer.status().written).toBe(1);

    // The status changes: written, with a new transition time for the changed condition only.
    writer.update([desired('conflict', '2024-05-01T12:00:00Z', 'False')]);
    await waitFor('the second write', () => (writer.status().written === 2 ? true : undefined));
    const changed = await client.request<
      KubeObject & {
        status: {
          parents: { controllerName: string; conditions: { status: string; lastTransitionTime: string }[] }[];
        };
      }
    >('GET', path('conflict'));
    const ours = changed.status.parents.find((p) => p.controllerName === GATEWAY_CONTROLLER);
    expect(ours?.conditions[0]).toMatchObject({
      status: 'False',
      lastTransitionTime: '2024-05-01T12:00:00Z',
    });

    // The route no longer gets a status from Skein: its entry goes, the other controller's stays.
    copy = changed;
    writer.update([]);
    await waitFor('the removal', () => (writer.status().written === 3 ? true : undefined));
    const removed = await client.request<KubeObject & { status: { parents: { controllerName: string }[] } }>(
      'GET',
      path('conflict'),
    );
    expect(removed.status.parents.map((p) => p.controllerName)).toEqual([OTHER]);
    writer.stop();
  });

  it('logs a refused write with the object and retries it, while other objects are written', async () => {
    await objects.apply(route('refused'));
    await objects.apply(route('fine'));
    const copies = new Map<string, KubeObject>();
    for (const n of ['refused', 'fine']) copies.set(n, await client.request<KubeObject>('GET', path(n)));
    const { logger, lines } = logLines();
    const writer = new StatusWriter({
      api: client,
      store: { get: (_k, _ns, name) => copies.get(name), list: () => [...copies.values()] },
      logger,
      isLeader: () => true,
      minIntervalMs: 0,
      backoff: { initialMs: 100, maxMs: 200 },
    });
    writer.setActive(true);
    // "Maybe" is not a condition status the CRD allows: the API server answers 422.
    writer.update([
      desired('refused', '2024-05-01T10:00:00Z', 'Maybe'),
      desired('fine', '2024-05-01T10:00:00Z'),
    ]);
    await waitFor('two failed attempts', () => (writer.status().failures >= 2 ? true : undefined));
    expect(writer.status().written).toBe(1);
    const failure = lines.find((l) => l['code'] === 'SKEIN_KUBE_STATUS_WRITE_FAILED');
    expect(failure?.['object']).toBe(`HTTPRoute/${ns}/refused`);
    expect(String(failure?.['msg'])).toMatch(/422 Invalid/);
    const fine = await client.request<KubeObject & { status?: { parents?: unknown[] } }>('GET', path('fine'));
    expect(fine.status?.parents).toHaveLength(1);

    // Fixed in the next build: written, and the retries stop.
    writer.update([desired('refused', '2024-05-01T10:00:00Z'), desired('fine', '2024-05-01T10:00:00Z')]);
    await waitFor('the fixed write', () => (writer.status().written === 2 ? true : undefined));
    await writer.idle();
    writer.stop();
  });
});
