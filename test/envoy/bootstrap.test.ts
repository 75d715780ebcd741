import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BootstrapError,
  type BootstrapOptions,
  isLoopbackAddress,
  loadBootstrapTemplate,
  renderBootstrap,
  XDS_CLUSTER_NAME,
} from '../../src/envoy/bootstrap.js';
import type { FoundEnvoy } from '../../src/envoy/findEnvoy.js';
import { ensureEnvoy, validateBootstrap } from '../helpers/envoy.js';

const base: BootstrapOptions = {
  nodeId: 'node-a',
  nodeCluster: 'skein',
  xds: { socketPath: '/run/skein/xds.sock' },
  delta: false,
};

/** Reads a nested field of the rendered (untyped) bootstrap. */
function at(obj: unknown, ...keys: (string | number)[]): unknown {
  let v = obj;
  for (const k of keys) v = (v as Record<string | number, unknown>)[k];
  return v;
}

function xdsCluster(b: Record<string, unknown>): Record<string, unknown> {
  const clusters = at(b, 'static_resources', 'clusters') as Record<string, unknown>[];
  const c = clusters.find((x) => x['name'] === XDS_CLUSTER_NAME);
  if (c === undefined) throw new Error('no xDS cluster');
  return c;
}

function errorOf(fn: () => unknown): BootstrapError {
  try {
    fn();
  } catch (err) {
    if (err instanceof BootstrapError) return err;
    throw err;
  }
  throw new Error('expected a BootstrapError, but nothing was thrown');
}

