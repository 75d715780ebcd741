import type { IrMatch, IrPathMatch, IrRoute, IrRouteAction, IrStringMatch } from '../model/ir.js';
import { routeName } from '../model/names.js';
import { validRegex } from '../model/validate.js';
import type { GRPCRoute } from '../sources/objects.js';
import type { BackendRefSpec, BackendResolution } from './backends.js';
import { RouteReason } from './conditions.js';
import {
  BACKEND_REF_FILTERS,
  GRPC_ROUTE_FILTERS,
  type IrFilters,
  mirrorBackendRefs,
  translateFilters,
} from './filters.js';
import type { RouteKind } from './httpRoutes.js';
import type { Verdict } from './listeners.js';
import { createdMs, type RankedRoute } from './precedence.js';
import { weightedBackends } from './routeBackends.js';
import { INVALID_BACKEND_STATUS, type TranslatedRoute } from './routeRules.js';

/** The HTTP status of calls with no valid backend: Envoy maps 503 to the gRPC status UNAVAILABLE. */
export const GRPC_UNAVAILABLE_STATUS = 503 as const;

type Spec = NonNullable<GRPCRoute['spec']>;
type Rule = NonNullable<Spec['rules']>[number];
type Match = NonNullable<Rule['matches']>[number];
type MethodMatch = NonNullable<Match['method']>;

/**
 * GRPCRoutes route requests like HTTPRoutes (same parents, hostnames, listeners, virtual hosts), so
 * they become IR routes on the same virtual hosts. A gRPC call is an HTTP/2 POST to
 * `/<package.Service>/<Method>`; the matches become path matches:
 *
 * | method match                  | IR path match                                       |
 * |-------------------------------|-----------------------------------------------------|
 * | Exact service and method      | Exact `/svc/Method`                                 |
 * | Exact service                 | PathPrefix `/svc` (segment-wise: `/svc/` and below) |
 * | Exact method                  | RegularExpression `/[^/]+/Method`                   |
 * | RegularExpression             | RegularExpression `/(?:S)/(?:M)`, `[^/]+` for a part not given |
 * | none                          | PathPrefix `/` (every call)                         |
 *
 * Backends always speak h2c, whatever the Service port's appProtocol says (gRPC is HTTP/2). Routes
 * are ordered by GRPCRoute's own precedence (see precedence.ts).
 *
 * Calls to a rule without a valid backend get HTTP 503, which Envoy turns into the gRPC status
 * UNAVAILABLE that the GRPCRoute spec asks for (the proxyless flavour fails them with UNAVAILABLE
 * itself). When only some backends are invalid, their share gets the same 503 (the forward action's
 * invalidBackendStatus), so those calls fail with UNAVAILABLE too rather than with the 500 (UNKNOWN) an
 * HTTPRoute's invalid share gets.
 */
export const GRPC_ROUTE_KIND: RouteKind<GRPCRoute, TranslatedRoute> = {
  kind: 'GRPCRoute',
  holder: { kind: 'GRPCRoute', speaks: 'h2c' },
  hostnames: (route) => route.spec?.hostnames ?? [],
  backendRefs: (route) => (route.spec?.rules ?? []).map(grpcBackendRefs),
  translate: translateGrpcRules,
};

/**
 * A GRPCRoute's rules as IR routes, whatever the Gateways it attaches to. Pure: a function of the
 * route and of how its backendRefs (then its RequestMirror filters' backendRefs, see grpcBackendRefs)
 * resolved (`resolutions[rule][ref]`). A rule Skein cannot serve (an invalid filter, a regular
 * expression RE2 would reject) is dropped ("Dropped Rule") and the rest keeps serving. Filters are
 * HTTPRoute's (filters.ts): header modifiers, mirrors, and per-backendRef header modifiers; an
 * ExtensionRef resolves nothing, so its rule fails every call (500) and ResolvedRefs says InvalidKind.
 */
