import type {
  IrCors,
  IrHeader,
  IrHeaderMutation,
  IrMirror,
  IrPathModifier,
  IrRedirectAction,
  IrRewrite,
} from '../model/ir.js';
import { validHostname } from '../model/validate.js';
import type { HTTPRoute } from '../sources/objects.js';
import type { BackendRefSpec, BackendResolution } from './backends.js';

/**
 * Gateway API route filters → the IR, shared by every route kind that has filters: HTTPRoute (rule
 * filters and per-backendRef filters) and GRPCRoute (RequestHeaderModifier, ResponseHeaderModifier,
 * RequestMirror, ExtensionRef). Pure: a function of the filters and of how their RequestMirror
 * backendRefs resolved.
 *
 * Usage, for one rule:
 *
 *     const refs = mirrorBackendRefs(rule.filters);                 // resolve these with BackendIndex
 *     const result = translateFilters(rule.filters, {
 *       at: `rules[${i}].filters`,
 *       supported: GRPC_ROUTE_FILTERS,                               // or HTTP_ROUTE_FILTERS, BACKEND_REF_FILTERS
 *       mirrors: refs.map((ref) => backends.resolve(ref, namespace)),
 *     });
 *     if (!result.ok) dropTheRule(result.problem);                   // PartiallyInvalid / UnsupportedValue
 *     else if (result.filters.fail) answer500(result.filters.fail);  // see FilterFailure
 *     else applyToEveryIrRouteOfTheRule(result.filters);
 *
 * A RequestMirror whose backendRef did not resolve is left out of `mirrors` (the spec: "not configure
 * this backend"); the caller reports it in ResolvedRefs, as it does for the rule's own backendRefs.
 */

type HttpRouteFilter = NonNullable<
  NonNullable<NonNullable<HTTPRoute['spec']>['rules']>[number]['filters']
>[number];

/**
 * A route filter as written. HTTPRoute and GRPCRoute filters both fit (GRPCRoute's have a subset of the
 * fields); the values are checked here too, since what the API server let through depends on the CRD
 * version installed.
 */
export interface RouteFilterSpec {
  readonly type: string;
  readonly requestHeaderModifier?: HttpRouteFilter['requestHeaderModifier'];
  readonly responseHeaderModifier?: HttpRouteFilter['responseHeaderModifier'];
  readonly requestMirror?: HttpRouteFilter['requestMirror'];
  readonly requestRedirect?: HttpRouteFilter['requestRedirect'];
  readonly urlRewrite?: HttpRouteFilter['urlRewrite'];
  readonly cors?: HttpRouteFilter['cors'];
  readonly extensionRef?: HttpRouteFilter['extensionRef'];
  readonly externalAuth?: unknown;
}

/** The filter types of the Gateway API, as `type` names them. */
export type FilterType =
  | 'RequestHeaderModifier'
  | 'ResponseHeaderModifier'
  | 'RequestMirror'
  | 'RequestRedirect'
  | 'URLRewrite'
  | 'CORS'
  | 'ExtensionRef'
  | 'ExternalAuth';

/** The filters of an HTTPRoute rule. */
export const HTTP_ROUTE_FILTERS: ReadonlySet<FilterType> = new Set<FilterType>([
  'RequestHeaderModifier',
  'ResponseHeaderModifier',
  'RequestMirror',
  'RequestRedirect',
  'URLRewrite',
  'CORS',
  'ExtensionRef',
  'ExternalAuth',
]);

/** The filters of a GRPCRoute rule (and of its backendRefs). */
export const GRPC_ROUTE_FILTERS: ReadonlySet<FilterType> = new Set<FilterType>([
  'RequestHeaderModifier',
  'ResponseHeaderModifier',
  'RequestMirror',
  'ExtensionRef',
]);

/**
 * The filters Skein honours on a backendRef (HTTPRoute and GRPCRoute): header changes, which Envoy applies
 * per weighted cluster. The spec leaves per-backend support implementation-specific; any other type there
 * makes the rule invalid (dropped), rather than silently applying to every backend or to none.
 */
export const BACKEND_REF_FILTERS: ReadonlySet<FilterType> = new Set<FilterType>([
  'RequestHeaderModifier',
  'ResponseHeaderModifier',
  'ExtensionRef',
]);

