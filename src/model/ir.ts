/**
 * The intermediate representation (IR): plain, serialisable data that every input (Gateway API, Ingress,
 * policy) translates into and every output (Envoy xDS, eBPF maps) reads from. It holds no Kubernetes and
 * no Envoy types, so a new input never touches Envoy code and a new output never touches Kubernetes code.
 *
 * Every list is sorted by `name` by the translators that build it, so the same input always yields the
 * same IR, byte for byte.
 */

/** The whole desired L7 state of one node (or node group). */
export interface Ir {
  readonly listeners: readonly IrListener[];
  readonly backends: readonly IrBackend[];
  readonly secrets: readonly IrSecret[];
}

/**
 * HTTP and HTTPS listeners route requests through virtual hosts. TLS, TCP and UDP listeners route whole
 * connections (or datagrams) through `l4Routes`: TLS by SNI (passthrough, or after terminating TLS),
 * TCP and UDP by port alone.
 */
export type IrListenerProtocol = 'HTTP' | 'HTTPS' | 'TLS' | 'TCP' | 'UDP';

/**
 * One socket Envoy binds: address + port. Gateway listeners that share a port are merged into one IR
 * listener with several virtual hosts, because the kernel allows one bind per address and port.
 */
export interface IrListener {
  /** Stable name, derived from address and port (see names.ts). */
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly protocol: IrListenerProtocol;
  /** HTTP/HTTPS: virtual hosts, sorted by name. Request routing picks the most specific hostname first. */
  readonly virtualHosts: readonly IrVirtualHost[];
  /** HTTPS, and TLS listeners that terminate: the certificates served, chosen by SNI. */
  readonly tls?: IrListenerTls;
  /** TLS, TCP and UDP listeners: where connections go. Sorted by name. */
  readonly l4Routes?: readonly IrL4Route[];
  /**
   * The node proxy's transparent listener, the target of the policy datapath's L7 redirect (HTTP only).
   * Bound to the wildcard address with IP_TRANSPARENT; the datapath hands it flows without rewriting
   * them, so each accepted connection's local address is the destination the client asked for, and its
   * peer the client itself. Its routes forward to the originalDestination backend.
   */
  readonly transparent?: boolean;
}

export interface IrListenerTls {
  /** Terminate: Envoy ends TLS with `certificates`. Passthrough (TLS listeners only): routed by SNI, untouched. */
  readonly mode: 'Terminate' | 'Passthrough';
  /**
   * Certificate sets by SNI: a connection whose server name matches one of a set's hostnames (exact or
   * `*.` wildcard) gets that set's certificates. A set with no hostnames serves any other name. Several
   * secrets in one set let Envoy pick by key type (RSA, ECDSA). Empty for Passthrough.
   */
  readonly certificates: readonly IrCertificateSet[];
}

export interface IrCertificateSet {
  readonly hostnames: readonly string[];
  /** IrSecret names. */
  readonly secretNames: readonly string[];
}

/** A connection-level route: TLSRoute (by SNI), TCPRoute, UDPRoute. */
export interface IrL4Route {
  /** Stable name pointing back at the source object, e.g. `tcproute/default/db/rule/0`. */
  readonly name: string;
  /** TLS listeners: the server names this route takes (exact or `*.` wildcard); empty: any. */
  readonly hostnames: readonly string[];
  /** Weighted backends. Empty: no valid backend, so connections are closed (datagrams dropped). */
  readonly backends: readonly IrWeightedBackend[];
  /**
   * The share of connections (datagrams), in the units of the backend weights, that would have gone to
   * backends that do not resolve: refused (dropped), as the Gateway API asks, never shifted to the valid
   * backends. Absent when every backend resolved.
   */
  readonly invalidBackendWeight?: number;
}

export interface IrVirtualHost {
  readonly name: string;
  /** Hostnames this virtual host serves; `*` for any, `*.example.com` for a wildcard suffix. */
  readonly hostnames: readonly string[];
  /** Routes in match precedence order (first match wins). */
  readonly routes: readonly IrRoute[];
}

