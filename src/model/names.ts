import { isIP } from 'node:net';

/**
 * Stable names for IR objects, one helper each. Every translator (Gateway API, Ingress, Envoy) builds
 * names only through these helpers, so the scheme lives in one place.
 *
 * The scheme: names are derived from what an object *is* (a Service port, an address and port, a source
 * object and its position), never from where it happens to sit in a list. In particular backends are
 * named by `namespace/service/port` and never by a rule index: index names rename Envoy clusters whenever
 * rules move, and a route that points at a cluster Envoy has not received yet answers 503.
 *
 * Names use `/` as the separator because none of their parts can contain one (Kubernetes names,
 * hostnames, IP addresses and numbers).
 */

/**
 * One Service port as a pool of endpoints: `namespace/service/port`. The same port spoken another way
 * than its own appProtocol says (a GRPCRoute's h2c to a port without `kubernetes.io/h2c`, the raw bytes
 * of a TCPRoute or TLSRoute, the datagrams of a UDP port) is another pool, named with that protocol
 * after it: `namespace/service/port/h2c`, `.../tcp`, `.../udp`. So one Service port referenced by an
 * HTTPRoute and a TCPRoute yields two clusters, each configured for its protocol.
 */
export function backendName(namespace: string, service: string, port: number, protocol?: string): string {
  return protocol === undefined
    ? `${namespace}/${service}/${port}`
    : `${namespace}/${service}/${port}/${protocol}`;
}

/**
 * One bound socket: `listener/0.0.0.0/8080`; IPv6 addresses are bracketed, `listener/[::1]/8080`, so the
 * address's colons cannot be mistaken for the port separator when the name is read back. A UDP socket
 * is another socket than the TCP one on the same address and port (the kernel binds them apart), so
 * it is named with `/udp` after it: `listener/0.0.0.0/53/udp`.
 */
export function listenerName(address: string, port: number, transport: 'tcp' | 'udp' = 'tcp'): string {
  const host = isIP(address) === 6 ? `[${address}]` : address;
  return transport === 'udp' ? `listener/${host}/${port}/udp` : `listener/${host}/${port}`;
}

/** The RDS route configuration of a listener has the listener's name: there is exactly one per listener. */
export function routeConfigName(listener: string): string {
  return listener;
}

/** One hostname (`*`, `*.example.com`, `www.example.com`) on one listener: `${listener}/${hostname}`. */
export function virtualHostName(listener: string, hostname: string): string {
  return `${listener}/${hostname}`;
}

/** A TLS certificate from a Secret: `namespace/name`. */
export function secretName(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/**
 * One match of one rule of a route object: `httproute/ns/name/rule/0/match/0`. The kind is lower-cased
 * so names read the same whatever the caller passes (`HTTPRoute` or `httproute`).
 */
export function routeName(
  kind: string,
  namespace: string,
  name: string,
  rule: number,
  match: number,
): string {
  return `${kind.toLowerCase()}/${namespace}/${name}/rule/${rule}/match/${match}`;
}

/**
 * One rule of a connection-level route object (TLSRoute, TCPRoute, UDPRoute), which has no matches:
 * `tcproute/ns/name/rule/0`.
 */
export function l4RouteName(kind: string, namespace: string, name: string, rule: number): string {
  return `${kind.toLowerCase()}/${namespace}/${name}/rule/${rule}`;
}

/**
 * A route an Ingress makes besides its paths: `ingress/ns/name/default-backend` (its spec.defaultBackend)
 * and `ingress/ns/name/tls-unavailable` (the 503 for hosts whose TLS Secret is missing or invalid). Its
 * paths are named with routeName (`ingress/ns/name/rule/0/match/1`: rule 0, path 1).
 */
export function ingressRouteName(
  namespace: string,
  name: string,
  what: 'default-backend' | 'tls-unavailable',
): string {
  return `ingress/${namespace}/${name}/${what}`;
}

/**
 * The one backend that is not a Service port: the original destination of a transparent listener's
 * connection (IrBackend.originalDestination). The colon cannot occur in a `namespace/service/port` name.
 */
export const ORIGINAL_DESTINATION_BACKEND = 'skein:original-destination';

/** The route of a transparent listener that forwards every request to its original destination. */
export function proxyRouteName(listener: string): string {
  return `proxy/${listener}/original-destination`;
}
