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
import type { ProtoObject } from '../proto.js';
import type { XdsFlavor } from './flavor.js';
import { durationMs, wrapped } from './protoValues.js';

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
 * `cluster_not_found_response_code`, set to 500 as the Gateway API asks. RDS does not check that
 * clusters exist, and the name is in no deps, so nothing waits for it.
 */
export const INVALID_BACKEND_CLUSTER = 'skein:invalid-backend';

export interface TranslatedRoute {
  /** Zero or more Envoy routes, in match precedence order (the gRPC flavour may split or drop one). */
  readonly routes: readonly ProtoObject[];
  /** Names of the clusters the routes send to; the route configuration depends on them. */
  readonly clusters: readonly string[];
}

export function translateRoute(route: IrRoute, flavor: XdsFlavor): TranslatedRoute {
  return flavor === 'envoy' ? envoyRoute(route) : grpcRoute(route);
}

// ---------------------------------------------------------------------------------------------------
// Envoy

function envoyRoute(r: IrRoute): TranslatedRoute {
  const backends = r.action.kind === 'forward' ? liveBackends(r.action) : [];
  const invalidWeight = r.action.kind === 'forward' ? (r.action.invalidBackendWeight ?? 0) : 0;
  let action: ProtoObject;
  if (r.action.kind === 'directResponse') {
    action = { directResponse: directResponse(r.action) };
  } else if (backends.length === 0) {
    // No valid backend takes traffic (all invalid, or every weight 0): the Gateway API's 500.
    action = { directResponse: directResponse({ kind: 'directResponse', status: 500 }) };
  } else {
    const invalid = invalidWeight > 0 ? [{ backend: INVALID_BACKEND_CLUSTER, weight: invalidWeight }] : [];
    action = {
      route: {
        ...clusterSpecifier([...backends, ...invalid]),
        ...(invalid.length > 0 ? { clusterNotFoundResponseCode: 'INTERNAL_SERVER_ERROR' } : {}),
        ...envoyTimeouts(r.timeouts),
        ...hostRewrite(r.requestHeaders),
      },
    };
  }
  const route = {
    name: r.name,
    match: envoyMatch(r.match),
    ...action,
    ...headerMutations('request', r.requestHeaders),
    ...headerMutations('response', r.responseHeaders),
  };
  return { routes: [route], clusters: backends.map((b) => b.backend) };
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
 * IR sets none, Envoy's default (15 s) stays.
 *
 * `timeouts.backendRequest` → `retry_policy.per_try_timeout`: the budget of each try to the backend,
 * the initial one included. It applies even though the policy names no retry conditions (so Envoy
 * makes no retries); it is capped by the route timeout. Envoy reads a per-try timeout of 0 as unset,
 * which leaves only the route timeout: the Gateway API's "0 disables", so 0 is simply not written.
 */
function envoyTimeouts(t: IrTimeouts | undefined): ProtoObject {
  const { requestMs, backendRequestMs } = t ?? {};
  return {
    ...(requestMs !== undefined ? { timeout: durationMs(requestMs) } : {}),
    ...(backendRequestMs !== undefined && backendRequestMs > 0
      ? { retryPolicy: { perTryTimeout: durationMs(backendRequestMs) } }
      : {}),
  };
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

/** Setting the request's `host` header is what Envoy calls a host rewrite; the last `set` wins. */
function hostRewrite(m: IrHeaderMutation | undefined): ProtoObject {
  const host = (m?.set ?? []).findLast((h) => h.name.toLowerCase() === 'host');
  return host === undefined ? {} : { hostRewriteLiteral: host.value };
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
  const backends = r.action.kind === 'forward' ? liveBackends(r.action) : [];
  const invalidWeight = r.action.kind === 'forward' ? (r.action.invalidBackendWeight ?? 0) : 0;
  if (backends.length === 0) {
    // A direct response, or no valid backend takes traffic: fail the call (see UNAVAILABLE_CLUSTER).
    action = { cluster: UNAVAILABLE_CLUSTER };
    clusters = [UNAVAILABLE_CLUSTER];
  } else {
    // The share of invalid backends fails with UNAVAILABLE, as the Gateway API asks of a GRPCRoute.
    const invalid = invalidWeight > 0 ? [{ backend: UNAVAILABLE_CLUSTER, weight: invalidWeight }] : [];
    action = { ...clusterSpecifier([...backends, ...invalid]), ...grpcTimeouts(r.timeouts) };
    clusters = [...backends, ...invalid].map((b) => b.backend);
  }
  // Header mutations and per-try timeouts are not implemented by proxyless clients, which ignore them;
  // they are left out so that what is sent is what takes effect.
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
}

/**
 * The backends that take traffic: weight 0 means none (a Gateway API backendRef of weight 0), and a
 * backend listed twice gets the sum of its weights, as two entries would send it that share.
 */
function liveBackends(a: IrForwardAction): LiveBackend[] {
  const weights = new Map<string, number>();
  for (const b of a.backends) {
    if (b.weight > 0) weights.set(b.backend, (weights.get(b.backend) ?? 0) + b.weight);
  }
  return [...weights].map(([backend, weight]) => ({ backend, weight }));
}

/** One backend: `cluster`; several: `weighted_clusters` with relative weights (no total needed). */
function clusterSpecifier(backends: readonly LiveBackend[]): ProtoObject {
  const [only] = backends;
  if (backends.length === 1 && only !== undefined) return { cluster: only.backend };
  return {
    weightedClusters: { clusters: backends.map((b) => ({ name: b.backend, weight: wrapped(b.weight) })) },
  };
}

function withoutTrailingSlashes(path: string): string {
  return path.replace(/\/+$/, '');
}
