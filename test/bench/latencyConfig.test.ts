// The pure parts of bench/request-latency.ts: percentiles, the sidecars made from the node Envoy's
// config dump, the iptables capture, and the bench's two changes to what Skein serves. The smoke run
// (requestLatency.smoke.test.ts) drives the same through real Envoys and the kernel.

import { describe, expect, it } from 'vitest';
import {
  dumpedProxy,
  inlineConnectionManager,
  sidecarBootstrap,
  sidecarRules,
} from '../../bench/latency/envoyConfigs.js';
import { percentile } from '../../bench/latency/fortio.js';
import { withoutAccessLogs } from '../../bench/latency/nodeProxyXds.js';
import { ORIGINAL_DESTINATION_BACKEND } from '../../src/model/names.js';
import type { PolicyIr } from '../../src/model/policy.js';
import { proxyIr } from '../../src/model/proxyIr.js';
import { ExtensionType, TypeUrl } from '../../src/xds/proto.js';
import { createIrTranslator } from '../../src/xds/translate/translate.js';

const HCM =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** The shape of Envoy's /config_dump for a node proxy (trimmed to what the bench reads). */
const dump = {
  configs: [
    { '@type': 'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump', bootstrap: {} },
    {
      '@type': 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
      dynamic_active_clusters: [
        {
          cluster: {
            '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
            name: 'od',
            type: 'ORIGINAL_DST',
          },
        },
      ],
    },
    {
      '@type': 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
      dynamic_listeners: [
        {
          name: 'listener/0.0.0.0/15001',
          active_state: {
            listener: {
              '@type': 'type.googleapis.com/envoy.config.listener.v3.Listener',
              name: 'listener/0.0.0.0/15001',
              transparent: true,
              filter_chains: [
                {
                  filters: [
                    { name: 'envoy.filters.network.set_filter_state', typed_config: {} },
                    {
                      name: 'envoy.filters.network.http_connection_manager',
                      typed_config: {
                        '@type': HCM,
                        stat_prefix: 'listener_0_0_0_0_15001',
                        rds: { route_config_name: 'listener/0.0.0.0/15001' },
                        normalize_path: true,
                      },
                    },
                  ],
                },
              ],
            },
          },
        },
      ],
    },
    // Listed before the RoutesConfigDump, as Envoy does: it must not be mistaken for it.
    { '@type': 'type.googleapis.com/envoy.admin.v3.ScopedRoutesConfigDump' },
    {
      '@type': 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump',
      dynamic_route_configs: [
        {
          route_config: {
            '@type': 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
            name: 'listener/0.0.0.0/15001',
            virtual_hosts: [],
          },
        },
      ],
    },
  ],
};

describe('request-latency helpers', () => {
  it('takes nearest-rank percentiles', () => {
    const xs = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect([percentile(xs, 50), percentile(xs, 90), percentile(xs, 99), percentile(xs, 100)]).toEqual([
      50, 90, 99, 100,
    ]);
    expect(percentile(Float64Array.of(7), 99)).toBe(7);
    expect(percentile(new Float64Array(0), 50)).toBeNaN();
  });

  it("makes a sidecar from the node proxy's connection manager, route and clusters, without their @type", () => {
    const p = dumpedProxy(dump, 'listener/0.0.0.0/15001');
    expect(p.clusters).toEqual([{ name: 'od', type: 'ORIGINAL_DST' }]);
    expect(inlineConnectionManager(p, 'outbound')).toEqual({
      name: 'envoy.filters.network.http_connection_manager',
      typed_config: {
        '@type': HCM,
        stat_prefix: 'outbound',
        normalize_path: true,
        route_config: { name: 'listener/0.0.0.0/15001', virtual_hosts: [] },
      },
    });
    const b = sidecarBootstrap(p, {
      name: 'outbound',
      port: 15001,
      adminSocket: '/x/admin',
      overloadManager: { o: 1 },
    });
    const listener = (b['static_resources'] as { listeners: Record<string, unknown>[] }).listeners[0];
    // iptables REDIRECT capture: the original_dst listener filter, not transparent, no filter-state filter.
    expect(listener).toMatchObject({
      address: { socket_address: { address: '0.0.0.0', port_value: 15001 } },
      listener_filters: [{ name: 'envoy.filters.listener.original_dst' }],
    });
    expect(listener?.['transparent']).toBeUndefined();
    expect(JSON.stringify(listener)).not.toContain('set_filter_state');
    expect(b['admin']).toEqual({ address: { pipe: { path: '/x/admin' } } });
    expect(b['overload_manager']).toEqual({ o: 1 });
    expect(() => dumpedProxy(dump, 'listener/0.0.0.0/15002')).toThrow(
      /no active listener listener\/0.0.0.0\/15002/,
    );
  });

  it('captures like Istio: outbound except the proxy mark and loopback, inbound except the sidecar port', () => {
    const out = sidecarRules({ direction: 'outbound', port: 15001, mark: 0xb000, mask: 0xf000 }).split('\n');
    expect(out).toContain('-A SKEIN-BENCH-OUTPUT -m mark --mark 0xb000/0xf000 -j RETURN');
    expect(out.at(-3)).toBe('-A SKEIN-BENCH-OUTPUT -p tcp -j REDIRECT --to-ports 15001');
    const inb = sidecarRules({ direction: 'inbound', port: 15006, mark: 0xb000, mask: 0xf000 }).split('\n');
    expect(inb).toEqual([
      '*nat',
      ':SKEIN-BENCH-INBOUND - [0:0]',
      '-A PREROUTING -p tcp -j SKEIN-BENCH-INBOUND',
      '-A SKEIN-BENCH-INBOUND -p tcp --dport 15006 -j RETURN',
      '-A SKEIN-BENCH-INBOUND -p tcp -j REDIRECT --to-ports 15006',
      'COMMIT',
      '',
    ]);
  });

  it("changes only the access log and the original-destination cluster's protocol in what Skein serves", () => {
    const policy: PolicyIr = {
      identities: [],
      ipcache: [],
      endpoints: [
        {
          name: 'x/c',
          addresses: ['10.0.0.1'],
          interface: 'lxc0',
          identity: 300,
          ingress: { enforced: false, rules: [] },
          egress: {
            enforced: true,
            rules: [
              {
                peers: 'any',
                ports: [{ protocol: 'TCP', port: 80 }],
                verdict: 'redirect',
                proxyPort: 15001,
                origin: 'np',
              },
            ],
          },
        },
      ],
    };
    const ir = proxyIr(policy, { upstreamMark: 0xb000 });
    const specs = createIrTranslator().translate(ir, { flavor: 'envoy' });
    const stripped = withoutAccessLogs(specs);
    expect(JSON.stringify(specs)).toContain('accessLog');
    expect(JSON.stringify(stripped)).not.toContain('accessLog');
    // Everything else is as served.
    expect(stripped).toEqual(
      JSON.parse(JSON.stringify(specs), (k, v) => (k === 'accessLog' ? undefined : v)),
    );
    // The original destination speaks what the redirected client speaks (HTTP/1.1, or h2c for gRPC).
    const cluster = stripped.find(
      (s) => s.typeUrl === TypeUrl.Cluster && s.name === ORIGINAL_DESTINATION_BACKEND,
    );
    expect(cluster?.message['typedExtensionProtocolOptions']).toEqual({
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': ExtensionType.HttpProtocolOptions,
        useDownstreamProtocolConfig: { httpProtocolOptions: {}, http2ProtocolOptions: {} },
      },
    });
  });
});