export function translateGrpcRules(
  route: GRPCRoute,
  resolutions: readonly (readonly BackendResolution[])[],
): TranslatedRoute {
  const namespace = route.metadata?.namespace ?? 'default';
  const name = route.metadata?.name ?? '';
  const created = createdMs(route);
  const specRules: readonly Rule[] = route.spec?.rules ?? [{}];
  const rules: { index: number; routes: RankedRoute[] }[] = [];
  const dropped: string[] = [];
  const unresolved: string[] = [];

  specRules.forEach((rule, index) => {
    const parts = translateRule(rule, index, resolutions[index] ?? []);
    if (typeof parts === 'string') {
      dropped.push(parts);
      return;
    }
    unresolved.push(...parts.unresolved);
    const matches: readonly Match[] =
      rule.matches === undefined || rule.matches.length === 0 ? [{}] : rule.matches;
    const routes = matches.map((m, matchIndex): RankedRoute => {
      const ir: IrRoute = {
        name: routeName('GRPCRoute', namespace, name, index, matchIndex),
        match: irMatch(m),
        ...parts.route,
      };
      const method = m.method;
      return {
        route: ir,
        key: {
          pathRank: 0,
          pathLength: 0,
          hasMethod: false,
          headers: ir.match.headers?.length ?? 0,
          queryParams: 0,
          grpc: {
            service: method?.service?.length ?? 0,
            method: method?.method?.length ?? 0,
            regex: method?.type === 'RegularExpression',
          },
          kind: 'GRPCRoute',
          createdMs: created,
          namespace,
          name,
          rule: index,
          match: matchIndex,
        },
      };
    });
    rules.push({ index, routes });
  });
  return { rules, dropped, resolvedRefs: resolvedRefs(specRules, resolutions, unresolved) };
}

/** A rule's backendRefs, then the backendRefs of its RequestMirror filters: what gets resolved. */
export function grpcBackendRefs(rule: Rule): BackendRefSpec[] {
  return [...(rule.backendRefs ?? []), ...mirrorBackendRefs(rule.filters)];
}

/** Where each of grpcBackendRefs(rule) is written, for messages. */
function backendRefFields(rule: Rule): string[] {
  const fields = (rule.backendRefs ?? []).map((_, j) => `backendRefs[${j}]`);
  (rule.filters ?? []).forEach((f, k) => {
    if (f.type === 'RequestMirror' && f.requestMirror?.backendRef !== undefined)
      fields.push(`filters[${k}].requestMirror.backendRef`);
  });
  return fields;
}

/**
 * Everything of a rule's IR routes but name and match, and the ExtensionRef filters that resolve
 * nothing (their rule fails its calls, and ResolvedRefs says why); or why the rule is dropped.
 */
function translateRule(
  rule: Rule,
  index: number,
  resolved: readonly BackendResolution[],
): { route: Omit<IrRoute, 'name' | 'match'>; unresolved: string[] } | string {
  const at = `rules[${index}]`;
  const problem = matchProblem(rule, at);
  if (problem !== undefined) return problem;
  const refs = rule.backendRefs ?? [];
  const result = translateFilters(rule.filters, {
    at: `${at}.filters`,
    supported: GRPC_ROUTE_FILTERS,
    mirrors: resolved.slice(refs.length),
  });
  if (!result.ok) return result.problem;
  const filters = result.filters;
  const perBackend: IrFilters[] = [];
  const unresolved: string[] = [];
  if (filters.fail !== undefined) unresolved.push(filters.fail.message);
  for (const [j, ref] of refs.entries()) {
    const r = translateFilters(ref.filters, {
      at: `${at}.backendRefs[${j}].filters`,
      supported: BACKEND_REF_FILTERS,
      mirrors: [],
    });
    if (!r.ok) return r.problem;
    perBackend.push(r.filters);
    if (r.filters.fail !== undefined) unresolved.push(r.filters.fail.message);
  }
  const headers = {
    ...(filters.requestHeaders === undefined ? {} : { requestHeaders: filters.requestHeaders }),
    ...(filters.responseHeaders === undefined ? {} : { responseHeaders: filters.responseHeaders }),
  };
  // A filter that can be neither honoured nor skipped fails every call of the rule, with the 500 that
  // filters.ts promises for it (gRPC clients see UNKNOWN).
  if (unresolved.length > 0) {
    return { route: { action: { kind: 'directResponse', status: INVALID_BACKEND_STATUS } }, unresolved };
  }
  const action = ruleAction(refs, resolved.slice(0, refs.length), perBackend);
  return {
    route: {
      action,
      ...headers,
      ...(action.kind === 'forward' && filters.mirrors !== undefined ? { mirrors: filters.mirrors } : {}),
    },
    unresolved,
  };
}