export interface IrRoute {
  /** Stable name that points back at the source object, e.g. `httproute/default/web/rule/0/match/0`. */
  readonly name: string;
  readonly match: IrMatch;
  readonly action: IrRouteAction;
  /** Header changes applied on the way in and out. */
  readonly requestHeaders?: IrHeaderMutation;
  readonly responseHeaders?: IrHeaderMutation;
  readonly timeouts?: IrTimeouts;
  /** Changes to the request before it is forwarded (forward actions only). */
  readonly rewrite?: IrRewrite;
  /** Copies of the request sent to other backends; their answers are ignored. */
  readonly mirrors?: readonly IrMirror[];
  readonly cors?: IrCors;
  readonly retry?: IrRetry;
  /** Allow protocol upgrades (WebSocket) on this route. */
  readonly websocket?: boolean;
}

/** How a path is changed: replace it whole, or replace the part the route's PathPrefix matched. */
export type IrPathModifier =
  | { readonly kind: 'ReplaceFullPath'; readonly value: string }
  | { readonly kind: 'ReplacePrefixMatch'; readonly value: string };

export interface IrRewrite {
  readonly hostname?: string;
  readonly path?: IrPathModifier;
}

export interface IrMirror {
  /** IrBackend.name */
  readonly backend: string;
  /** Share of requests mirrored, 0..100 (fractions allowed). Absent: all. */
  readonly percent?: number;
}

export interface IrCors {
  /** `*`, an exact origin (`https://a.example.com`) or one with a wildcard host label (`https://*.example.com`). */
  readonly allowOrigins: readonly string[];
  readonly allowMethods: readonly string[];
  readonly allowHeaders: readonly string[];
  readonly exposeHeaders: readonly string[];
  readonly allowCredentials: boolean;
  readonly maxAgeSeconds?: number;
}

export interface IrRetry {
  /** Retries after the first try. */
  readonly attempts: number;
  /** Base backoff between tries. */
  readonly backoffMs?: number;
  /** Upstream HTTP status codes that are retried (connection failures always are). */
  readonly statusCodes: readonly number[];
}

export type IrPathMatch =
  | { readonly kind: 'Exact'; readonly value: string }
  /** Segment-wise: `/v2` matches `/v2` and `/v2/x`, never `/v2example`. */
  | { readonly kind: 'PathPrefix'; readonly value: string }
  | { readonly kind: 'RegularExpression'; readonly value: string };

export interface IrStringMatch {
  readonly name: string;
  readonly kind: 'Exact' | 'RegularExpression';
  readonly value: string;
}

export interface IrMatch {
  readonly path: IrPathMatch;
  readonly headers?: readonly IrStringMatch[];
  readonly queryParams?: readonly IrStringMatch[];
  readonly method?: string;
}

export type IrRouteAction = IrForwardAction | IrDirectResponseAction | IrRedirectAction;

export interface IrForwardAction {
  readonly kind: 'forward';
  /** Weighted backends; weights are relative. An empty list is not allowed (use a direct response). */
  readonly backends: readonly IrWeightedBackend[];
  /**
   * The share of requests (in the same units as the backend weights) that would have gone to backends
   * that do not resolve. The Gateway API asks for those requests to get a 500, so an invalid backend
   * never silently shifts its traffic to the valid ones. Absent when every backend resolved.
   */
  readonly invalidBackendWeight?: number;
  /**
   * The HTTP status that share gets: absent, 500 (HTTPRoute); 503 for GRPCRoute rules, which a gRPC
   * client sees as UNAVAILABLE, the status the GRPCRoute spec asks for.
   */
  readonly invalidBackendStatus?: 500 | 503;
}

/** A fixed answer from Envoy itself, e.g. the 500 the Gateway API asks for when no backend is valid. */
export interface IrDirectResponseAction {
  readonly kind: 'directResponse';
  readonly status: number;
  readonly body?: string;
}

