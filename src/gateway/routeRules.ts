import type {
  IrMatch,
  IrPathMatch,
  IrRetry,
  IrRoute,
  IrRouteAction,
  IrStringMatch,
  IrTimeouts,
  IrWeightedBackend,
} from '../model/ir.js';
import { routeName } from '../model/names.js';
import { validRegex } from '../model/validate.js';
import type { HTTPRoute } from '../sources/objects.js';
import type { BackendRefSpec, BackendResolution } from './backends.js';
import { RouteReason } from './conditions.js';
import {
  BACKEND_REF_FILTERS,
  type FilterFailure,
  HTTP_ROUTE_FILTERS,
  type IrFilters,
  mirrorBackendRefs,
  translateFilters,
} from './filters.js';
import type { Verdict } from './listeners.js';
import { createdMs, precedenceKey, type RankedRoute } from './precedence.js';

type Spec = NonNullable<HTTPRoute['spec']>;
type Rule = NonNullable<Spec['rules']>[number];
type Match = NonNullable<Rule['matches']>[number];

/** The rules of one HTTPRoute as IR routes, whatever the Gateways it attaches to. */
export interface TranslatedRoute {
  /** The rules kept, each with its IR routes (one per match) and their precedence keys. */
  readonly rules: readonly { readonly index: number; readonly routes: readonly RankedRoute[] }[];
  /** Rules dropped because they use something Skein cannot serve, each with why. */
  readonly dropped: readonly string[];
  /** ResolvedRefs for the whole route: the first backendRef that did not resolve, if any. */
  readonly resolvedRefs: Verdict;
}

/** The HTTP status the Gateway API asks for when a request's backend is invalid. */
export const INVALID_BACKEND_STATUS = 500;

/** The CRD's default for a rule without matches: every request (a PathPrefix match on `/`). */
const DEFAULT_MATCH: Match = { path: { type: 'PathPrefix', value: '/' } };

/**
 * The references of a rule that name backends, in the order `resolutions[rule]` holds how they resolved:
 * its backendRefs, then the backendRefs of its RequestMirror filters (see filters.ts).
 */
export function ruleBackendRefs(rule: Rule): BackendRefSpec[] {
  return [...(rule.backendRefs ?? []), ...mirrorBackendRefs(rule.filters)];
}

/** Where each of ruleBackendRefs(rule) is written, for messages. */
function ruleBackendRefFields(rule: Rule): string[] {
  const fields = (rule.backendRefs ?? []).map((_, j) => `backendRefs[${j}]`);
  (rule.filters ?? []).forEach((f, k) => {
    if (f.type === 'RequestMirror' && f.requestMirror?.backendRef !== undefined)
      fields.push(`filters[${k}].requestMirror.backendRef`);
  });
  return fields;
}

/**
 * Step 5b: an HTTPRoute's rules as IR routes. Pure: a function of the route object and of how its
 * backend references resolved (`resolutions[rule]`, in the order of ruleBackendRefs), nothing else, so
 * that callers can memoise it on (route identity, resolutions).
 *
 * A rule Skein cannot serve (an unknown filter type, a filter value or combination the spec forbids, a
 * regular expression RE2 would reject) is dropped, as the spec allows ("Dropped Rule"), and the rest of
 * the route keeps serving. A rule whose backendRefs do not resolve is kept: its requests get a 500, in
 * the proportion of the invalid refs' weights (IrForwardAction.invalidBackendWeight), or all of them when
 * no valid backend is left. A rule with a filter that must not be skipped but cannot be honoured
 * (ExtensionRef, ExternalAuth: see FilterFailure) is kept and answers 500, so that its requests never
 * reach a backend without the filter.
 */
export function translateRouteRules(
  route: HTTPRoute,
  resolutions: readonly (readonly BackendResolution[])[],
): TranslatedRoute {
  const namespace = route.metadata?.namespace ?? 'default';
  const name = route.metadata?.name ?? '';
  const created = createdMs(route);
  const specRules: readonly Rule[] = route.spec?.rules ?? [{}];
  const rules: { index: number; routes: RankedRoute[] }[] = [];
  const dropped: string[] = [];
  /** Filters that resolve nothing (ExtensionRef), for ResolvedRefs. */
  const unresolved: FilterFailure[] = [];

  specRules.forEach((rule, index) => {
    const translated = translateRule(rule, index, resolutions[index] ?? []);
    if (typeof translated === 'string') {
      dropped.push(translated);
      return;
    }
    const { parts, failures } = translated;
    for (const f of failures) {
      if (f.filter === 'ExtensionRef') unresolved.push(f);
      else dropped.push(f.message);
    }
    const matches: readonly Match[] =
      rule.matches === undefined || rule.matches.length === 0 ? [DEFAULT_MATCH] : rule.matches;
    const routes = matches.map((m, matchIndex): RankedRoute => {
      const ir: IrRoute = {
        name: routeName('HTTPRoute', namespace, name, index, matchIndex),
        match: irMatch(m),
        ...parts,
      };
      return {
        route: ir,
        key: precedenceKey(ir, { createdMs: created, namespace, name, rule: index, match: matchIndex }),
      };
    });
    rules.push({ index, routes });
  });
  return { rules, dropped, resolvedRefs: resolvedRefs(specRules, resolutions, unresolved) };
}