describe('renderBootstrap', () => {
  it('sets the node, the ADS flavour and the xDS Unix socket', () => {
    const b = renderBootstrap(base);
    expect(b['node']).toEqual({ id: 'node-a', cluster: 'skein' });
    expect(at(b, 'dynamic_resources', 'ads_config')).toMatchObject({
      api_type: 'GRPC',
      transport_api_version: 'V3',
      set_node_on_first_message_only: true,
      grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER_NAME } }],
    });
    expect(at(b, 'dynamic_resources', 'lds_config')).toEqual({ ads: {}, resource_api_version: 'V3' });
    expect(at(b, 'dynamic_resources', 'cds_config')).toEqual({ ads: {}, resource_api_version: 'V3' });
    const c = xdsCluster(b);
    expect(c['type']).toBe('STATIC');
    expect(
      at(
        c,
        'typed_extension_protocol_options',
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        'explicit_http_config',
      ),
    ).toHaveProperty('http2_protocol_options');
    expect(at(c, 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address')).toEqual({
      pipe: { path: '/run/skein/xds.sock' },
    });
    expect(at(b, 'admin', 'address')).toEqual({ socket_address: { address: '127.0.0.1', port_value: 9901 } });
  });

  it('selects delta ADS, a TCP xDS address, the admin port and the initial fetch timeout', () => {
    const b = renderBootstrap({
      ...base,
      xds: { host: '127.0.0.9', port: 18000 },
      delta: true,
      adminAddress: '127.0.0.2',
      adminPort: 0,
      initialFetchTimeoutMs: 1500,
    });
    expect(at(b, 'dynamic_resources', 'ads_config', 'api_type')).toBe('DELTA_GRPC');
    expect(
      at(xdsCluster(b), 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address'),
    ).toEqual({
      socket_address: { address: '127.0.0.9', port_value: 18000 },
    });
    expect(at(b, 'admin', 'address')).toEqual({ socket_address: { address: '127.0.0.2', port_value: 0 } });
    expect(at(b, 'dynamic_resources', 'lds_config', 'initial_fetch_timeout')).toBe('1.500s');
    expect(at(b, 'dynamic_resources', 'cds_config', 'initial_fetch_timeout')).toBe('1.500s');
  });

  it('resolves a relative socket path and keeps an abstract one', () => {
    const rel = renderBootstrap({ ...base, xds: { socketPath: 'run/xds.sock' } });
    expect(
      at(xdsCluster(rel), 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address'),
    ).toEqual({
      pipe: { path: path.resolve('run/xds.sock') },
    });
    const abs = renderBootstrap({ ...base, xds: { socketPath: '@skein-xds' } });
    expect(
      at(xdsCluster(abs), 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address'),
    ).toEqual({
      pipe: { path: '@skein-xds' },
    });
  });

  it('returns a fresh object each time, leaving the template untouched', () => {
    const a = renderBootstrap({ ...base, nodeId: 'a' });
    (a['node'] as Record<string, unknown>)['id'] = 'mutated';
    expect(renderBootstrap({ ...base, nodeId: 'b' })['node']).toEqual({ id: 'b', cluster: 'skein' });
    expect(loadBootstrapTemplate()['node']).toEqual({ id: '', cluster: '' });
  });

  it('is deterministic: the same options give the same JSON', () => {
    expect(JSON.stringify(renderBootstrap(base))).toBe(JSON.stringify(renderBootstrap(base)));
  });

  it.each(['0.0.0.0', '::', '10.1.2.3', '192.168.0.1', 'localhost', '2001:db8::1', ''])(
    'refuses a non-loopback admin address (%j)',
    (adminAddress) => {
      const err = errorOf(() => renderBootstrap({ ...base, adminAddress }));
      expect(err.code).toBe('SKEIN_ENVOY_ADMIN_NOT_LOOPBACK');
      expect(err.message).toContain(`Cannot bind Envoy's admin interface to ${JSON.stringify(adminAddress)}`);
    },
  );

  it.each<[string, Partial<BootstrapOptions>, string]>([
    ['an empty node id', { nodeId: ' ' }, 'nodeId'],
    ['an empty node cluster', { nodeCluster: '' }, 'nodeCluster'],
    ['an admin port out of range', { adminPort: 65536 }, 'adminPort'],
    ['a fractional admin port', { adminPort: 99.5 }, 'adminPort'],
    ['an xDS host name (STATIC needs an IP)', { xds: { host: 'xds.local', port: 18000 } }, 'xds.host'],
    ['xDS port 0', { xds: { host: '127.0.0.1', port: 0 } }, 'xds.port'],
    ['an empty socket path', { xds: { socketPath: '' } }, 'xds.socketPath'],
    [
      'a socket path longer than sun_path',
      { xds: { socketPath: `/tmp/${'x'.repeat(120)}` } },
      'xds.socketPath',
    ],
    ['a negative initial fetch timeout', { initialFetchTimeoutMs: -1 }, 'initialFetchTimeoutMs'],
  ])('refuses %s', (_what, patch, option) => {
    const err = errorOf(() => renderBootstrap({ ...base, ...patch }));
    expect(err.code).toBe('SKEIN_ENVOY_BOOTSTRAP_INVALID');
    expect(err.message).toContain(`with ${option} = `);
  });
});

describe('isLoopbackAddress', () => {
  it.each(['127.0.0.1', '127.255.0.9', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1'])(
    'accepts %s',
    (a) => {
      expect(isLoopbackAddress(a)).toBe(true);
    },
  );
  it.each(['0.0.0.0', '128.0.0.1', '::', '::ffff:10.0.0.1', 'localhost', '127.0.0.1.nip.io', ''])(
    'rejects %j',
    (a) => {
      expect(isLoopbackAddress(a)).toBe(false);
    },
  );
});

describe('renderBootstrap output in real Envoy (--mode validate)', () => {
  let envoy: FoundEnvoy;
  beforeAll(async () => {
    envoy = await ensureEnvoy();
  });

  it.each<[string, Partial<BootstrapOptions>]>([
    ['UDS, state of the world', { xds: { socketPath: '/tmp/skein-validate/xds.sock' }, delta: false }],
    ['UDS, delta', { xds: { socketPath: '/tmp/skein-validate/xds.sock' }, delta: true }],
    ['TCP, state of the world', { xds: { host: '127.0.0.1', port: 18000 }, delta: false }],
    ['TCP (IPv6 loopback), delta', { xds: { host: '::1', port: 18000 }, delta: true }],
    [
      'admin on ::1 port 0 with an initial fetch timeout',
      { adminAddress: '::1', adminPort: 0, initialFetchTimeoutMs: 250 },
    ],
    ['an abstract socket', { xds: { socketPath: '@skein-validate' } }],
  ])('accepts %s', async (_what, patch) => {
    const r = await validateBootstrap(envoy.path, renderBootstrap({ ...base, ...patch }));
    expect(r.output).toContain('OK');
    expect(r.ok).toBe(true);
  });

  it('rejects a broken one (so the check above can fail)', async () => {
    const b = renderBootstrap(base);
    (at(b, 'dynamic_resources', 'ads_config') as Record<string, unknown>)['api_type'] = 'NOT_A_TYPE';
    const r = await validateBootstrap(envoy.path, b);
    expect(r.ok).toBe(false);
    expect(r.output).toContain('NOT_A_TYPE');
  });
});