/** What the filters of one rule (or one backendRef) do, in IR terms. Absent: the filter is not there. */
export interface IrFilters {
  readonly requestHeaders?: IrHeaderMutation;
  readonly responseHeaders?: IrHeaderMutation;
  /** RequestMirror filters whose backendRef resolved, in filter order. */
  readonly mirrors?: readonly IrMirror[];
  /**
   * RequestRedirect: the rule answers with a redirect instead of forwarding. `port` is set only when the
   * filter gives one or its scheme implies one (80, 443); otherwise the port the request arrived on (its
   * listener's) is kept, which the IR leaves to the output (see IrRedirectAction).
   */
  readonly redirect?: IrRedirectAction;
  readonly rewrite?: IrRewrite;
  readonly cors?: IrCors;
  /** Set when a filter can be neither honoured nor skipped: see FilterFailure. */
  readonly fail?: FilterFailure;
}

/**
 * A filter the spec forbids skipping that Skein cannot honour. The rule stays (so that its requests do
 * not fall through to another rule, which would skip the filter) and answers every request with a 500.
 * - `ExtensionRef`: "If a reference to a custom filter type cannot be resolved, the filter MUST NOT be
 *   skipped. Instead, requests that would have been processed by that filter MUST receive a HTTP error
 *   response." Skein knows no custom filter kinds, so none resolves: ResolvedRefs False, InvalidKind.
 * - `ExternalAuth`: "MUST fail closed". Skein does not implement it: PartiallyInvalid, UnsupportedValue.
 */
export interface FilterFailure {
  readonly filter: 'ExtensionRef' | 'ExternalAuth';
  /** Where and why, e.g. `rules[0].filters[1]: ExtensionRef example.com/Foo x cannot be resolved`. */
  readonly message: string;
}

export type FiltersResult =
  | { readonly ok: true; readonly filters: IrFilters }
  /** The rule cannot be served: drop it (PartiallyInvalid, UnsupportedValue). `problem` says where and why. */
  | { readonly ok: false; readonly problem: string };

export interface FilterOptions {
  /** Where the filters are, for messages: `rules[0].filters` or `rules[0].backendRefs[1].filters`. */
  readonly at: string;
  /** The filter types allowed here; any other type makes the rule invalid. */
  readonly supported: ReadonlySet<FilterType>;
  /** How each backendRef of `mirrorBackendRefs(filters)` resolved, in the same order. */
  readonly mirrors: readonly BackendResolution[];
}

/** The backendRefs of the RequestMirror filters in `filters`, in filter order: the ones to resolve. */
export function mirrorBackendRefs(filters: readonly RouteFilterSpec[] | undefined): BackendRefSpec[] {
  const refs: BackendRefSpec[] = [];
  for (const f of filters ?? []) {
    const ref = f.type === 'RequestMirror' ? f.requestMirror?.backendRef : undefined;
    if (ref !== undefined) refs.push(ref);
  }
  return refs;
}