/** Everything of an IR route but its name and match: the same for every match of a rule. */
type RuleParts = Omit<IrRoute, 'name' | 'match'>;

/**
 * One rule: what each of its IR routes holds besides name and match, and the filters that make it (or
 * one of its backends) answer 500; or why the rule is dropped.
 */
function translateRule(
  rule: Rule,
  index: number,
  resolved: readonly BackendResolution[],
): { parts: RuleParts; failures: FilterFailure[] } | string {
  const at = `rules[${index}]`;
  const problem = ruleProblem(rule, at);
  if (problem !== undefined) return problem;
  const refs = rule.backendRefs ?? [];
  const result = translateFilters(rule.filters, {
    at: `${at}.filters`,
    supported: HTTP_ROUTE_FILTERS,
    mirrors: resolved.slice(refs.length),
  });
  if (!result.ok) return result.problem;
  const filters = result.filters;
  if (filters.redirect !== undefined && refs.length > 0)
    return `${at}: a RequestRedirect filter must not be used together with backendRefs`;
  const prefixModifier =
    filters.redirect?.path?.kind === 'ReplacePrefixMatch' ||
    filters.rewrite?.path?.kind === 'ReplacePrefixMatch';
  if (
    prefixModifier &&
    (rule.matches ?? [DEFAULT_MATCH]).some((m) => (m.path?.type ?? 'PathPrefix') !== 'PathPrefix')
  )
    return `${at}: a ReplacePrefixMatch path modifier needs PathPrefix matches only`;

  // Per-backendRef filters: header changes for that backend alone.
  const perBackend: IrFilters[] = [];
  const failures: FilterFailure[] = filters.fail === undefined ? [] : [filters.fail];
  for (const [j, ref] of refs.entries()) {
    const r = translateFilters(ref.filters, {
      at: `${at}.backendRefs[${j}].filters`,
      supported: BACKEND_REF_FILTERS,
      mirrors: [],
    });
    if (!r.ok) return r.problem;
    perBackend.push(r.filters);
    if (r.filters.fail !== undefined) failures.push(r.filters.fail);
  }

  const headers = {
    ...(filters.requestHeaders === undefined ? {} : { requestHeaders: filters.requestHeaders }),
    ...(filters.responseHeaders === undefined ? {} : { responseHeaders: filters.responseHeaders }),
  };
  const timeouts = ruleTimeouts(rule);
  const withTimeouts = timeouts === undefined ? {} : { timeouts };
  if (filters.fail !== undefined) {
    return { parts: { action: { kind: 'directResponse', status: INVALID_BACKEND_STATUS } }, failures };
  }
  if (filters.redirect !== undefined) {
    return { parts: { action: filters.redirect, ...headers, ...withTimeouts }, failures };
  }
  const action = ruleAction(refs, resolved.slice(0, refs.length), perBackend);
  if (action.kind !== 'forward') return { parts: { action, ...headers, ...withTimeouts }, failures };
  const retry = ruleRetry(rule);
  const websocket = refs.some((_, j) => {
    const r = resolved[j];
    return r?.ok === true && r.websocket === true && (refs[j]?.weight ?? 1) > 0;
  });
  return {
    parts: {
      action,
      ...headers,
      ...withTimeouts,
      ...(filters.rewrite === undefined ? {} : { rewrite: filters.rewrite }),
      ...(filters.mirrors === undefined ? {} : { mirrors: filters.mirrors }),
      ...(filters.cors === undefined ? {} : { cors: filters.cors }),
      ...(retry === undefined ? {} : { retry }),
      ...(websocket ? { websocket: true } : {}),
    },
    failures,
  };
}

/**
 * Why Skein cannot serve a rule, judging by its matches, timeouts and retry (filters: see
 * translateFilters), or undefined. Checks what the CRD schema already should, too.
 */
