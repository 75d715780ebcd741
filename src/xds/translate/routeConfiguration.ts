import type { IrRoute, IrVirtualHost } from '../../model/ir.js';
import { ORIGINAL_DESTINATION_BACKEND } from '../../model/names.js';
import { TypeUrl } from '../proto.js';
import type { ResourceKey, ResourceSpec } from '../resource.js';
import type { XdsFlavor } from './flavor.js';
import { clusterKey, endpointsKey } from './protoValues.js';
import { type TranslatedRoute, translateRoute } from './route.js';

/** A virtual host as the route configuration builder takes it: IR routes under the given domains. */
export interface VirtualHostInput {
  readonly virtualHost: IrVirtualHost;
  readonly domains: readonly string[];
}

/**
 * One `config.route.v3.RouteConfiguration`. Its deps are every cluster its routes send to and that
 * cluster's endpoints: a route must never reach the client before the cluster it names (a route to an
 * unknown cluster answers 503), and a cluster without its endpoints has no hosts yet.
 *
 * `routeOf` translates one IR route; a memoising one (see translate.ts) makes unchanged routes the same
 * message objects as before, which the encoder then neither stringifies nor encodes again.
 */
export function routeConfiguration(
  name: string,
  virtualHosts: readonly VirtualHostInput[],
  flavor: XdsFlavor,
  routeOf: (route: IrRoute) => TranslatedRoute = (r) => translateRoute(r, flavor),
): ResourceSpec {
  const clusters = new Set<string>();
  const vhosts = virtualHosts.map(({ virtualHost, domains }) => {
    const routes = virtualHost.routes.flatMap((r) => {
      const t = routeOf(r);
      for (const c of t.clusters) clusters.add(c);
      return t.routes;
    });
    return { name: virtualHost.name, domains, ...(routes.length > 0 ? { routes } : {}) };
  });
  const message = {
    name,
    ...(vhosts.length > 0 ? { virtualHosts: vhosts } : {}),
    // The Gateway API matches the Host header without its port; Envoy would otherwise compare
    // `example.com:8080` with `example.com` and miss. Proxyless clients match the target name only.
    ...(flavor === 'envoy' ? { ignorePortInHostMatching: true } : {}),
  };
  return { typeUrl: TypeUrl.RouteConfiguration, name, message, deps: clusterDeps(clusters), children: [] };
}

/**
 * The domains of each IR virtual host, for one Envoy route configuration. Envoy rejects a route
 * configuration in which two virtual hosts share a domain, which would take down every route of the
 * listener; the IR should never hold such a pair, but if it does the first virtual host keeps the domain
 * (the IR lists them by name, so this is stable). A virtual host left without domains is unreachable and
 * is dropped, since Envoy requires at least one.
 */
export function envoyVirtualHosts(virtualHosts: readonly IrVirtualHost[]): VirtualHostInput[] {
  const taken = new Set<string>();
  const out: VirtualHostInput[] = [];
  for (const vh of virtualHosts) {
    const domains: string[] = [];
    for (const h of vh.hostnames) {
      // Envoy matches domains case-insensitively, so `A.example` and `a.example` are the same domain.
      const key = h.toLowerCase();
      if (taken.has(key)) continue;
      taken.add(key);
      domains.push(h);
    }
    if (domains.length > 0) out.push({ virtualHost: vh, domains });
  }
  return out;
}

/**
 * Cluster then endpoints for each name, sorted by name so that equal inputs give equal deps. The
 * original-destination cluster has no endpoints resource (its hosts are the connections' own).
 */
function clusterDeps(names: Iterable<string>): ResourceKey[] {
  return [...names]
    .sort(compareStrings)
    .flatMap((n) =>
      n === ORIGINAL_DESTINATION_BACKEND ? [clusterKey(n)] : [clusterKey(n), endpointsKey(n)],
    );
}

/** Code-unit order: the same everywhere, unlike `localeCompare`. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
