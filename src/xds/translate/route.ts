import type {
  IrDirectResponseAction,
  IrForwardAction,
  IrHeader,
  IrHeaderMutation,
  IrMatch,
  IrPathMatch,
  IrRoute,
  IrStringMatch,
  IrTimeouts,
} from '../../model/ir.js';
import { perFilterConfig, routeActionFields } from '../filters/index.js';
import { mirrorClusters } from '../filters/mirror.js';
import { type ListenerContext, redirectAction } from '../filters/redirect.js';
import { hostRewrite } from '../filters/rewrite.js';
import type { ProtoObject } from '../proto.js';
import type { XdsFlavor } from './flavor.js';
import { durationMs, wrapped } from './protoValues.js';

export type { ListenerContext } from '../filters/redirect.js';

/**
 * IR routes → Envoy `config.route.v3.Route`s. Pure: the output depends on the route alone, and clusters
 * are referred to by name (IrBackend.name is the cluster name), so a changed backend never re-translates
 * the routes that use it.
 */

/**
 * The cluster a gRPC-flavour route uses where Envoy would answer with a direct response. gRPC's xDS
 * clients only implement the `route` action and NACK the whole RouteConfiguration for any other, and
 * dropping the route would let its requests fall through to a later route. A cluster without endpoints
 * fails each such call with UNAVAILABLE, the status the Gateway API asks of a GRPCRoute whose backends
 * are all invalid. The colon cannot occur in a `namespace/service/port` backend name, so it never
 * collides with one.
 */
export const UNAVAILABLE_CLUSTER = 'skein:unavailable';

/**
 * The share of a weighted route that belongs to backends that did not resolve (the IR's
 * `invalidBackendWeight`) goes, in the Envoy flavour, to this cluster, which is deliberately never
 * defined: Envoy answers a request routed to an unknown cluster with the route's
 * `cluster_not_found_response_code`, set to the IR's `invalidBackendStatus`: 500 as the Gateway API
 * asks of HTTPRoutes, 503 for GRPCRoutes (which a gRPC client sees as UNAVAILABLE). RDS does not check
 * that clusters exist, and the name is in no deps, so nothing waits for it. tcp_proxy closes a
 * connection to it (see l4Listener.ts).
 */
export const INVALID_BACKEND_CLUSTER = 'skein:invalid-backend';

export interface TranslatedRoute {
  /** Zero or more Envoy routes, in match precedence order (the gRPC flavour may split or drop one). */
  readonly routes: readonly ProtoObject[];
  /** Names of the clusters the routes send to; the route configuration depends on them. */
  readonly clusters: readonly string[];
}

/**
 * One IR route for one flavour. `listener` is the socket the route is served on (Envoy flavour), which
 * only redirects depend on (see redirectAction); a route translated without one keeps Envoy's defaults.
 */
export function translateRoute(
  route: IrRoute,
  flavor: XdsFlavor,
  listener?: ListenerContext,
): TranslatedRoute {
  return flavor === 'envoy' ? envoyRoute(route, listener) : grpcRoute(route);
}

/** Whether a route's translation depends on its listener (so it cannot be shared across listeners). */
export function dependsOnListener(route: IrRoute): boolean {
  return route.action.kind === 'redirect';
}

// ---------------------------------------------------------------------------------------------------
// Envoy

