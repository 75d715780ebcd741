/**
 * The sidecars of bench/request-latency.ts, made from what the node Envoy of the L7 path was served
 * (its /config_dump, proto3 JSON): the same HTTP connection manager (Skein's settings and filter chain,
 * its route configuration inline instead of over RDS), the same route and the same ORIGINAL_DST cluster
 * (with its upstream mark). Only the way a connection reaches them differs, as it does between the two
 * models: the node proxy has a transparent listener that the policy datapath hands connections to with
 * bpf_sk_assign (nothing rewritten; the original destination goes to the cluster through filter
 * state), a sidecar has iptables REDIRECT in its pod (as Istio's init container sets it up) and the
 * original_dst listener filter, which reads the destination back from conntrack (SO_ORIGINAL_DST).
 */

export const HTTP_CONNECTION_MANAGER = 'envoy.filters.network.http_connection_manager';

type Json = Record<string, unknown>;

/** What the node Envoy holds, from /config_dump. */
export interface DumpedProxy {
  /** dynamic_listeners[].active_state.listener */
  readonly listener: Json;
  /** dynamic_route_configs[].route_config */
  readonly routeConfigs: readonly Json[];
  /** dynamic_active_clusters[].cluster */
  readonly clusters: readonly Json[];
}

/** Reads the node proxy's listener, route configurations and clusters out of a /config_dump body. */
export function dumpedProxy(dump: { configs: readonly Json[] }, listenerName: string): DumpedProxy {
  const byType = (name: string): Json | undefined =>
    dump.configs.find((c) => c['@type'] === `type.googleapis.com/envoy.admin.v3.${name}`);
  // The dumped resources are Anys: their JSON carries an `@type` that a bootstrap's fields do not take.
  const plain = (any: unknown): Json => {
    const { '@type': _type, ...rest } = any as Json;
    return rest;
  };
  const listeners = (byType('ListenersConfigDump')?.['dynamic_listeners'] ?? []) as Json[];
  const entry = listeners.find((l) => l['name'] === listenerName);
  const active = (entry?.['active_state'] as Json | undefined)?.['listener'];
  const listener = active === undefined ? undefined : plain(active);
  if (listener === undefined) throw new Error(`the node proxy has no active listener ${listenerName}`);
  const routeConfigs = ((byType('RoutesConfigDump')?.['dynamic_route_configs'] ?? []) as Json[]).map((r) =>
    plain(r['route_config']),
  );
  const clusters = ((byType('ClustersConfigDump')?.['dynamic_active_clusters'] ?? []) as Json[]).map((c) =>
    plain(c['cluster']),
  );
  return { listener, routeConfigs, clusters };
}

/** The node proxy's connection manager, with its route configuration inline (a sidecar has no RDS here). */
export function inlineConnectionManager(p: DumpedProxy, statPrefix: string): Json {
  const chains = (p.listener['filter_chains'] ?? []) as Json[];
  const filters = chains.flatMap((c) => (c['filters'] ?? []) as Json[]);
  const hcm = filters.find((f) => f['name'] === HTTP_CONNECTION_MANAGER);
  if (hcm === undefined || chains.length !== 1)
    throw new Error('the node proxy listener does not have one filter chain with a connection manager');
  const { rds, ...config } = hcm['typed_config'] as Json;
  const routeName = (rds as Json | undefined)?.['route_config_name'];
  const routeConfig = p.routeConfigs.find((r) => r['name'] === routeName);
  if (routeConfig === undefined)
    throw new Error(`the node proxy has no route configuration ${String(routeName)}`);
  return {
    name: HTTP_CONNECTION_MANAGER,
    typed_config: { ...config, stat_prefix: statPrefix, route_config: routeConfig },
  };
}

/** A sidecar's bootstrap: the node proxy's connection manager and clusters behind an iptables-captured listener. */
export function sidecarBootstrap(
  p: DumpedProxy,
  o: { name: string; port: number; adminSocket: string; overloadManager: unknown },
): Json {
  return {
    node: { id: `bench-${o.name}`, cluster: 'skein-bench' },
    admin: { address: { pipe: { path: o.adminSocket } } },
    static_resources: {
      listeners: [
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
          filter_chains: [{ filters: [inlineConnectionManager(p, o.name)] }],
        },
      ],
      clusters: p.clusters,
    },
    overload_manager: o.overloadManager,
  };
}

/**
 * The nat rules of a sidecar's pod, in Istio's shape: outbound TCP from the client pod to the sidecar's
 * port (the sidecar's own connections, which carry the cluster's upstream mark, and loopback excepted), inbound TCP into the server pod
 * to its sidecar's port.
 */
export function sidecarRules(o: {
  direction: 'outbound' | 'inbound';
  port: number;
  mark: number;
  mask: number;
}): string {
  const lines =
    o.direction === 'outbound'
      ? [
          '*nat',
          ':SKEIN-BENCH-OUTPUT - [0:0]',
          '-A OUTPUT -p tcp -j SKEIN-BENCH-OUTPUT',
          `-A SKEIN-BENCH-OUTPUT -m mark --mark 0x${o.mark.toString(16)}/0x${o.mask.toString(16)} -j RETURN`,
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