/** The filters of one rule (or one backendRef) in IR terms, or why the rule cannot be served. */
export function translateFilters(
  filters: readonly RouteFilterSpec[] | undefined,
  options: FilterOptions,
): FiltersResult {
  const out: {
    requestHeaders?: IrHeaderMutation;
    responseHeaders?: IrHeaderMutation;
    mirrors?: IrMirror[];
    redirect?: IrRedirectAction;
    rewrite?: IrRewrite;
    cors?: IrCors;
    fail?: FilterFailure;
  } = {};
  const seen = new Set<string>();
  let mirrorIndex = 0;
  for (const [i, f] of (filters ?? []).entries()) {
    const at = `${options.at}[${i}]`;
    const fail = (why: string): FiltersResult => ({ ok: false, problem: `${at}: ${why}` });
    const type = f.type as FilterType;
    if (!KNOWN_TYPES.has(type)) return fail(`filter type ${String(f.type)} is not supported`);
    if (!options.supported.has(type)) return fail(`filter type ${type} is not supported here`);
    // Every type but RequestMirror (and ExtensionRef, which may differ in its reference) appears once.
    if (type !== 'RequestMirror' && type !== 'ExtensionRef' && seen.has(type))
      return fail(`${type} filter cannot be repeated`);
    seen.add(type);
    const config = f[CONFIG_FIELD[type]];
    if (config === undefined || config === null) return fail(`${type} needs its ${CONFIG_FIELD[type]} field`);

    switch (type) {
      case 'RequestHeaderModifier':
      case 'ResponseHeaderModifier': {
        const m = headerMutation(config);
        if (typeof m === 'string') return fail(m);
        if (m !== undefined) out[type === 'RequestHeaderModifier' ? 'requestHeaders' : 'responseHeaders'] = m;
        break;
      }
      case 'RequestMirror': {
        const resolution = options.mirrors[mirrorIndex++];
        const percent = mirrorPercent(f.requestMirror ?? {});
        if (typeof percent === 'string') return fail(percent);
        if (resolution?.ok === true) {
          const mirror: IrMirror = { backend: resolution.backend, ...(percent === 100 ? {} : { percent }) };
          out.mirrors = [...(out.mirrors ?? []), mirror];
        }
        break;
      }
      case 'RequestRedirect': {
        const r = redirect(f.requestRedirect ?? {});
        if (typeof r === 'string') return fail(r);
        out.redirect = r;
        break;
      }
      case 'URLRewrite': {
        const r = rewrite(f.urlRewrite ?? {});
        if (typeof r === 'string') return fail(r);
        if (r !== undefined) out.rewrite = r;
        break;
      }
      case 'CORS': {
        const c = cors(f.cors ?? {});
        if (typeof c === 'string') return fail(c);
        out.cors = c;
        break;
      }
      case 'ExtensionRef': {
        const ref = f.extensionRef;
        const what = `${ref?.group ?? ''}/${ref?.kind ?? ''} ${ref?.name ?? ''}`;
        out.fail ??= {
          filter: 'ExtensionRef',
          message: `${at}: ExtensionRef ${what} cannot be resolved (Skein supports no custom filters), so the requests it would process get a 500`,
        };
        break;
      }
      case 'ExternalAuth':
        out.fail ??= {
          filter: 'ExternalAuth',
          message: `${at}: filter type ExternalAuth is not supported; the rule fails closed (its requests get a 500)`,
        };
        break;
    }
  }
  if (out.redirect !== undefined && out.rewrite !== undefined)
    return {
      ok: false,
      problem: `${options.at}: may specify either RequestRedirect or URLRewrite, not both`,
    };
  return { ok: true, filters: out };
}

const KNOWN_TYPES: ReadonlySet<string> = HTTP_ROUTE_FILTERS;

const CONFIG_FIELD = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  CORS: 'cors',
  ExtensionRef: 'extensionRef',
  ExternalAuth: 'externalAuth',
} as const satisfies Record<FilterType, keyof RouteFilterSpec>;

// ---------------------------------------------------------------------------------------------------
// Header modifiers

/** An HTTP header name (RFC 7230 token), as the CRD's HTTPHeaderName pattern allows. */
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
/** Characters no header value may hold: Envoy rejects the whole route configuration for them. */
const BAD_VALUE = /[\0\r\n]/;

/**
 * set / add / remove. Header names are case-insensitive: of equivalent names in one list the first counts
 * and later ones are ignored, as the spec says of HTTPHeader. Lists are sorted by name so that the IR does
 * not depend on how the YAML happened to order them (the names in a list are distinct, so no order
 * between entries matters). Returns undefined when the filter changes nothing, or why it is invalid.
 */
