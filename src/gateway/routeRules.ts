import type {
  IrHeaderMutation,
  IrMatch,
  IrPathMatch,
  IrRoute,
  IrRouteAction,
  IrStringMatch,
  IrTimeouts,
  IrWeightedBackend,
} from '../model/ir.js';
import { routeName } from '../model/names.js';
import { validRegex } from '../model/validate.js';
import type { HTTPRoute } from '../sources/objects.js';
import type { BackendResolution } from './backends.js';
import { RouteReason } from './conditions.js';
import type { Verdict } from './listeners.js';
import { createdMs, precedenceKey, type RankedRoute } from './precedence.js';

type Spec = NonNullable<HTTPRoute['spec']>;
type Rule = NonNullable<Spec['rules']>[number];
type Match = NonNullable<Rule['matches']>[number];
type Filter = NonNullable<Rule['filters']>[number];
type HeaderFilter = NonNullable<Filter['requestHeaderModifier']>;

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
 * Step 5b: an HTTPRoute's rules as IR routes. Pure: a function of the route object and of how its
 * backendRefs resolved (`resolutions[rule][ref]`), nothing else, so that callers can memoise it on
 * (route identity, resolutions).
 *
 * A rule Skein cannot serve (a filter type not implemented yet, a regular expression RE2 would reject)
 * is dropped, as the spec allows ("Dropped Rule"), and the rest of the route keeps serving. A rule whose
 * backendRefs do not resolve is kept: its requests get a 500, in the proportion of the invalid refs'
 * weights (IrForwardAction.invalidBackendWeight), or all of them when no valid backend is left.
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

  specRules.forEach((rule, index) => {
    const problem = ruleProblem(rule, index);
    if (problem !== undefined) {
      dropped.push(problem);
      return;
    }
    const action = ruleAction(rule, resolutions[index] ?? []);
    const requestHeaders = headerMutation(rule.filters, 'RequestHeaderModifier');
    const responseHeaders = headerMutation(rule.filters, 'ResponseHeaderModifier');
    const timeouts = ruleTimeouts(rule);
    const matches: readonly Match[] =
      rule.matches === undefined || rule.matches.length === 0 ? [DEFAULT_MATCH] : rule.matches;
    const routes = matches.map((m, matchIndex): RankedRoute => {
      const ir: IrRoute = {
        name: routeName('HTTPRoute', namespace, name, index, matchIndex),
        match: irMatch(m),
        action,
        ...(requestHeaders === undefined ? {} : { requestHeaders }),
        ...(responseHeaders === undefined ? {} : { responseHeaders }),
        ...(timeouts === undefined ? {} : { timeouts }),
      };
      return {
        route: ir,
        key: precedenceKey(ir, { createdMs: created, namespace, name, rule: index, match: matchIndex }),
      };
    });
    rules.push({ index, routes });
  });
  return { rules, dropped, resolvedRefs: resolvedRefs(specRules, resolutions) };
}

/** Why Skein cannot serve a rule, or undefined. Checks what the CRD schema already should, too. */
function ruleProblem(rule: Rule, index: number): string | undefined {
  const at = `rules[${index}]`;
  for (const [i, f] of (rule.filters ?? []).entries()) {
    if (f.type !== 'RequestHeaderModifier' && f.type !== 'ResponseHeaderModifier') {
      return `${at}.filters[${i}]: filter type ${f.type} is not supported yet`;
    }
    const config = f.type === 'RequestHeaderModifier' ? f.requestHeaderModifier : f.responseHeaderModifier;
    if (config === undefined) return `${at}.filters[${i}]: ${f.type} has no configuration`;
  }
  for (const [i, b] of (rule.backendRefs ?? []).entries()) {
    if ((b.filters?.length ?? 0) > 0)
      return `${at}.backendRefs[${i}].filters: per-backend filters are not supported yet`;
  }
  for (const [i, m] of (rule.matches ?? []).entries()) {
    const problem = matchProblem(m);
    if (problem !== undefined) return `${at}.matches[${i}].${problem}`;
  }
  for (const field of ['request', 'backendRequest'] as const) {
    const value = rule.timeouts?.[field];
    if (value !== undefined && durationMs(value) === undefined)
      return `${at}.timeouts.${field}: "${value}" is not a duration`;
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
 * Where a rule's requests go. Valid backends keep their weights (merged when one is named twice; weight
 * 0 entries dropped); invalid ones add their weight to invalidBackendWeight. With no valid weight left
 * (no backendRefs, every weight 0, or every ref invalid) every request gets a 500.
 */
function ruleAction(rule: Rule, resolved: readonly BackendResolution[]): IrRouteAction {
  const weights = new Map<string, number>();
  let invalid = 0;
  (rule.backendRefs ?? []).forEach((ref, i) => {
    const weight = ref.weight ?? 1;
    const r = resolved[i];
    if (r?.ok === true) weights.set(r.backend, (weights.get(r.backend) ?? 0) + weight);
    else invalid += weight;
  });
  const backends: IrWeightedBackend[] = [...weights]
    .filter(([, weight]) => weight > 0)
    .map(([backend, weight]) => ({ backend, weight }))
    .sort((a, b) => (a.backend < b.backend ? -1 : a.backend > b.backend ? 1 : 0));
  if (backends.length === 0) return { kind: 'directResponse', status: INVALID_BACKEND_STATUS };
  return { kind: 'forward', backends, ...(invalid > 0 ? { invalidBackendWeight: invalid } : {}) };
}

function headerMutation(
  filters: readonly Filter[] | undefined,
  type: Filter['type'],
): IrHeaderMutation | undefined {
  const f = filters?.find((x) => x.type === type);
  const config: HeaderFilter | undefined =
    f === undefined
      ? undefined
      : type === 'RequestHeaderModifier'
        ? f.requestHeaderModifier
        : f.responseHeaderModifier;
  if (config === undefined) return undefined;
  const set = sortByName((config.set ?? []).map((h) => ({ name: h.name, value: h.value })));
  const add = sortByName((config.add ?? []).map((h) => ({ name: h.name, value: h.value })));
  const remove = [...(config.remove ?? [])].sort();
  if (set.length + add.length + remove.length === 0) return undefined;
  return {
    ...(set.length > 0 ? { set } : {}),
    ...(add.length > 0 ? { add } : {}),
    ...(remove.length > 0 ? { remove } : {}),
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

function resolvedRefs(
  rules: readonly Rule[],
  resolutions: readonly (readonly BackendResolution[])[],
): Verdict {
  const failures: { reason: string; message: string }[] = [];
  rules.forEach((rule, i) => {
    (rule.backendRefs ?? []).forEach((_, j) => {
      const r = resolutions[i]?.[j];
      if (r !== undefined && !r.ok)
        failures.push({ reason: r.reason, message: `rules[${i}].backendRefs[${j}]: ${r.message}` });
    });
  });
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
