import type { IrListener, IrRoute, IrVirtualHost } from '../../model/ir.js';
import { httpFilters } from '../filters/index.js';
import type { ProtoObject } from '../proto.js';
import { TypeUrl } from '../proto.js';
import type { ResourceSpec } from '../resource.js';
import { grpcHttpConnectionManager } from './httpConnectionManager.js';
import { routeConfigKey } from './protoValues.js';
import { type TranslatedRoute, translateRoute } from './route.js';
import { routeConfiguration } from './routeConfiguration.js';

/**
 * The proxyless gRPC flavour. A gRPC client dialling `xds:///H` asks for the Listener named `H` and
 * reads its `api_listener`; there is no socket to bind. So each concrete hostname of a virtual host
 * becomes one Listener `H` whose routes come from RouteConfiguration `grpc/H`, holding that virtual host's
 * routes under the single domain `H`. Wildcard hostnames name no target a client could dial and are
 * skipped.
 */

/** One hostname's Listener and RouteConfiguration. */
export interface GrpcHost {
  readonly hostname: string;
  readonly listener: ResourceSpec;
  readonly routeConfiguration: ResourceSpec;
}

/** The RouteConfiguration of hostname `H`; the prefix keeps it apart from socket listeners' names. */
export function grpcRouteConfigName(hostname: string): string {
  return `grpc/${hostname}`;
}

/**
 * Makes (or, memoised, finds again) one hostname's resources from its virtual host and the listener's
 * HTTP filters (`filtersKey` is their canonical JSON, so equal filters find the same entry).
 */
export type GrpcHostOf = (
  vh: IrVirtualHost,
  hostname: string,
  filters: readonly ProtoObject[],
  filtersKey: string,
) => GrpcHost;

/**
 * The gRPC resources of one IR listener, one per concrete hostname. A hostname on two virtual hosts of
 * the listener (which the IR should not have) goes to the first, as in the Envoy flavour. `routeOf`
 * translates one IR route (see routeConfiguration); `hostOf` lets a caller memoise per virtual host, so
 * that a change in one domain of a listener with a thousand re-makes that domain's two resources only.
 */
export function translateGrpcListener(
  l: IrListener,
  routeOf: (route: IrRoute) => TranslatedRoute = (r) => translateRoute(r, 'grpc'),
  hostOf: GrpcHostOf = (vh, hostname, filters) => grpcHost(hostname, vh, filters, routeOf),
): GrpcHost[] {
  const hosts = new Map<string, IrVirtualHost>();
  for (const vh of l.virtualHosts) {
    for (const h of vh.hostnames) {
      if (!h.includes('*') && !hosts.has(h)) hosts.set(h, vh);
    }
  }
  const filters = httpFilters(l, 'grpc');
  const filtersKey = JSON.stringify(filters);
  return [...hosts].map(([hostname, vh]) => hostOf(vh, hostname, filters, filtersKey));
}

/** One hostname's Listener (an api_listener) and RouteConfiguration. */
export function grpcHost(
  hostname: string,
  vh: IrVirtualHost,
  filters: readonly ProtoObject[],
  routeOf: (route: IrRoute) => TranslatedRoute,
): GrpcHost {
  const rdsName = grpcRouteConfigName(hostname);
  const listener: ResourceSpec = {
    typeUrl: TypeUrl.Listener,
    name: hostname,
    message: { name: hostname, apiListener: { apiListener: grpcHttpConnectionManager(rdsName, filters) } },
    deps: [],
    children: [routeConfigKey(rdsName)],
  };
  const rds = routeConfiguration(rdsName, [{ virtualHost: vh, domains: [hostname] }], 'grpc', routeOf);
  return { hostname, listener, routeConfiguration: rds };
}
