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

export type IrListenerProtocol = 'HTTP' | 'HTTPS';

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
  /** Virtual hosts, sorted by name. Request routing picks the most specific hostname first. */
  readonly virtualHosts: readonly IrVirtualHost[];
  /** For HTTPS listeners: the secrets (by IrSecret.name) served, chosen by SNI. */
  readonly tls?: IrListenerTls;
}

export interface IrListenerTls {
  readonly secretNames: readonly string[];
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

export type IrRouteAction = IrForwardAction | IrDirectResponseAction;

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
}

/** A fixed answer from Envoy itself, e.g. the 500 the Gateway API asks for when no backend is valid. */
export interface IrDirectResponseAction {
  readonly kind: 'directResponse';
  readonly status: number;
  readonly body?: string;
}

export interface IrWeightedBackend {
  /** IrBackend.name */
  readonly backend: string;
  readonly weight: number;
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

export type IrBackendProtocol = 'http1' | 'h2c';

/**
 * A pool of endpoints Envoy balances over: one Service port. Its name is stable
 * (`namespace/service/port`), never derived from a rule index, so moving rules never renames clusters.
 */
export interface IrBackend {
  readonly name: string;
  readonly protocol: IrBackendProtocol;
  /** Sorted by address then port. */
  readonly endpoints: readonly IrEndpoint[];
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
