import type { IrCertificateSet, IrL4Route, IrListener, IrWeightedBackend } from '../../model/ir.js';
import { ExtensionType, type ProtoObject, TypeUrl } from '../proto.js';
import type { ResourceKey, ResourceSpec } from '../resource.js';
import { certificateSetFor, downstreamTls, serverNames, TLS_INSPECTOR } from './downstreamTls.js';
import { statPrefix } from './httpConnectionManager.js';
import { clusterKey, endpointsKey, secretKey } from './protoValues.js';
import { INVALID_BACKEND_CLUSTER } from './route.js';
import { compareStrings } from './routeConfiguration.js';

/**
 * IR listeners that route connections (TLS, TCP) or datagrams (UDP) → one Envoy Listener each, with no
 * route configuration: the routing is in the listener itself.
 *
 * - TCP: one filter chain, `tcp_proxy` to the first L4 route's backends (weighted when several). Several
 *   TCPRoutes on one port cannot be told apart, so the first by name takes the port.
 * - TLS Passthrough: the TLS inspector reads the SNI; one filter chain per route with its server names
 *   (a route for any name is the default chain), each a `tcp_proxy` that forwards the still-encrypted
 *   bytes. A name two routes claim stays with the first by name (Envoy rejects two chains with the same
 *   match). A client whose SNI matches no chain is disconnected.
 * - TLS Terminate: as Passthrough, but each chain ends TLS first, with the certificate set that serves
 *   its names (most specific hostname first), so a route's names are split over chains by certificate.
 * - UDP: a UDP socket (`protocol: UDP`) with the `udp_proxy` listener filter, which has no filter
 *   chains. Its matcher sends every datagram of the first route to one backend; with several weighted
 *   backends, each client (source port) is assigned one by hash, in proportion to the weights: UDP
 *   proxy sessions have no weighted clusters, so the split is a chain of `runtime_fraction` matches on
 *   the source port with independent seeds (the first backend takes w1/W of the clients, the next
 *   w2/(W-w1) of the rest, and so on; the last takes what remains).
 *
 * Connections nothing routes (no route, or a route with no backend left) are closed at once by a filter
 * chain holding only the `direct_response` network filter with no response; datagrams nothing routes
 * are dropped by a matcher with no match. The share of a route's invalid backends
 * (`invalidBackendWeight`) is refused in proportion: TCP and TLS connections go to a cluster that is
 * never defined, which tcp_proxy closes; UDP clients in that share match no step of the chain. Envoy accepts both, and neither names a cluster, so nothing
 * has to exist first.
 *
 * Deps: every cluster (and its endpoints) a route sends to, because `tcp_proxy` and `udp_proxy` drop
 * what they cannot send to a known cluster (make before break); and the secrets of a terminating
 * listener, which Envoy would otherwise wait for while the listener warms.
 */
export function translateL4Listener(l: IrListener): ResourceSpec {
  const routes = l.l4Routes ?? [];
  const clusters = new Set<string>();
  const use = (backends: readonly IrWeightedBackend[]): readonly IrWeightedBackend[] => {
    const live = liveBackends(backends);
    for (const b of live) clusters.add(b.backend);
    return live;
  };
  let message: ProtoObject;
  let secrets: readonly string[] = [];
  if (l.protocol === 'UDP') {
    const first = routes[0];
    const invalid = first?.invalidBackendWeight ?? 0;
    message = {
      name: l.name,
      address: { socketAddress: { protocol: 'UDP', address: l.address, portValue: l.port } },
      udpListenerConfig: {},
      listenerFilters: [
        {
          name: 'envoy.filters.udp_listener.udp_proxy',
          typedConfig: {
            '@type': ExtensionType.UdpProxy,
            statPrefix: statPrefix(l.name),
            matcher: udpMatcher(first === undefined ? [] : use(first.backends), invalid),
          },
        },
      ],
    };
  } else if (l.protocol === 'TCP') {
    const first = routes[0];
    const backends = first === undefined ? [] : use(first.backends);
    message = {
      name: l.name,
      address: socketAddress(l),
      filterChains: [{ filters: [connectionFilter(l.name, backends, first?.invalidBackendWeight)] }],
    };
  } else {
    const terminate = l.tls?.mode === 'Terminate';
    const sets = terminate ? (l.tls?.certificates ?? []) : [];
    secrets = terminate ? [...new Set(sets.flatMap((s) => s.secretNames))] : [];
    const chains = tlsChains(l.name, routes, terminate ? sets : undefined, use);
    message = {
      name: l.name,
      address: socketAddress(l),
      ...(chains.some((c) => c['filterChainMatch'] !== undefined)
        ? { listenerFilters: [TLS_INSPECTOR] }
        : {}),
      filterChains: chains,
    };
  }
  const deps: ResourceKey[] = [
    ...[...clusters].sort(compareStrings).flatMap((n) => [clusterKey(n), endpointsKey(n)]),
    ...secrets.map(secretKey),
  ];
  return { typeUrl: TypeUrl.Listener, name: l.name, message, deps, children: [] };
}

function socketAddress(l: IrListener): ProtoObject {
  return { socketAddress: { address: l.address, portValue: l.port } };
}

/** Backends that can take traffic: weight above 0 (tcp_proxy rejects a weight of 0). */
function liveBackends(backends: readonly IrWeightedBackend[]): IrWeightedBackend[] {
  return backends.filter((b) => b.weight > 0);
}

/**
 * The one network filter of a chain: tcp_proxy to the backends, or a close when there is none. The
 * share of invalid backends (`invalidWeight`) goes to INVALID_BACKEND_CLUSTER, which is never defined:
 * tcp_proxy closes a connection whose cluster it does not know (`downstream_cx_no_route`), so that
 * share of connections is refused, as the Gateway API asks, and never reaches a valid backend.
 */
