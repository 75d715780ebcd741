import type { IrListener, IrRoute } from '../../model/ir.js';
import type { ProtoObject } from '../proto.js';
import type { XdsFlavor } from '../translate/flavor.js';
import { corsFilter } from './cors.js';
import type { HttpFilter, RouteActionFeature } from './httpFilter.js';
import { mirrorFeature } from './mirror.js';
import { retryFeature } from './retry.js';
import { rewriteFeature } from './rewrite.js';
import { routerFilter } from './router.js';
import { websocketFeature } from './websocket.js';

export type { HttpFilter, RouteActionFeature } from './httpFilter.js';

/**
 * The HTTP filter chain, in the order requests pass through it. This list is the only place that order
 * is decided; features do not register themselves. Rules for adding a filter:
 * - filters that reject requests (authorization, rate limits) go before filters that change them, so a
 *   rejected request costs as little as possible;
 * - CORS answers preflights itself, and must see them before anything that would reject an OPTIONS
 *   request without credentials: it comes first;
 * - the router is last: it ends the chain by sending the request upstream, and both Envoy and gRPC's
 *   xDS clients refuse a chain where it is anywhere else.
 */
export const httpFilterOrder: readonly HttpFilter[] = [corsFilter, routerFilter];

/**
 * The features a forwarding route's RouteAction carries (no HTTP filter involved). They set disjoint
 * fields, so their order does not matter; it is fixed here so that output is stable.
 */
export const routeActionFeatures: readonly RouteActionFeature[] = [
  rewriteFeature,
  mirrorFeature,
  retryFeature,
  websocketFeature,
];

/** The `http_filters` of an HTTP connection manager for `listener`, in chain order. */
export function httpFilters(listener: IrListener, flavor: XdsFlavor): ProtoObject[] {
  return httpFilterOrder
    .filter((f) => f.enabled(listener, flavor))
    .map((f) => ({ name: f.name, typedConfig: f.typedConfig(listener, flavor) }));
}

/** The RouteAction fields of every route-action feature a forwarding route uses. */
export function routeActionFields(route: IrRoute): ProtoObject {
  let out: ProtoObject = {};
  for (const f of routeActionFeatures) {
    const fields = f.routeAction(route);
    if (Object.keys(fields).length > 0) out = { ...out, ...fields };
  }
  return out;
}

/** A route's `typed_per_filter_config`: each filter's per-route configuration, keyed by filter name. */
export function perFilterConfig(route: IrRoute): ProtoObject | undefined {
  let out: Record<string, ProtoObject> | undefined;
  for (const f of httpFilterOrder) {
    const config = f.perRoute?.(route);
    if (config !== undefined) out = { ...out, [f.name]: config };
  }
  return out;
}
