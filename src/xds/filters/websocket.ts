import type { RouteActionFeature } from './httpFilter.js';

/**
 * WebSocket (IrRoute.websocket): the route lets a request upgrade its connection. Envoy allows an
 * upgrade on a route that lists it even when the connection manager does not, and answers 403 to an
 * upgrade on any other route; so only the routes to WebSocket backends carry it.
 */
export const websocketFeature: RouteActionFeature = {
  name: 'websocket',
  routeAction: (r) => (r.websocket === true ? { upgradeConfigs: [{ upgradeType: 'websocket' }] } : {}),
};