function headerMutation(config: unknown): IrHeaderMutation | undefined | string {
  const c = config as { set?: unknown; add?: unknown; remove?: unknown };
  const headers = (field: 'set' | 'add'): IrHeader[] | string => {
    const list = c[field] ?? [];
    if (!Array.isArray(list)) return `${field} must be a list`;
    const out: IrHeader[] = [];
    const names = new Set<string>();
    for (const h of list as { name?: unknown; value?: unknown }[]) {
      if (typeof h?.name !== 'string' || !HEADER_NAME.test(h.name))
        return `${field}: "${String(h?.name)}" is not a header name`;
      if (typeof h.value !== 'string' || BAD_VALUE.test(h.value))
        return `${field}: the value of ${h.name} must be a string without NUL, CR or LF`;
      const key = h.name.toLowerCase();
      if (names.has(key)) continue;
      names.add(key);
      out.push({ name: h.name, value: h.value });
    }
    return out.sort(byName);
  };
  const set = headers('set');
  if (typeof set === 'string') return set;
  const add = headers('add');
  if (typeof add === 'string') return add;
  const removeList = c.remove ?? [];
  if (!Array.isArray(removeList)) return 'remove must be a list';
  const remove: string[] = [];
  const removed = new Set<string>();
  for (const name of removeList as unknown[]) {
    if (typeof name !== 'string' || !HEADER_NAME.test(name))
      return `remove: "${String(name)}" is not a header name`;
    if (removed.has(name.toLowerCase())) continue;
    removed.add(name.toLowerCase());
    remove.push(name);
  }
  remove.sort();
  if (set.length + add.length + remove.length === 0) return undefined;
  return {
    ...(set.length > 0 ? { set } : {}),
    ...(add.length > 0 ? { add } : {}),
    ...(remove.length > 0 ? { remove } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------
// RequestMirror

/**
 * The share of requests mirrored, in percent: `percent` (0..100), or `fraction` (numerator over a
 * denominator defaulting to 100, numerator ≤ denominator), or, with neither, every request.
 */
function mirrorPercent(m: { percent?: unknown; fraction?: unknown }): number | string {
  if (m.percent !== undefined && m.fraction !== undefined)
    return 'only one of percent or fraction may be specified';
  if (m.percent !== undefined) {
    const p = m.percent;
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > 100)
      return `percent ${String(p)} is not an integer in 0..100`;
    return p;
  }
  if (m.fraction !== undefined) {
    const { numerator, denominator = 100 } = m.fraction as { numerator?: unknown; denominator?: unknown };
    if (typeof numerator !== 'number' || !Number.isInteger(numerator) || numerator < 0)
      return `fraction.numerator ${String(numerator)} is not a non-negative integer`;
    if (typeof denominator !== 'number' || !Number.isInteger(denominator) || denominator < 1)
      return `fraction.denominator ${String(denominator)} is not a positive integer`;
    if (numerator > denominator)
      return 'fraction.numerator must be less than or equal to fraction.denominator';
    return (numerator * 100) / denominator;
  }
  return 100;
}

// ---------------------------------------------------------------------------------------------------
// RequestRedirect and URLRewrite

const REDIRECT_CODES: readonly number[] = [301, 302, 303, 307, 308];

/**
 * The redirect, with the spec's port rule applied as far as the route alone allows: an explicit port is
 * kept; without one, a scheme implies its well-known port (http 80, https 443); with neither, the port
 * is the listener's, which the IR expresses by leaving `port` out (the output knows the listener).
 */
function redirect(r: {
  scheme?: unknown;
  hostname?: unknown;
  port?: unknown;
  path?: unknown;
  statusCode?: unknown;
}): IrRedirectAction | string {
  const statusCode = r.statusCode ?? 302;
  if (typeof statusCode !== 'number' || !REDIRECT_CODES.includes(statusCode))
    return `statusCode ${String(statusCode)} is not supported (use 301, 302, 303, 307 or 308)`;
  if (r.scheme !== undefined && r.scheme !== 'http' && r.scheme !== 'https')
    return `scheme ${String(r.scheme)} is not supported (use http or https)`;
  const hostname = preciseHostname(r.hostname);
  if (typeof hostname === 'object') return hostname.problem;
  if (
    r.port !== undefined &&
    (typeof r.port !== 'number' || !Number.isInteger(r.port) || r.port < 1 || r.port > 65535)
  ) {
    return `port ${String(r.port)} is not a port in 1..65535`;
  }
  const path = pathModifier(r.path, true);
  if (typeof path === 'string') return path;
  const scheme = r.scheme as 'http' | 'https' | undefined;
  const port = (r.port as number | undefined) ?? (scheme === undefined ? undefined : WELL_KNOWN_PORT[scheme]);
  return {
    kind: 'redirect',
    ...(scheme === undefined ? {} : { scheme }),
    ...(hostname === undefined ? {} : { hostname }),
    ...(port === undefined ? {} : { port }),
    ...(path === undefined ? {} : { path }),
    statusCode: statusCode as IrRedirectAction['statusCode'],
  };
}

const WELL_KNOWN_PORT = { http: 80, https: 443 } as const;

function rewrite(r: { hostname?: unknown; path?: unknown }): IrRewrite | undefined | string {
  const hostname = preciseHostname(r.hostname);
  if (typeof hostname === 'object') return hostname.problem;
  const path = pathModifier(r.path, false);
  if (typeof path === 'string') return path;
  if (hostname === undefined && path === undefined) return undefined;
  return { ...(hostname === undefined ? {} : { hostname }), ...(path === undefined ? {} : { path }) };
}

/** A PreciseHostname (no wildcard), lower-cased as DNS names compare. */
function preciseHostname(h: unknown): string | undefined | { problem: string } {
  if (h === undefined) return undefined;
  if (typeof h !== 'string' || h.startsWith('*') || !validHostname(h.toLowerCase()) || h === '*')
    return { problem: `hostname "${String(h)}" is not a precise hostname` };
  return h.toLowerCase();
}

/** The characters the CRD allows in paths, plus `?` (a query) in a redirect's full path. */
const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})*$/;

