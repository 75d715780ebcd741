/**
 * The static Envoy configurations of bench/request-latency.ts (proto3 JSON for `envoy -c`): the node
 * proxy of the L7 path and the two sidecars of the sidecar model. All three share one HTTP connection
 * manager, with the settings Skein gives the connection managers it serves (envoyHttpConnectionManager
 * in src/xds/translate/httpConnectionManager.ts: path normalisation, merged slashes, escaped slashes
 * redirected, the peer as the client address, a one-hour idle timeout, the CORS filter then the router),
 * without its access log, and one catch-all route to an ORIGINAL_DST cluster that speaks whatever the
 * client spoke (HTTP/1.1 or, for gRPC, HTTP/2). They differ only in how a connection reaches them:
 *
 * - node proxy: a transparent listener that the policy datapath hands the pod's connection to with
 *   bpf_sk_assign (nothing rewritten; the original destination is the accepted socket's local address,
 *   handed to the cluster through filter state), as test/datapath/redirect.e2e.test.ts configures it;
 * - sidecars: iptables REDIRECT in the pod (as Istio's init container sets it up) and the original_dst
 *   listener filter, which reads the destination back from conntrack (SO_ORIGINAL_DST).
 */

export const CONNECTION_MANAGER_SETTINGS = {
  normalize_path: true,
  merge_slashes: true,
  path_with_escaped_slashes_action: 'UNESCAPE_AND_REDIRECT',
  use_remote_address: true,
  common_http_protocol_options: { idle_timeout: '3600s' },
} as const;

export const HTTP_FILTERS = [
  {
    name: 'envoy.filters.http.cors',
    typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors' },
  },
  {
    name: 'envoy.filters.http.router',
    typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
  },
];

const CLUSTER = 'original_dst';

function httpConnectionManager(statPrefix: string): unknown {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type':
        'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      stat_prefix: statPrefix,
      route_config: {
        name: statPrefix,
        virtual_hosts: [
          { name: 'any', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: CLUSTER } }] },
        ],
      },
      http_filters: HTTP_FILTERS,
      ...CONNECTION_MANAGER_SETTINGS,
    },
  };
}

/** The upstream cluster: the original destination, marked so that neither the datapath nor iptables take it again. */
function originalDstCluster(mark: number): unknown {
  return {
    name: CLUSTER,
    type: 'ORIGINAL_DST',
    lb_policy: 'CLUSTER_PROVIDED',
    connect_timeout: '1s',
    upstream_bind_config: {
      source_address: { address: '0.0.0.0', port_value: 0 },
      // SO_MARK (SOL_SOCKET 1, 36).
      socket_options: [{ level: 1, name: 36, int_value: mark, state: 'STATE_PREBIND' }],
    },
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} },
      },
    },
  };
}

function bootstrap(id: string, adminSocket: string, listener: unknown, mark: number): unknown {
  return {
    node: { id, cluster: 'skein-bench' },
    admin: { address: { pipe: { path: adminSocket } } },
    static_resources: { listeners: [listener], clusters: [originalDstCluster(mark)] },
    // As envoy/bootstrap.yaml: a bound on downstream connections (Envoy warns without one).
    overload_manager: {
      resource_monitors: [
        {
          name: 'envoy.resource_monitors.global_downstream_max_connections',
          typed_config: {
            '@type':
              'type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig',
            max_active_downstream_connections: 50000,
          },
        },
      ],
    },
  };
}

/** The node Envoy of the L7 path: the policy datapath's redirect target on `proxyPort`. */
export function nodeProxyBootstrap(o: {
  adminSocket: string;
  proxyPort: number;
  fromProxyMark: number;
}): unknown {
  return bootstrap(
    'bench-node-proxy',
    o.adminSocket,
    {
      name: 'redirect',
      // The wildcard address: Envoy then asks the accepted socket for its local address (the original
      // destination) instead of taking the listener's.
      address: { socket_address: { address: '0.0.0.0', port_value: o.proxyPort } },
      transparent: true,
      filter_chains: [
        {
          filters: [
            {
              name: 'envoy.filters.network.set_filter_state',
              typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.filters.network.set_filter_state.v3.Config',
                on_new_connection: [
                  {
                    object_key: 'envoy.network.transport_socket.original_dst_address',
                    format_string: { text_format_source: { inline_string: '%DOWNSTREAM_LOCAL_ADDRESS%' } },
                  },
                ],
              },
            },
            httpConnectionManager('redirect'),
          ],
        },
      ],
    },
    o.fromProxyMark,
  );
}

/** A sidecar: outbound (client pod) or inbound (server pod), captured by iptables REDIRECT to `port`. */
export function sidecarBootstrap(o: {
  adminSocket: string;
  port: number;
  mark: number;
  name: string;
}): unknown {
  return bootstrap(
    `bench-${o.name}`,
    o.adminSocket,
    {
      name: o.name,
      address: { socket_address: { address: '0.0.0.0', port_value: o.port } },
      listener_filters: [
        {
          name: 'envoy.filters.listener.original_dst',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst',
          },
        },
      ],
      filter_chains: [{ filters: [httpConnectionManager(o.name)] }],
    },
    o.mark,
  );
}

/**
 * The nat rules of a sidecar's pod, in Istio's shape: outbound TCP from the client pod to the sidecar's
 * port (the sidecar's own connections, marked, and loopback excepted), inbound TCP into the server pod
 * to its sidecar's port.
 */
export function sidecarRules(o: { direction: 'outbound' | 'inbound'; port: number; mark: number }): string {
  const lines =
    o.direction === 'outbound'
      ? [
          '*nat',
          ':SKEIN-BENCH-OUTPUT - [0:0]',
          '-A OUTPUT -p tcp -j SKEIN-BENCH-OUTPUT',
          `-A SKEIN-BENCH-OUTPUT -m mark --mark 0x${o.mark.toString(16)} -j RETURN`,
          '-A SKEIN-BENCH-OUTPUT -d 127.0.0.0/8 -j RETURN',
          `-A SKEIN-BENCH-OUTPUT -p tcp -j REDIRECT --to-ports ${o.port}`,
          'COMMIT',
        ]
      : [
          '*nat',
          ':SKEIN-BENCH-INBOUND - [0:0]',
          '-A PREROUTING -p tcp -j SKEIN-BENCH-INBOUND',
          `-A SKEIN-BENCH-INBOUND -p tcp --dport ${o.port} -j RETURN`,
          `-A SKEIN-BENCH-INBOUND -p tcp -j REDIRECT --to-ports ${o.port}`,
          'COMMIT',
        ];
  return `${lines.join('\n')}\n`;
}
