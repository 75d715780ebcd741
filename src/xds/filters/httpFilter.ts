import type { IrListener, IrRoute } from '../../model/ir.js';
import type { ProtoObject } from '../proto.js';
import type { XdsFlavor } from '../translate/flavor.js';

/**
 * One HTTP filter feature. A feature decides whether a listener needs it and what its filter entry is;
 * features that also touch routes or add resources grow those hooks here when the first one needs them.
 * The order of the chain is not up to a feature: it lives in one list in index.ts.
 */
export interface HttpFilter {
  /** The filter's name in the chain; unique within it. */
  readonly name: string;
  /**
   * Whether the filter goes into the chain of this listener for this flavour. Proxyless gRPC clients
   * reject filters they do not implement, and a filter no route uses only costs time per request; but a
   * filter that comes and goes with routes makes route edits listener updates, which drain connections.
   */
  enabled(listener: IrListener, flavor: XdsFlavor): boolean;
  /** The `typed_config` of the filter, an Any written as `{ '@type': url, ...fields }`. */
  typedConfig(listener: IrListener, flavor: XdsFlavor): ProtoObject;
  /**
   * The filter's configuration for one route (Envoy flavour), an Any for the route's
   * `typed_per_filter_config` under the filter's name; undefined when the route needs none.
   */
  perRoute?(route: IrRoute): ProtoObject | undefined;
}

/**
 * A feature of forwarding routes that Envoy implements in the route action itself, without an HTTP
 * filter (rewrites, mirrors, retries, upgrades). It returns the RouteAction fields it sets, `{}` when the
 * route does not use it. Features set disjoint fields, so their results are merged as they are; the
 * list is in index.ts.
 */
export interface RouteActionFeature {
  readonly name: string;
  routeAction(route: IrRoute): ProtoObject;
}