function envoyRoute(r: IrRoute, listener: ListenerContext | undefined): TranslatedRoute {
  const backends = r.action.kind === 'forward' ? liveBackends(r.action) : [];
  const invalidWeight = r.action.kind === 'forward' ? (r.action.invalidBackendWeight ?? 0) : 0;
  let action: ProtoObject;
  let clusters: string[] = [];
  if (r.action.kind === 'directResponse') {
    action = { directResponse: directResponse(r.action) };
  } else if (r.action.kind === 'redirect') {
    action = { redirect: redirectAction(r.action, r.match.path, listener) };
  } else if (backends.length === 0) {
    // No valid backend takes traffic (all invalid, or every weight 0): the Gateway API's 500.
    action = { directResponse: directResponse({ kind: 'directResponse', status: 500 }) };
  } else {
    const invalid = invalidWeight > 0 ? [{ backend: INVALID_BACKEND_CLUSTER, weight: invalidWeight }] : [];
    action = {
      route: {
        ...clusterSpecifier([...backends, ...invalid]),
        ...(invalid.length > 0 ? { clusterNotFoundResponseCode: notFoundCode(r.action) } : {}),
        ...envoyTimeouts(r.timeouts),
        ...routeActionFields(r),
      },
    };
    clusters = [...new Set([...backends.map((b) => b.backend), ...mirrorClusters(r)])];
  }
  const typedPerFilterConfig = r.action.kind === 'forward' ? perFilterConfig(r) : undefined;
  const route = {
    name: r.name,
    match: envoyMatch(r.match),
    ...action,
    ...(typedPerFilterConfig === undefined ? {} : { typedPerFilterConfig }),
    ...headerMutations('request', r.requestHeaders),
    ...headerMutations('response', r.responseHeaders),
  };
  return { routes: [route], clusters };
}

/** The route's `cluster_not_found_response_code` for its invalid share (Envoy knows 500, 503 and 404). */
function notFoundCode(a: IrForwardAction): string {
  return a.invalidBackendStatus === 503 ? 'SERVICE_UNAVAILABLE' : 'INTERNAL_SERVER_ERROR';
}

function envoyMatch(m: IrMatch): ProtoObject {
  const headers = (m.headers ?? []).map((h) => ({ name: h.name, stringMatch: stringMatch(h) }));
  // The method is the `:method` pseudo-header; Envoy matches pseudo-headers like any other header.
  if (m.method !== undefined) headers.push({ name: ':method', stringMatch: { exact: m.method } });
  const queryParameters = (m.queryParams ?? []).map((q) => ({ name: q.name, stringMatch: stringMatch(q) }));
  return {
    ...envoyPathMatch(m.path),
    ...(headers.length > 0 ? { headers } : {}),
    ...(queryParameters.length > 0 ? { queryParameters } : {}),
  };
}

/**
 * Envoy matches `path`, `path_separated_prefix` and `safe_regex` against the path without its query
 * string, case-sensitively, as the Gateway API asks; `safe_regex` must match the whole path.
 */
function envoyPathMatch(p: IrPathMatch): ProtoObject {
  switch (p.kind) {
    case 'Exact':
      return { path: p.value };
    case 'PathPrefix': {
      // `path_separated_prefix` is exactly the Gateway API's segment-wise prefix (`/v2` matches `/v2`
      // and `/v2/x`, never `/v2x`). Envoy rejects it with a trailing slash, and the Gateway API ignores
      // one (`/v2/` matches `/v2`), so it is stripped; what is left of `/` is the plain prefix `/`.
      const prefix = withoutTrailingSlashes(p.value);
      return prefix === '' ? { prefix: '/' } : { pathSeparatedPrefix: prefix };
    }
    case 'RegularExpression':
      return { safeRegex: { regex: p.value } };
  }
}

/**
 * `timeouts.request` → `route.timeout`: Envoy's whole-request budget, covering every try. Envoy starts
 * it once the downstream request is complete, and 0 disables it, as 0 does in the Gateway API. When the
 * IR sets none, Envoy's default (15 s) stays, unless a budget per try is set: then the route timeout is
 * disabled so that each try gets its full budget (the tries bound the request).
 *
 * `timeouts.backendRequest` is the per-try timeout of the retry policy (see filters/retry.ts).
 */
function envoyTimeouts(t: IrTimeouts | undefined): ProtoObject {
  const { requestMs, backendRequestMs } = t ?? {};
  if (requestMs !== undefined) return { timeout: durationMs(requestMs) };
  if (backendRequestMs !== undefined && backendRequestMs > 0) return { timeout: durationMs(0) };
  return {};
}