function ruleProblem(rule: Rule, at: string): string | undefined {
  for (const [i, m] of (rule.matches ?? []).entries()) {
    const problem = matchProblem(m);
    if (problem !== undefined) return `${at}.matches[${i}].${problem}`;
  }
  for (const field of ['request', 'backendRequest'] as const) {
    const value = rule.timeouts?.[field];
    if (value !== undefined && durationMs(value) === undefined)
      return `${at}.timeouts.${field}: "${value}" is not a duration`;
  }
  const t = ruleTimeouts(rule);
  if (t?.requestMs !== undefined && t.requestMs > 0 && (t.backendRequestMs ?? 0) > t.requestMs)
    return `${at}.timeouts.backendRequest: must not be longer than timeouts.request`;
  const retry = rule.retry as { attempts?: unknown; backoff?: unknown; codes?: unknown } | undefined;
  if (retry !== undefined) {
    const { attempts, backoff, codes } = retry;
    if (
      attempts !== undefined &&
      (typeof attempts !== 'number' || !Number.isInteger(attempts) || attempts < 0)
    )
      return `${at}.retry.attempts: ${String(attempts)} is not a non-negative integer`;
    if (backoff !== undefined && (typeof backoff !== 'string' || durationMs(backoff) === undefined))
      return `${at}.retry.backoff: "${String(backoff)}" is not a duration`;
    if (codes !== undefined && !Array.isArray(codes)) return `${at}.retry.codes must be a list`;
    for (const c of (codes ?? []) as unknown[]) {
      if (typeof c !== 'number' || !Number.isInteger(c) || c < 400 || c > 599)
        return `${at}.retry.codes: ${String(c)} is not an HTTP status in 400..599`;
    }
  }
  return undefined;
}

function matchProblem(m: Match): string | undefined {
  const type = m.path?.type ?? 'PathPrefix';
  const value = m.path?.value ?? '/';
  if (type === 'RegularExpression') {
    if (!validRegex(value)) return `path.value: regular expression "${value}" is not valid RE2`;
  } else if (type === 'Exact' || type === 'PathPrefix') {
    if (!value.startsWith('/')) return `path.value: "${value}" does not start with "/"`;
  } else {
    return `path.type: ${String(type)} is not supported`;
  }
  for (const [field, list] of [
    ['headers', m.headers],
    ['queryParams', m.queryParams],
  ] as const) {
    for (const [i, h] of (list ?? []).entries()) {
      const t = h.type ?? 'Exact';
      if (t !== 'Exact' && t !== 'RegularExpression')
        return `${field}[${i}].type: ${String(t)} is not supported`;
      if (t === 'RegularExpression' && !validRegex(h.value)) {
        return `${field}[${i}].value: regular expression "${h.value}" is not valid RE2`;
      }
    }
  }
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];
  if (m.method !== undefined && !methods.includes(m.method))
    return `method: ${String(m.method)} is not supported`;
  return undefined;
}

function irMatch(m: Match): IrMatch {
  const type = m.path?.type ?? 'PathPrefix';
  const value = m.path?.value ?? '/';
  let path: IrPathMatch;
  if (type === 'Exact') path = { kind: 'Exact', value };
  else if (type === 'RegularExpression') path = { kind: 'RegularExpression', value };
  // A prefix's trailing slash is ignored: `/abc/` matches `/abc` and `/abc/def`, like `/abc`.
  else path = { kind: 'PathPrefix', value: value.length > 1 ? value.replace(/\/+$/, '') || '/' : value };

  // Header names are case-insensitive: the first of equivalent names counts and later ones are ignored.
  const headers = firstByName(m.headers ?? [], (n) => n.toLowerCase()).map(
    (h): IrStringMatch => ({ name: h.name.toLowerCase(), kind: h.type ?? 'Exact', value: h.value }),
  );
  // Query parameter names match exactly; again the first of equal names counts.
  const queryParams = firstByName(m.queryParams ?? [], (n) => n).map(
    (q): IrStringMatch => ({ name: q.name, kind: q.type ?? 'Exact', value: q.value }),
  );
  return {
    path,
    ...(headers.length > 0 ? { headers: sortByName(headers) } : {}),
    ...(queryParams.length > 0 ? { queryParams: sortByName(queryParams) } : {}),
    ...(m.method === undefined ? {} : { method: m.method }),
  };
}

