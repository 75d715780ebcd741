import type { IrListener } from '../../model/ir.js';
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
   * reject filters they do not implement, and a filter no route uses only costs time per request.
   */
  enabled(listener: IrListener, flavor: XdsFlavor): boolean;
  /** The `typed_config` of the filter, an Any written as `{ '@type': url, ...fields }`. */
  typedConfig(listener: IrListener, flavor: XdsFlavor): ProtoObject;
}