function connectionFilter(
  listener: string,
  backends: readonly IrWeightedBackend[],
  invalidWeight = 0,
): ProtoObject {
  const [only] = backends;
  if (only === undefined) return CLOSE_CONNECTION;
  const clusters = backends.map((b) => ({ name: b.backend, weight: b.weight }));
  if (invalidWeight > 0) clusters.push({ name: INVALID_BACKEND_CLUSTER, weight: invalidWeight });
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typedConfig: {
      '@type': ExtensionType.TcpProxy,
      statPrefix: statPrefix(listener),
      ...(clusters.length === 1 ? { cluster: only.backend } : { weightedClusters: { clusters } }),
    },
  };
}

/** Closes every connection at once: a direct response with nothing to say. */
const CLOSE_CONNECTION: ProtoObject = {
  name: 'envoy.filters.network.direct_response',
  typedConfig: { '@type': ExtensionType.NetworkDirectResponse },
};

/**
 * The filter chains of a TLS listener: per route, its server names not taken by an earlier route
 * (Passthrough: one chain; Terminate: one per certificate set serving some of them). A route for any
 * name becomes the default chain (no server_names) unless one exists. With no chain at all, a default
 * one closes connections (Envoy needs a chain).
 */
function tlsChains(
  listener: string,
  routes: readonly IrL4Route[],
  sets: readonly IrCertificateSet[] | undefined,
  use: (backends: readonly IrWeightedBackend[]) => readonly IrWeightedBackend[],
): ProtoObject[] {
  const taken = new Set<string>();
  let defaultTaken = false;
  const chains: ProtoObject[] = [];
  const chain = (
    names: readonly string[],
    route: { readonly backends: readonly IrWeightedBackend[]; readonly invalidBackendWeight?: number },
    set?: IrCertificateSet,
  ) => ({
    ...(names.length > 0 ? { filterChainMatch: { serverNames: [...names] } } : {}),
    filters: [connectionFilter(listener, route.backends, route.invalidBackendWeight)],
    ...(set === undefined ? {} : { transportSocket: downstreamTls(set.secretNames) }),
  });
  for (const route of routes) {
    const all = serverNames(route.hostnames);
    const target = { backends: use(route.backends), invalidBackendWeight: route.invalidBackendWeight ?? 0 };
    if (all.length === 0) {
      // Any name: the default chain.
      if (defaultTaken) continue;
      defaultTaken = true;
      const set = sets === undefined ? undefined : (sets.find((s) => s.hostnames.length === 0) ?? sets[0]);
      if (sets !== undefined && set === undefined) continue;
      chains.push(chain([], target, set));
      continue;
    }
    const names = all.filter((n) => !taken.has(n));
    for (const n of names) taken.add(n);
    if (names.length === 0) continue;
    if (sets === undefined) {
      chains.push(chain(names, target));
      continue;
    }
    // Terminate: names grouped by the certificate set that serves them, in the sets' order.
    const bySet = new Map<IrCertificateSet, string[]>();
    for (const n of names) {
      const set = certificateSetFor(sets, n);
      if (set === undefined) continue;
      const list = bySet.get(set);
      if (list === undefined) bySet.set(set, [n]);
      else list.push(n);
    }
    for (const set of sets) {
      const group = bySet.get(set);
      if (group !== undefined) chains.push(chain(group, target, set));
    }
  }
  return chains.length > 0 ? chains : [{ filters: [CLOSE_CONNECTION] }];
}

/** Fractions are expressed in millionths, the finest FractionalPercent denominator. */
const MILLION = 1_000_000;

/**
 * The udp_proxy matcher: no backend → no match (datagrams dropped); one → every datagram to it; several
 * → a weighted choice per client source port (see the top of this file). With an invalid share, every
 * backend gets its step of the chain and there is no `on_no_match`: the clients that fall through all
 * steps (the invalid share, `invalidWeight` of the total) match nothing and their datagrams are dropped.
 */
function udpMatcher(backends: readonly IrWeightedBackend[], invalidWeight = 0): ProtoObject {
  const last = backends.at(-1);
  if (last === undefined) return {};
  const matchers: ProtoObject[] = [];
  let remaining = backends.reduce((sum, b) => sum + b.weight, 0) + Math.max(0, invalidWeight);
  const stepped = invalidWeight > 0 ? backends : backends.slice(0, -1);
  stepped.forEach((b, i) => {
    const numerator = Math.round((b.weight / remaining) * MILLION);
    remaining -= b.weight;
    matchers.push({
      predicate: {
        singlePredicate: {
          input: {
            name: 'envoy.matching.inputs.source_port',
            typedConfig: { '@type': ExtensionType.SourcePortInput },
          },
          customMatch: {
            name: 'envoy.matching.matchers.runtime_fraction',
            typedConfig: {
              '@type': ExtensionType.RuntimeFraction,
              runtimeFraction: { defaultValue: { numerator, denominator: 'MILLION' } },
              // Independent draws per step, so each step splits what the earlier ones left.
              seed: i + 1,
            },
          },
        },
      },
      onMatch: udpRoute(b.backend),
    });
  });
  return {
    ...(matchers.length > 0 ? { matcherList: { matchers } } : {}),
    ...(invalidWeight > 0 ? {} : { onNoMatch: udpRoute(last.backend) }),
  };
}

function udpRoute(cluster: string): ProtoObject {
  return { action: { name: 'route', typedConfig: { '@type': ExtensionType.UdpProxyRoute, cluster } } };
}