function firstByName<T extends { name: string }>(items: readonly T[], norm: (name: string) => string): T[] {
  const seen = new Set<string>();
  return items.filter((item) => {
    const key = norm(item.name);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * Where a rule's requests go. Valid backends keep their weights (weight 0 entries dropped; a backend
 * named twice with the same per-backend filters gets the sum, with different ones two entries); invalid
 * ones, and those whose filters cannot be honoured (an ExtensionRef), add their weight to
 * invalidBackendWeight. With no valid weight left (no backendRefs, every weight 0, or every ref invalid)
 * every request gets a 500.
 */
function ruleAction(
  refs: readonly { readonly weight?: number }[],
  resolved: readonly BackendResolution[],
  perBackend: readonly IrFilters[],
): IrRouteAction {
  const entries = new Map<string, IrWeightedBackend>();
  let invalid = 0;
  refs.forEach((ref, i) => {
    const weight = ref.weight ?? 1;
    const r = resolved[i];
    const f = perBackend[i] ?? {};
    if (r?.ok !== true || f.fail !== undefined) {
      invalid += weight;
      return;
    }
    const extra = {
      ...(f.requestHeaders === undefined ? {} : { requestHeaders: f.requestHeaders }),
      ...(f.responseHeaders === undefined ? {} : { responseHeaders: f.responseHeaders }),
    };
    const key = `${r.backend}\0${JSON.stringify(extra)}`;
    const seen = entries.get(key);
    entries.set(key, { backend: r.backend, weight: (seen?.weight ?? 0) + weight, ...extra });
  });
  const backends = [...entries]
    .filter(([, b]) => b.weight > 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, b]) => b);
  if (backends.length === 0) return { kind: 'directResponse', status: INVALID_BACKEND_STATUS };
  return { kind: 'forward', backends, ...(invalid > 0 ? { invalidBackendWeight: invalid } : {}) };
}

/**
 * HTTPRouteRetry → IrRetry: `attempts` retries (Envoy's default of 1 when unset, as the spec leaves it
 * to the implementation), `backoff` as the base interval, `codes` sorted and without repeats.
 */
function ruleRetry(rule: Rule): IrRetry | undefined {
  const retry = rule.retry;
  if (retry === undefined) return undefined;
  const backoffMs = retry.backoff === undefined ? undefined : durationMs(retry.backoff);
  return {
    attempts: retry.attempts ?? 1,
    ...(backoffMs === undefined ? {} : { backoffMs }),
    statusCodes: [...new Set(retry.codes ?? [])].sort((a, b) => a - b),
  };
}

/** Timeouts in ms; `0s` passes through as 0, which the Gateway API defines as "no timeout". */
function ruleTimeouts(rule: Rule): IrTimeouts | undefined {
  const request = rule.timeouts?.request === undefined ? undefined : durationMs(rule.timeouts.request);
  const backend =
    rule.timeouts?.backendRequest === undefined ? undefined : durationMs(rule.timeouts.backendRequest);
  if (request === undefined && backend === undefined) return undefined;
  return {
    ...(request === undefined ? {} : { requestMs: request }),
    ...(backend === undefined ? {} : { backendRequestMs: backend }),
  };
}

/** A Gateway API duration (`1h30m`, `10s`, `500ms`: 1 to 4 parts of up to 5 digits) in ms. */
export function durationMs(value: string): number | undefined {
  if (!/^([0-9]{1,5}(h|m|s|ms)){1,4}$/.test(value)) return undefined;
  let ms = 0;
  for (const m of value.matchAll(/([0-9]+)(ms|h|m|s)/g)) {
    const n = Number(m[1]);
    ms += m[2] === 'h' ? n * 3_600_000 : m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : n;
  }
  return ms;
}

/**
 * ResolvedRefs for the whole route: every backend reference (backendRefs and RequestMirror backendRefs)
 * that did not resolve, and every ExtensionRef filter (none resolves: InvalidKind); the reason is the
 * first one's.
 */
function resolvedRefs(
  rules: readonly Rule[],
  resolutions: readonly (readonly BackendResolution[])[],
  unresolved: readonly FilterFailure[],
): Verdict {
  const failures: { reason: string; message: string }[] = [];
  rules.forEach((rule, i) => {
    ruleBackendRefFields(rule).forEach((field, j) => {
      const r = resolutions[i]?.[j];
      if (r !== undefined && !r.ok)
        failures.push({ reason: r.reason, message: `rules[${i}].${field}: ${r.message}` });
    });
  });
  for (const f of unresolved) failures.push({ reason: RouteReason.InvalidKind, message: f.message });
  const first = failures[0];
  if (first === undefined)
    return { ok: true, reason: RouteReason.ResolvedRefs, message: 'all references resolved' };
  const shown = failures.slice(0, 3).map((f) => f.message);
  if (failures.length > 3) shown.push(`and ${failures.length - 3} more`);
  return { ok: false, reason: first.reason, message: shown.join('; ') };
}

function sortByName<T extends { name: string }>(items: T[]): T[] {
  return items.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