/**
 * `set` overwrites the header (or adds it), `add` appends another value (or adds it); removals apply
 * before additions in Envoy, as in the Gateway API.
 *
 * Envoy refuses to touch pseudo-headers and `host` through these lists, and rejects the whole
 * RouteConfiguration if asked to, which would take down every route of the listener. Setting `host`
 * is a host rewrite (see hostRewrite); any other change to those headers has no meaning for a proxy
 * (a request has exactly one Host and one path) and is left out rather than emit an unloadable config.
 */
function headerMutations(direction: 'request' | 'response', m: IrHeaderMutation | undefined): ProtoObject {
  if (m === undefined) return {};
  const option = (appendAction: string) => (h: IrHeader) => ({
    header: { key: h.name, value: h.value },
    appendAction,
  });
  const toAdd = [
    ...(m.set ?? []).filter((h) => modifiable(h.name)).map(option('OVERWRITE_IF_EXISTS_OR_ADD')),
    ...(m.add ?? []).filter((h) => modifiable(h.name)).map(option('APPEND_IF_EXISTS_OR_ADD')),
  ];
  const toRemove = (m.remove ?? []).filter(modifiable);
  return {
    ...(toAdd.length > 0 ? { [`${direction}HeadersToAdd`]: toAdd } : {}),
    ...(toRemove.length > 0 ? { [`${direction}HeadersToRemove`]: toRemove } : {}),
  };
}

/** Whether Envoy lets route configuration add, overwrite or remove this header. */
export function modifiable(header: string): boolean {
  return !header.startsWith(':') && header.toLowerCase() !== 'host';
}

function directResponse(a: IrDirectResponseAction): ProtoObject {
  return { status: a.status, ...(a.body !== undefined ? { body: { inlineString: a.body } } : {}) };
}

// ---------------------------------------------------------------------------------------------------
// Proxyless gRPC (what @grpc/grpc-js-xds implements; gRFC A28 and A31)

function grpcRoute(r: IrRoute): TranslatedRoute {
  const m = r.match;
  // A gRPC call has no query string. grpc-js-xds ignores `query_parameters`, so emitting the route
  // would match calls that the IR says must not match: the route can never match, so it is dropped.
  if ((m.queryParams ?? []).length > 0) return { routes: [], clusters: [] };
  // Every gRPC call is a POST, and the clients do not expose `:method` to header matchers: a POST
  // condition always holds and is left out, any other method never holds and drops the route.
  if (m.method !== undefined && m.method !== 'POST') return { routes: [], clusters: [] };

  const headers = (m.headers ?? []).map((h) => ({ name: h.name, stringMatch: stringMatch(h) }));
  const withHeaders = headers.length > 0 ? { headers } : {};

  let action: ProtoObject;
  let clusters: string[];
  const backends = r.action.kind === 'forward' ? liveBackends(r.action, false) : [];
  const invalidWeight = r.action.kind === 'forward' ? (r.action.invalidBackendWeight ?? 0) : 0;
  if (backends.length === 0) {
    // A direct response or redirect, or no valid backend takes traffic: fail the call (see
    // UNAVAILABLE_CLUSTER).
    action = { cluster: UNAVAILABLE_CLUSTER };
    clusters = [UNAVAILABLE_CLUSTER];
  } else {
    // The share of invalid backends fails with UNAVAILABLE, as the Gateway API asks of a GRPCRoute.
    const invalid = invalidWeight > 0 ? [{ backend: UNAVAILABLE_CLUSTER, weight: invalidWeight }] : [];
    action = { ...clusterSpecifier([...backends, ...invalid]), ...grpcTimeouts(r.timeouts) };
    clusters = [...backends, ...invalid].map((b) => b.backend);
  }
  // Header mutations (per-backend ones too), per-try timeouts, rewrites, mirrors and upgrades are not
  // implemented by proxyless clients, which ignore them; retries name HTTP statuses, which gRPC calls do
  // not answer with; CORS is for browsers. All are left out so that what is sent is what takes effect.
  // A redirect cannot be followed by a gRPC client: like a direct response, it fails the call.
  const routes = grpcPathMatches(m.path).map((path) => ({
    name: r.name,
    match: { ...path, ...withHeaders },
    route: action,
  }));
  return { routes, clusters };
}

