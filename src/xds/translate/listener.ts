import type { IrListener, IrRoute } from '../../model/ir.js';
import { routeConfigName } from '../../model/names.js';
import { ExtensionType, type ProtoObject, TypeUrl } from '../proto.js';
import type { ResourceSpec } from '../resource.js';
import { envoyHttpConnectionManager, HTTP_CONNECTION_MANAGER } from './httpConnectionManager.js';
import { adsConfigSource, routeConfigKey, secretKey } from './protoValues.js';
import { type TranslatedRoute, translateRoute } from './route.js';
import { envoyVirtualHosts, routeConfiguration } from './routeConfiguration.js';

/**
 * One IR listener → an Envoy socket Listener and its RouteConfiguration (envoy flavour). The two are
 * produced together because the route configuration is the listener's own (same name); everything else
 * they name (clusters, secrets) is referred to by name only. `routeOf` translates one IR route (see
 * routeConfiguration).
 */
export function translateListener(
  l: IrListener,
  routeOf: (route: IrRoute) => TranslatedRoute = (r) => translateRoute(r, 'envoy'),
): ResourceSpec[] {
  const secrets = l.protocol === 'HTTPS' ? (l.tls?.certificates.flatMap((c) => c.secretNames) ?? []) : [];
  // An HTTPS listener without a certificate cannot complete a handshake, and serving it in clear text
  // would be worse: it is not programmed at all, like a Gateway listener whose certificates are invalid.
  if (l.protocol === 'HTTPS' && secrets.length === 0) return [];

  const rdsName = routeConfigName(l.name);
  const filterChain = {
    filters: [{ name: HTTP_CONNECTION_MANAGER, typedConfig: envoyHttpConnectionManager(l, rdsName) }],
    ...(secrets.length > 0 ? { transportSocket: downstreamTls(secrets) } : {}),
  };

  const listener: ResourceSpec = {
    typeUrl: TypeUrl.Listener,
    name: l.name,
    message: {
      name: l.name,
      address: { socketAddress: { address: l.address, portValue: l.port } },
      filterChains: [filterChain],
    },
    // Envoy keeps a listener warming until its certificates arrive; sending them first avoids that.
    deps: secrets.map(secretKey),
    children: [routeConfigKey(rdsName)],
  };
  return [listener, routeConfiguration(rdsName, envoyVirtualHosts(l.virtualHosts), 'envoy', routeOf)];
}

/**
 * TLS for an HTTPS listener: all its certificates in one filter chain, fetched over SDS. Envoy picks the
 * certificate per connection by matching the client's SNI against each certificate's names (exact, then
 * wildcard), and falls back to the first one when nothing matches or no SNI is sent.
 *
 * The alternative, one filter chain per certificate matched on `server_names` behind a TLS inspector,
 * needs to know which hostnames each certificate serves, which the IR does not say; and it would refuse
 * clients that send no SNI or an unlisted one instead of answering with the first certificate. With a
 * single chain there is nothing to match on, so no TLS inspector is needed either.
 */
function downstreamTls(secretNames: readonly string[]): ProtoObject {
  return {
    name: 'envoy.transport_sockets.tls',
    typedConfig: {
      '@type': ExtensionType.DownstreamTlsContext,
      commonTlsContext: {
        tlsCertificateSdsSecretConfigs: secretNames.map((name) => ({ name, sdsConfig: adsConfigSource })),
        // HTTP/2 where the client offers it; the connection manager detects the protocol either way.
        alpnProtocols: ['h2', 'http/1.1'],
      },
    },
  };
}