/**
 * An HTTP redirect answered by Envoy itself. Absent parts keep the request's own: its scheme, its Host,
 * its path. An absent `port` is the port the request came in on, i.e. its listener's (the Gateway API's
 * rule when neither port nor scheme is given); the output writes it into Location only where needed (a
 * new hostname on a non-default port). A default port (http 80, https 443) is left out of Location.
 */
export interface IrRedirectAction {
  readonly kind: 'redirect';
  readonly scheme?: 'http' | 'https';
  readonly hostname?: string;
  readonly port?: number;
  readonly path?: IrPathModifier;
  readonly statusCode: 301 | 302 | 303 | 307 | 308;
}

export interface IrWeightedBackend {
  /** IrBackend.name */
  readonly backend: string;
  readonly weight: number;
  /** Header changes for requests sent to this backend only (per-backendRef filters). */
  readonly requestHeaders?: IrHeaderMutation;
  readonly responseHeaders?: IrHeaderMutation;
}

export interface IrHeaderMutation {
  readonly set?: readonly IrHeader[];
  readonly add?: readonly IrHeader[];
  readonly remove?: readonly string[];
}

export interface IrHeader {
  readonly name: string;
  readonly value: string;
}

export interface IrTimeouts {
  /** Whole request, client to gateway and back. */
  readonly requestMs?: number;
  /** One try to the backend. */
  readonly backendRequestMs?: number;
}

/**
 * How Envoy speaks to a backend: HTTP/1.1, cleartext HTTP/2 (gRPC), or raw bytes (TCP, UDP; set for
 * backends of L4 routes). WebSocket is HTTP/1.1 plus an upgrade, allowed per route (IrRoute.websocket).
 */
export type IrBackendProtocol = 'http1' | 'h2c' | 'tcp' | 'udp';

/**
 * A pool of endpoints Envoy balances over: one Service port. Its name is stable
 * (`namespace/service/port`), never derived from a rule index, so moving rules never renames clusters.
 */
export interface IrBackend {
  readonly name: string;
  readonly protocol: IrBackendProtocol;
  /** Sorted by address then port. */
  readonly endpoints: readonly IrEndpoint[];
  /** TLS from Envoy to the backend (BackendTLSPolicy). */
  readonly tls?: IrUpstreamTls;
  /**
   * Not a pool: every request goes to the original destination of its downstream connection (the local
   * address a transparent listener accepted it on). Named ORIGINAL_DESTINATION_BACKEND (names.ts); no
   * endpoints, no TLS, used only by routes of transparent listeners.
   */
  readonly originalDestination?: IrOriginalDestination;
}

export interface IrOriginalDestination {
  /**
   * SO_MARK of the upstream connections: the policy datapath lets the proxy's own connections into the
   * pod whose ingress it already decided before the redirect. Absent: no mark.
   */
  readonly upstreamMark?: number;
}

export interface IrUpstreamTls {
  /** SNI sent, and the name the certificate must carry unless subjectAltNames says otherwise. */
  readonly sni: string;
  /** PEM bundle of trusted CAs, or `system` for the platform's trust store. */
  readonly trust: { readonly kind: 'pem'; readonly pem: string } | { readonly kind: 'system' };
  /** Accepted names in the backend certificate; empty: `sni` (as a DNS name). */
  readonly subjectAltNames: readonly { readonly kind: 'Hostname' | 'URI'; readonly value: string }[];
}

export interface IrEndpoint {
  readonly address: string;
  readonly port: number;
  /** Whether the endpoint takes new traffic (EndpointSlice `ready`). */
  readonly ready: boolean;
}

/** A TLS certificate and key, delivered to Envoy over SDS; never written to disk. */
export interface IrSecret {
  readonly name: string;
  readonly certificateChain: string;
  readonly privateKey: string;
}

export const emptyIr: Ir = { listeners: [], backends: [], secrets: [] };
