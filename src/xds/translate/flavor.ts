/**
 * Which kind of xDS client a translation is for.
 * - `envoy`: a node-wide Envoy. Listeners bind sockets and carry an HTTP connection manager.
 * - `grpc`: proxyless gRPC clients (such as `@grpc/grpc-js-xds`). They ask for a Listener named after the
 *   target hostname, read an `api_listener`, and NACK a whole resource for any route feature they do not
 *   implement, so that flavour uses only the fields those clients support.
 */
export type XdsFlavor = 'envoy' | 'grpc';
