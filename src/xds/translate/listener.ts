import type { IrCertificateSet, IrListener, IrRoute } from '../../model/ir.js';
import { routeConfigName } from '../../model/names.js';
import { ExtensionType, type ProtoObject, TypeUrl } from '../proto.js';
import type { ResourceSpec } from '../resource.js';
import { downstreamTls, serverNames, TLS_INSPECTOR } from './downstreamTls.js';
import { envoyHttpConnectionManager, HTTP_CONNECTION_MANAGER } from './httpConnectionManager.js';
import { translateL4Listener } from './l4Listener.js';
import { routeConfigKey, secretKey, wrapped } from './protoValues.js';
import { dependsOnListener, type ListenerContext, type TranslatedRoute, translateRoute } from './route.js';
import { envoyVirtualHosts, routeConfiguration } from './routeConfiguration.js';

/**
 * One IR listener → its Envoy resources (envoy flavour). HTTP and HTTPS: a socket Listener and its
 * RouteConfiguration, produced together because the route configuration is the listener's own (same
 * name); everything else they name (clusters, secrets) is referred to by name only. `routeOf`
 * translates one IR route (see routeConfiguration). TLS, TCP and UDP listeners route in the listener
 * itself (see l4Listener.ts).
 */
export function translateListener(
  l: IrListener,
  routeOf: (route: IrRoute) => TranslatedRoute = (r) => translateRoute(r, 'envoy'),
): ResourceSpec[] {
  if (l.protocol === 'TLS' || l.protocol === 'TCP' || l.protocol === 'UDP') return [translateL4Listener(l)];
  const sets = l.protocol === 'HTTPS' ? certificateSets(l.tls?.certificates ?? []) : [];
  // An HTTPS listener without a certificate cannot complete a handshake, and serving it in clear text
  // would be worse: it is not programmed at all, like a Gateway listener whose certificates are invalid.
  if (l.protocol === 'HTTPS' && sets.length === 0) return [];
  const secrets = [...new Set(sets.flatMap((c) => c.secretNames))];

  const rdsName = routeConfigName(l.name);
  // One connection manager, shared by every chain (one object, so it is encoded once).
  const hcm = { name: HTTP_CONNECTION_MANAGER, typedConfig: envoyHttpConnectionManager(l, rdsName) };
  const filters = l.transparent === true ? [KEEP_ORIGINAL_DESTINATION, hcm] : [hcm];
  const filterChains =
    l.protocol === 'HTTPS'
      ? sets.map((set) => ({
          ...(set.hostnames.length > 0
            ? { filterChainMatch: { serverNames: serverNames(set.hostnames) } }
            : {}),
          filters,
          transportSocket: downstreamTls(set.secretNames, HTTPS_ALPN),
        }))
      : [{ filters }];

  const listener: ResourceSpec = {
    typeUrl: TypeUrl.Listener,
    name: l.name,
    message: {
      name: l.name,
      address: { socketAddress: { address: l.address, portValue: l.port } },
      // IP_TRANSPARENT: the accepted sockets answer from the original destination, an address that is
      // not the node's.
      ...(l.transparent === true ? { transparent: wrapped(true) } : {}),
      ...(filterChains.some((c) => 'filterChainMatch' in c) ? { listenerFilters: [TLS_INSPECTOR] } : {}),
      filterChains,
    },
    // Envoy keeps a listener warming until its certificates arrive; sending them first avoids that.
    deps: secrets.map(secretKey),
    children: [routeConfigKey(rdsName)],
  };
  // Redirects depend on the listener's port and scheme (see redirectAction), so they are translated per
  // listener; every other route goes through `routeOf` (memoised per IR route).
  const context: ListenerContext = { port: l.port, scheme: l.protocol === 'HTTPS' ? 'https' : 'http' };
  const routeHere = (r: IrRoute) => (dependsOnListener(r) ? translateRoute(r, 'envoy', context) : routeOf(r));
  return [listener, routeConfiguration(rdsName, envoyVirtualHosts(l.virtualHosts), 'envoy', routeHere)];
}

/**
 * A transparent listener's first network filter: the connection's local address is its original
 * destination (the datapath assigned the packet to this socket without rewriting it), and the
 * original-destination cluster reads it from this filter state (cluster.ts).
 */
const KEEP_ORIGINAL_DESTINATION: ProtoObject = {
  name: 'envoy.filters.network.set_filter_state',
  typedConfig: {
    '@type': ExtensionType.NetworkSetFilterState,
    onNewConnection: [
      {
        objectKey: 'envoy.network.transport_socket.original_dst_address',
        formatString: { textFormatSource: { inlineString: '%DOWNSTREAM_LOCAL_ADDRESS%' } },
      },
    ],
  },
};

/** HTTP/2 where the client offers it; the connection manager detects the protocol either way. */
const HTTPS_ALPN = ['h2', 'http/1.1'];

/**
 * The certificate sets of an HTTPS listener, one filter chain each: a set with hostnames is chosen when
 * the client's SNI matches one of them (`server_names`, exact or `*.` wildcard; the TLS inspector reads
 * the SNI), the set without hostnames serves every other client, those sending no SNI included. Within a
 * chain, Envoy picks among the set's certificates by key type and by the names in each.
 *
 * Envoy rejects two chains with the same match, which would take the whole listener down; the IR should
 * never hold such sets, but if it does they are merged (secrets united, in order). Sets without secrets
 * are dropped. A listener without a set without hostnames refuses clients whose SNI matches no set.
 */
function certificateSets(sets: readonly IrCertificateSet[]): IrCertificateSet[] {
  const byKey = new Map<string, { hostnames: string[]; secretNames: string[] }>();
  for (const set of sets) {
    if (set.secretNames.length === 0) continue;
    const hostnames = serverNames(set.hostnames);
    const key = hostnames.join(',');
    const seen = byKey.get(key);
    if (seen === undefined) byKey.set(key, { hostnames, secretNames: [...set.secretNames] });
    else for (const s of set.secretNames) if (!seen.secretNames.includes(s)) seen.secretNames.push(s);
  }
  return [...byKey.values()];
}
