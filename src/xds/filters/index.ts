import type { IrListener } from '../../model/ir.js';
import type { ProtoObject } from '../proto.js';
import type { XdsFlavor } from '../translate/flavor.js';
import type { HttpFilter } from './httpFilter.js';
import { routerFilter } from './router.js';

export type { HttpFilter } from './httpFilter.js';

/**
 * The HTTP filter chain, in the order requests pass through it. This list is the only place that order
 * is decided; features do not register themselves. Rules for adding a filter:
 * - filters that reject requests (authorization, rate limits) go before filters that change them, so a
 *   rejected request costs as little as possible;
 * - the router is last: it ends the chain by sending the request upstream, and both Envoy and gRPC's
 *   xDS clients refuse a chain where it is anywhere else.
 */
export const httpFilterOrder: readonly HttpFilter[] = [routerFilter];

/** The `http_filters` of an HTTP connection manager for `listener`, in chain order. */
export function httpFilters(listener: IrListener, flavor: XdsFlavor): ProtoObject[] {
  return httpFilterOrder
    .filter((f) => f.enabled(listener, flavor))
    .map((f) => ({ name: f.name, typedConfig: f.typedConfig(listener, flavor) }));
}