/**
 * grpc-js-xds knows `prefix`, `path` and `safe_regex` (full match, like Envoy), not
 * `path_separated_prefix`. A segment-wise prefix `/p` is the exact path `/p` or the plain prefix `/p/`,
 * so it becomes two routes with the same action; their matches are disjoint, so their order is free.
 */
function grpcPathMatches(p: IrPathMatch): ProtoObject[] {
  switch (p.kind) {
    case 'Exact':
      return [{ path: p.value }];
    case 'PathPrefix': {
      const prefix = withoutTrailingSlashes(p.value);
      return prefix === '' ? [{ prefix: '/' }] : [{ path: prefix }, { prefix: `${prefix}/` }];
    }
    case 'RegularExpression':
      return [{ safeRegex: { regex: p.value } }];
  }
}

/**
 * gRPC clients take their deadline from `max_stream_duration` (gRFC A31): the call's own deadline
 * is capped by it, and 0 means no cap, as `timeouts.request` of 0 means no timeout.
 */
function grpcTimeouts(t: IrTimeouts | undefined): ProtoObject {
  if (t?.requestMs === undefined) return {};
  return { maxStreamDuration: { maxStreamDuration: durationMs(t.requestMs) } };
}

// ---------------------------------------------------------------------------------------------------
// Shared

function stringMatch(m: IrStringMatch): ProtoObject {
  return m.kind === 'Exact' ? { exact: m.value } : { safeRegex: { regex: m.value } };
}

interface LiveBackend {
  readonly backend: string;
  readonly weight: number;
  /** Per-backend header changes (Envoy flavour). */
  readonly requestHeaders?: IrHeaderMutation;
  readonly responseHeaders?: IrHeaderMutation;
}

/**
 * The backends that take traffic: weight 0 means none (a Gateway API backendRef of weight 0), and a
 * backend listed twice with the same per-backend header changes gets the sum of its weights, as two
 * entries would send it that share. (With different header changes the two stay apart.) The gRPC
 * flavour passes `perBackendHeaders` false: proxyless clients do not change headers.
 */
function liveBackends(a: IrForwardAction, perBackendHeaders = true): LiveBackend[] {
  const byKey = new Map<string, LiveBackend>();
  for (const b of a.backends) {
    if (b.weight <= 0) continue;
    const extra = !perBackendHeaders
      ? {}
      : {
          ...(b.requestHeaders === undefined ? {} : { requestHeaders: b.requestHeaders }),
          ...(b.responseHeaders === undefined ? {} : { responseHeaders: b.responseHeaders }),
        };
    const key = `${b.backend}\0${JSON.stringify(extra)}`;
    const seen = byKey.get(key);
    byKey.set(key, { backend: b.backend, weight: (seen?.weight ?? 0) + b.weight, ...extra });
  }
  return [...byKey.values()];
}

/**
 * One backend: `cluster`; several, or any with its own header changes: `weighted_clusters` with relative
 * weights (no total needed), each entry carrying its backend's header changes (Envoy applies those before
 * the route's own), its Host rewrite included.
 */
function clusterSpecifier(backends: readonly LiveBackend[]): ProtoObject {
  const [only] = backends;
  const perBackend = backends.some((b) => b.requestHeaders !== undefined || b.responseHeaders !== undefined);
  if (backends.length === 1 && only !== undefined && !perBackend) return { cluster: only.backend };
  return {
    weightedClusters: {
      clusters: backends.map((b) => ({
        name: b.backend,
        weight: wrapped(b.weight),
        ...headerMutations('request', b.requestHeaders),
        ...headerMutations('response', b.responseHeaders),
        ...hostRewrite(undefined, b.requestHeaders),
      })),
    },
  };
}

function withoutTrailingSlashes(path: string): string {
  return path.replace(/\/+$/, '');
}
