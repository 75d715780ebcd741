import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdminError,
  getClusters,
  getConfigDump,
  getReady,
  getServerInfo,
  getStats,
  parseStats,
} from '../../src/envoy/admin.js';
import { XDS_CLUSTER_NAME } from '../../src/envoy/bootstrap.js';
import { ENVOY_VERSION } from '../../src/envoy/findEnvoy.js';
import { startTestEnvoy, type TestEnvoy } from '../helpers/envoy.js';

describe('parseStats', () => {
  it('keeps counters and gauges, drops histograms', () => {
    const text = [
      'cluster.skein_xds.upstream_cx_total: 12',
      'listener.127.0.0.1_8080.downstream_cx_active: 0',
      'server.memory_allocated: 5242880',
      'cluster.skein_xds.upstream_cx_length_ms: P0(nan,0) P25(nan,0) P50(nan,0)',
      'server.initialization_time_ms: No recorded values',
      '',
    ].join('\n');
    expect(parseStats(text)).toEqual(
      new Map([
        ['cluster.skein_xds.upstream_cx_total', 12],
        ['listener.127.0.0.1_8080.downstream_cx_active', 0],
        ['server.memory_allocated', 5242880],
      ]),
    );
  });
});

describe('admin client against a real Envoy', () => {
  let envoy: TestEnvoy;
  let url: string;

  beforeAll(async () => {
    envoy = await startTestEnvoy();
    url = envoy.supervisor.adminUrl ?? '';
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });
  afterAll(async () => {
    await envoy?.close();
  });

  it('getReady returns the server state, LIVE once the initial fetch timed out', async () => {
    expect(['PRE_INITIALIZING', 'INITIALIZING', 'LIVE']).toContain(await getReady(url));
    await envoy.supervisor.waitReady(10_000);
    expect(await getReady(url)).toBe('LIVE');
  });

  it('getServerInfo reports the version and the node', async () => {
    const info = await getServerInfo(url);
    expect(info.version).toContain(`/${ENVOY_VERSION}/`);
    expect(info.node).toMatchObject({ id: `test-${process.pid}`, cluster: 'skein-test' });
    expect(info.command_line_options).toMatchObject({ concurrency: 1 });
  });

  it('getStats parses numbers and applies the filter', async () => {
    const stats = await getStats(url, `^cluster\\.${XDS_CLUSTER_NAME}\\.`);
    expect(stats.size).toBeGreaterThan(10);
    for (const name of stats.keys()) expect(name.startsWith(`cluster.${XDS_CLUSTER_NAME}.`)).toBe(true);
    // Nobody serves the xDS socket: Envoy keeps trying and failing to connect.
    expect(stats.get(`cluster.${XDS_CLUSTER_NAME}.upstream_cx_connect_fail`)).toBeGreaterThan(0);
    const all = await getStats(url);
    expect(all.get('server.concurrency')).toBe(1);
  });

  it('getClusters lists the static xDS cluster', async () => {
    const clusters = await getClusters(url);
    const xds = clusters.cluster_statuses?.find((c) => c.name === XDS_CLUSTER_NAME);
    expect(xds).toBeDefined();
    expect(xds?.added_via_api).toBeFalsy();
  });

  it('getConfigDump returns the bootstrap, and honours resource and mask', async () => {
    const dump = await getConfigDump(url);
    const boot = dump.configs.find((c) => c['@type'].endsWith('BootstrapConfigDump'));
    expect(boot?.['bootstrap']).toMatchObject({ node: { id: `test-${process.pid}` } });

    const statics = await getConfigDump(url, { resource: 'static_clusters', mask: 'cluster.name' });
    expect(statics.configs).toEqual([
      expect.objectContaining({
        cluster: { '@type': expect.stringContaining('Cluster'), name: XDS_CLUSTER_NAME },
      }),
    ]);
  });

  it('fails with SKEIN_ENVOY_ADMIN_BAD_RESPONSE on an error status', async () => {
    const err = await getConfigDump(url, { resource: 'no_such_resource' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdminError);
    expect((err as AdminError).code).toBe('SKEIN_ENVOY_ADMIN_BAD_RESPONSE');
    expect((err as AdminError).message).toMatch(/answered [45]\d\d/);
  });

  it('fails with SKEIN_ENVOY_ADMIN_UNREACHABLE when nothing listens', async () => {
    // Bind and release a port so that (almost surely) nothing listens on it.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await expect(getReady(`http://127.0.0.1:${port}`, { timeoutMs: 2000 })).rejects.toMatchObject({
      code: 'SKEIN_ENVOY_ADMIN_UNREACHABLE',
      message: expect.stringContaining('ECONNREFUSED'),
    });
  });
});