/** Why Skein cannot serve a rule's matches (regular expressions RE2 would reject), or undefined. */
function matchProblem(rule: Rule, at: string): string | undefined {
  for (const [i, m] of (rule.matches ?? []).entries()) {
    const where = `${at}.matches[${i}]`;
    const method = m.method;
    if (method !== undefined && method.type === 'RegularExpression') {
      for (const part of ['service', 'method'] as const) {
        const value = method[part];
        if (value !== undefined && !validRegex(value))
          return `${where}.method.${part}: regular expression "${value}" is not valid RE2`;
      }
    }
    for (const [j, h] of (m.headers ?? []).entries()) {
      if (h.type === 'RegularExpression' && !validRegex(h.value))
        return `${where}.headers[${j}].value: regular expression "${h.value}" is not valid RE2`;
    }
  }
  return undefined;
}

/** A gRPC method match as an IR path match (see the table above). */
export function grpcPathMatch(method: MethodMatch | undefined): IrPathMatch {
  const service = method?.service;
  const name = method?.method;
  if (method === undefined || (service === undefined && name === undefined))
    return { kind: 'PathPrefix', value: '/' };
  if (method.type === 'RegularExpression') {
    const part = (p: string | undefined) => (p === undefined ? '[^/]+' : `(?:${p})`);
    return { kind: 'RegularExpression', value: `/${part(service)}/${part(name)}` };
  }
  if (service !== undefined && name !== undefined) return { kind: 'Exact', value: `/${service}/${name}` };
  if (service !== undefined) return { kind: 'PathPrefix', value: `/${service}` };
  return { kind: 'RegularExpression', value: `/[^/]+/${escapeRegex(name ?? '')}` };
}

function irMatch(m: Match): IrMatch {
  const seen = new Set<string>();
  // Header names are case-insensitive; the first of equivalent names counts.
  const headers = (m.headers ?? [])
    .filter((h) => {
      const key = h.name.toLowerCase();
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .map((h): IrStringMatch => ({ name: h.name.toLowerCase(), kind: h.type ?? 'Exact', value: h.value }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { path: grpcPathMatch(m.method), ...(headers.length > 0 ? { headers } : {}) };
}

/**
 * Where a rule's calls go: the valid backends by weight (each with its own header changes), the invalid
 * ones' share failing. With no valid weight left, every call fails.
 */
function ruleAction(
  refs: readonly { readonly weight?: number }[],
  resolved: readonly BackendResolution[],
  perBackend: readonly IrFilters[],
): IrRouteAction {
  const { backends, invalidWeight } = weightedBackends(refs, resolved, (i) => {
    const f = perBackend[i];
    return {
      ...(f?.requestHeaders === undefined ? {} : { requestHeaders: f.requestHeaders }),
      ...(f?.responseHeaders === undefined ? {} : { responseHeaders: f.responseHeaders }),
    };
  });
  if (backends.length === 0) return { kind: 'directResponse', status: GRPC_UNAVAILABLE_STATUS };
  return {
    kind: 'forward',
    backends,
    ...(invalidWeight > 0
      ? { invalidBackendWeight: invalidWeight, invalidBackendStatus: GRPC_UNAVAILABLE_STATUS }
      : {}),
  };
}

/** ResolvedRefs: the first backendRef (or mirror) that did not resolve, or ExtensionRef that cannot. */
function resolvedRefs(
  rules: readonly Rule[],
  resolutions: readonly (readonly BackendResolution[])[],
  unresolved: readonly string[],
): Verdict {
  const failures: { reason: string; message: string }[] = [];
  rules.forEach((rule, i) => {
    backendRefFields(rule).forEach((field, j) => {
      const r = resolutions[i]?.[j];
      if (r !== undefined && !r.ok)
        failures.push({ reason: r.reason, message: `rules[${i}].${field}: ${r.message}` });
    });
  });
  for (const message of unresolved) failures.push({ reason: RouteReason.InvalidKind, message });
  const first = failures[0];
  if (first === undefined)
    return { ok: true, reason: RouteReason.ResolvedRefs, message: 'all references resolved' };
  const shown = failures.slice(0, 3).map((f) => f.message);
  if (failures.length > 3) shown.push(`and ${failures.length - 3} more`);
  return { ok: false, reason: first.reason, message: shown.join('; ') };
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