/**
 * ReplaceFullPath or ReplacePrefixMatch. An empty replacement prefix means `/` (the spec's table gives
 * both the same results). Values go into Envoy's configuration, where a stray character would make
 * Envoy reject the listener's whole route configuration, so only URL path characters are accepted.
 */
function pathModifier(p: unknown, redirecting: boolean): IrPathModifier | undefined | string {
  if (p === undefined) return undefined;
  const m = p as { type?: unknown; replaceFullPath?: unknown; replacePrefixMatch?: unknown };
  let kind: IrPathModifier['kind'];
  let value: unknown;
  if (m.type === 'ReplaceFullPath') {
    kind = 'ReplaceFullPath';
    value = m.replaceFullPath;
  } else if (m.type === 'ReplacePrefixMatch') {
    kind = 'ReplacePrefixMatch';
    value = m.replacePrefixMatch;
  } else {
    return `path.type ${String(m.type)} is not supported`;
  }
  const field = kind === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch';
  if (typeof value !== 'string') return `path.${field} must be set for path.type ${kind}`;
  const v = value === '' ? '/' : value;
  const [path = '', query] = redirecting && kind === 'ReplaceFullPath' ? v.split(/\?(.*)/s) : [v];
  if (!path.startsWith('/')) return `path.${field} "${value}" must start with "/"`;
  if (!PATH_CHARS.test(path) || (query !== undefined && !PATH_CHARS.test(query.replaceAll('?', ''))))
    return `path.${field} "${value}" may only hold URL path characters and %-escapes`;
  return { kind, value: v };
}

// ---------------------------------------------------------------------------------------------------
// CORS

/** The CRD's CORSOrigin: `*`, or scheme://host[:port] with an optional `*.` label wildcard (or `*` host). */
const ORIGIN = /^(\*|https?:\/\/((\*\.)?([a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+|\*)(:[0-9]{1,5})?)$/;
const METHODS: readonly string[] = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
];

/**
 * The CORS filter. `maxAge` defaults to 5 seconds, as the CRD does. A `*` must stand alone in a list.
 * Lists keep their order (it shows in the response headers) with duplicates removed.
 */
function cors(c: {
  allowOrigins?: unknown;
  allowMethods?: unknown;
  allowHeaders?: unknown;
  exposeHeaders?: unknown;
  allowCredentials?: unknown;
  maxAge?: unknown;
}): IrCors | string {
  const list = (field: string, value: unknown, ok: (v: string) => boolean, norm = (v: string) => v) => {
    const items = value ?? [];
    if (!Array.isArray(items)) return `${field} must be a list`;
    const out: string[] = [];
    for (const v of items as unknown[]) {
      if (typeof v !== 'string' || !ok(v)) return `${field}: "${String(v)}" is not valid`;
      if (!out.includes(norm(v))) out.push(norm(v));
    }
    if (out.includes('*') && out.length > 1) return `${field} cannot contain '*' alongside other values`;
    return out;
  };
  const allowOrigins = list(
    'allowOrigins',
    c.allowOrigins,
    (v) => ORIGIN.test(v),
    (v) => v.toLowerCase(),
  );
  if (typeof allowOrigins === 'string') return allowOrigins;
  const allowMethods = list('allowMethods', c.allowMethods, (v) => v === '*' || METHODS.includes(v));
  if (typeof allowMethods === 'string') return allowMethods;
  const header = (v: string) => v === '*' || HEADER_NAME.test(v);
  const lower = (v: string) => v.toLowerCase();
  const allowHeaders = list('allowHeaders', c.allowHeaders, header, lower);
  if (typeof allowHeaders === 'string') return allowHeaders;
  const exposeHeaders = list('exposeHeaders', c.exposeHeaders, header, lower);
  if (typeof exposeHeaders === 'string') return exposeHeaders;
  if (c.allowCredentials !== undefined && typeof c.allowCredentials !== 'boolean')
    return 'allowCredentials must be true or false';
  const maxAge = c.maxAge ?? 5;
  if (typeof maxAge !== 'number' || !Number.isInteger(maxAge) || maxAge < 1)
    return `maxAge ${String(maxAge)} is not a positive number of seconds`;
  return {
    allowOrigins,
    allowMethods,
    allowHeaders,
    exposeHeaders,
    allowCredentials: c.allowCredentials === true,
    maxAgeSeconds: maxAge,
  };
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
