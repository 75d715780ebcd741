import { ExtensionType } from '../proto.js';
import type { HttpFilter } from './httpFilter.js';

/**
 * The router: picks the route and forwards to its cluster (or answers a direct response). It terminates
 * the chain, so it is always present and always last. Both Envoy and gRPC's xDS clients require it.
 */
export const routerFilter: HttpFilter = {
  name: 'envoy.filters.http.router',
  enabled: () => true,
  typedConfig: () => ({ '@type': ExtensionType.Router }),
};
