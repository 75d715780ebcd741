import { describe, expect, it } from 'vitest';
import { statusToWrite } from '../../src/sources/kubernetes/statusMerge.js';
import type { ObjectStatus } from '../../src/sources/objects.js';

// Pure merging rules; test/kube/statusWriter.test.ts checks the same against the real API server.

const OURS = 'skein.io/gateway-controller';
const cond = (type: string, status: string, time: string, generation = 1) => ({
  type,
  status,
  reason: type,
  message: '',
  observedGeneration: generation,
  lastTransitionTime: time,
});
const desired = (kind: string, status: Record<string, unknown>): ObjectStatus => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind,
  namespace: 'ns',
  name: 'x',
  status,
});
const object = (status: unknown) => ({
  metadata: { name: 'x', namespace: 'ns', resourceVersion: '5' },
  status,
});

describe('statusToWrite', () => {
  it('writes nothing when only transition times differ, and keeps the server’s time for unchanged conditions', () => {
    const server = object({
      conditions: [cond('Accepted', 'True', '2024-01-01T00:00:00Z')],
      listeners: [
        { name: 'http', attachedRoutes: 1, conditions: [cond('Programmed', 'True', '2024-01-01T00:00:00Z')] },
      ],
    });
    const same = desired('Gateway', {
      conditions: [cond('Accepted', 'True', '2024-06-01T00:00:00Z')],
      listeners: [
        { name: 'http', attachedRoutes: 1, conditions: [cond('Programmed', 'True', '2024-06-01T00:00:00Z')] },
      ],
    });
    expect(statusToWrite('Gateway', server, same, OURS)).toBeUndefined();

    const changed = desired('Gateway', {
      conditions: [cond('Accepted', 'True', '2024-06-01T00:00:00Z', 2)],
      listeners: [
        {
          name: 'http',
          attachedRoutes: 2,
          conditions: [cond('Programmed', 'False', '2024-06-01T00:00:00Z', 2)],
        },
      ],
    });
    expect(statusToWrite('Gateway', server, changed, OURS)).toEqual({
      // Same status, new generation: written, but the transition time stays the server's.
      conditions: [cond('Accepted', 'True', '2024-01-01T00:00:00Z', 2)],
      listeners: [
        {
          name: 'http',
          attachedRoutes: 2,
          conditions: [cond('Programmed', 'False', '2024-06-01T00:00:00Z', 2)],
        },
      ],
    });
  });

  it('replaces only Skein’s entries of a route’s parents, matching parentRefs with their defaults', () => {
    const theirs = { parentRef: { name: 'other-gw' }, controllerName: 'example.com/other', conditions: [] };
    const server = object({
      parents: [
        {
          parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' },
          controllerName: OURS,
          conditions: [cond('Accepted', 'True', 'T0')],
        },
        theirs,
      ],
    });
    const next = desired('HTTPRoute', {
      parents: [
        { parentRef: { name: 'gw' }, controllerName: OURS, conditions: [cond('Accepted', 'True', 'T1', 2)] },
      ],
    });
    expect(statusToWrite('HTTPRoute', server, next, OURS)).toEqual({
      parents: [
        theirs,
        { parentRef: { name: 'gw' }, controllerName: OURS, conditions: [cond('Accepted', 'True', 'T0', 2)] },
      ],
    });
    // No longer Skein's: only Skein's entry goes.
    expect(statusToWrite('HTTPRoute', server, undefined, OURS)).toEqual({ parents: [theirs] });
    // A route that never was Skein's is left alone (no `parents: []` written on it).
    expect(statusToWrite('HTTPRoute', object(undefined), undefined, OURS)).toBeUndefined();
    expect(statusToWrite('HTTPRoute', object({ parents: [theirs] }), undefined, OURS)).toBeUndefined();
  });

  it('writes only loadBalancer on an Ingress (the API has no conditions)', () => {
    const next: ObjectStatus = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      namespace: 'ns',
      name: 'x',
      status: {
        loadBalancer: { ingress: [{ ip: '127.0.0.9' }] },
        conditions: [cond('Accepted', 'True', 'T')],
      },
    };
    expect(statusToWrite('Ingress', object({}), next, OURS)).toEqual({
      loadBalancer: { ingress: [{ ip: '127.0.0.9' }] },
    });
    expect(
      statusToWrite('Ingress', object({ loadBalancer: { ingress: [{ ip: '127.0.0.9' }] } }), next, OURS),
    ).toBeUndefined();
  });
});
