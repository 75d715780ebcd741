import { describe, expect, it } from 'vitest';
import { BackendCache, BackendIndex, buildBackend } from '../../src/gateway/backends.js';
import type { EndpointSlice, Service } from '../../src/sources/objects.js';

function slice(name: string, fields: Partial<EndpointSlice>): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'ns', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: [],
    ...fields,
  } as EndpointSlice;
}

describe('buildBackend', () => {
  it('takes the slice ports named like the Service port, every address of every endpoint, sorted', () => {
    const slices = [
      slice('web-1', {
        ports: [
          { name: 'http', port: 8080 },
          { name: 'metrics', port: 9090 },
        ],
        endpoints: [
          { addresses: ['10.0.0.2', '10.0.0.3'] },
          { addresses: ['10.0.0.1'], conditions: { ready: false } },
        ],
      }),
      // The same address in a second slice: ready if any listing is.
      slice('web-2', {
        ports: [{ name: 'http', port: 8080 }],
        endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true } }],
      }),
      slice('web-3', {
        addressType: 'FQDN',
        ports: [{ name: 'http', port: 8080 }],
        endpoints: [{ addresses: ['db.example.com'] }],
      }),
      slice('web-4', {
        ports: [{ name: 'http', port: 8080, protocol: 'UDP' }],
        endpoints: [{ addresses: ['10.0.0.9'] }],
      }),
    ];
    const backend = buildBackend('ns/web/80', { name: 'http', port: 80 }, slices);
    expect(backend).toEqual({
      name: 'ns/web/80',
      protocol: 'http1',
      endpoints: [
        { address: '10.0.0.1', port: 8080, ready: true },
        { address: '10.0.0.2', port: 8080, ready: true },
        { address: '10.0.0.3', port: 8080, ready: true },
      ],
    });
  });

  it('matches an unnamed Service port to unnamed slice ports only', () => {
    const s = slice('web-1', {
      ports: [{ port: 8080 }, { name: 'http', port: 9999 }],
      endpoints: [{ addresses: ['10.0.0.1'] }],
    });
    expect(buildBackend('b', { port: 80, appProtocol: 'kubernetes.io/h2c' }, [s])).toEqual({
      name: 'b',
      protocol: 'h2c',
      endpoints: [{ address: '10.0.0.1', port: 8080, ready: true }],
    });
  });
});

describe('BackendIndex', () => {
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'ns' },
    spec: { ports: [{ name: 'http', port: 80 }] },
  } as Service;

  it('resolves only core Services in the route namespace, on a port they have', () => {
    const index = new BackendIndex([service], [], new BackendCache());
    expect(index.resolve({ name: 'web', port: 80 }, 'ns')).toEqual({ ok: true, backend: 'ns/web/80' });
    expect(index.resolve({ name: 'web', port: 81 }, 'ns')).toMatchObject({
      ok: false,
      reason: 'BackendNotFound',
    });
    expect(index.resolve({ name: 'nope', port: 80 }, 'ns')).toMatchObject({
      ok: false,
      reason: 'BackendNotFound',
    });
    expect(index.resolve({ name: 'web', namespace: 'ns', port: 80 }, 'other')).toMatchObject({
      ok: false,
      reason: 'RefNotPermitted',
    });
    expect(
      index.resolve({ group: 'example.com', kind: 'Service', name: 'web', port: 80 }, 'ns'),
    ).toMatchObject({
      ok: false,
      reason: 'InvalidKind',
    });
  });

  it('reuses a backend across builds while its Service and slices are the same objects', () => {
    const cache = new BackendCache();
    const slices = [
      slice('web-1', { ports: [{ name: 'http', port: 8080 }], endpoints: [{ addresses: ['10.0.0.1'] }] }),
    ];
    const build = (s: EndpointSlice[]) => {
      const index = new BackendIndex([service], s, cache);
      index.resolve({ name: 'web', port: 80 }, 'ns');
      const b = index.backend('ns/web/80');
      cache.commit();
      return b;
    };
    const first = build(slices);
    expect(build(slices)).toBe(first);
    expect(build([...slices])).toBe(first);
    const changed = build([
      slice('web-1', { ports: [{ name: 'http', port: 8081 }], endpoints: [{ addresses: ['10.0.0.1'] }] }),
    ]);
    expect(changed).not.toBe(first);
    expect(changed?.endpoints[0]?.port).toBe(8081);
  });
});
