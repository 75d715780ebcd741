import type { IrHeaderMutation, IrPathMatch, IrPathModifier } from '../../model/ir.js';
import type { ProtoObject } from '../proto.js';
import type { RouteActionFeature } from './httpFilter.js';

/**
 * URL rewrites of forwarded requests (the Gateway API's URLRewrite filter): the Host header and the path
 * the backend sees. Envoy rewrites in the route action, before the request goes upstream; the route was
 * matched on the original path.
 */
export const rewriteFeature: RouteActionFeature = {
  name: 'rewrite',
  routeAction: (r) => ({
    ...hostRewrite(r.rewrite?.hostname, r.requestHeaders),
    ...(r.rewrite?.path === undefined ? {} : pathRewrite(r.rewrite.path, r.match.path, 'rewrite')),
  }),
};

/**
 * The Host the backend sees: the URLRewrite hostname, else a RequestHeaderModifier that sets `host`
 * (the last such `set` wins). Envoy refuses to touch Host through its header lists; this is its way.
 */
export function hostRewrite(
  hostname: string | undefined,
  headers: IrHeaderMutation | undefined,
): ProtoObject {
  const host = hostname ?? (headers?.set ?? []).findLast((h) => h.name.toLowerCase() === 'host')?.value;
  return host === undefined ? {} : { hostRewriteLiteral: host };
}

/**
 * The fields of a path change, for a RouteAction (`rewrite`) or a RedirectAction (`redirect`); both
 * messages have `prefix_rewrite` and `regex_rewrite`, and a redirect has `path_redirect` for a full path.
 *
 * ReplaceFullPath: a forwarded request's path is replaced by a regular expression over the whole path
 * (Envoy keeps the query string either way).
 *
 * ReplacePrefixMatch replaces the part of the path the PathPrefix match matched, segment-wise: with `P`
 * the match and `R` the replacement, both without trailing slashes, a path `P` + rest (rest empty or
 * starting with `/`) becomes `R` + rest, and `/` if that is empty. So `/foo/bar` → `/xyz/bar` for `R`
 * `/xyz` or `/xyz/`, and `/bar` for `R` `/` or empty; `/foo/` → `/xyz/`; `/foo` → `/xyz` (the spec's
 * table). Envoy's plain `prefix_rewrite` swaps the matched characters for `R` verbatim, which is exactly
 * this when neither is empty; the other cases need a regular expression, since a verbatim swap would
 * give `//bar` (replacing `/foo` with `/`) or `bar` (with an empty string).
 */
export function pathRewrite(
  m: IrPathModifier,
  match: IrPathMatch,
  kind: 'rewrite' | 'redirect',
): ProtoObject {
  if (m.kind === 'ReplaceFullPath') {
    if (kind === 'redirect') return { pathRedirect: m.value };
    return { regexRewrite: { pattern: { regex: '^/.*$' }, substitution: substitution(m.value) } };
  }
  const prefix = match.kind === 'PathPrefix' ? withoutTrailingSlashes(match.value) : '';
  const replacement = withoutTrailingSlashes(m.value);
  if (prefix !== '' && replacement !== '') return { prefixRewrite: replacement };
  if (prefix === '' && replacement === '') return {};
  if (prefix === '') {
    // Matched `/`: every path starts with it; put R in front of the whole path.
    return { regexRewrite: { pattern: { regex: '^/' }, substitution: `${substitution(replacement)}/` } };
  }
  // Replaced by nothing: the rest of the path, or `/`.
  return { regexRewrite: { pattern: { regex: `^${escapeRegex(prefix)}/?` }, substitution: '/' } };
}

function withoutTrailingSlashes(path: string): string {
  return path.replace(/\/+$/, '');
}

/** RE2 syntax: a literal string. */
function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** An RE2 substitution that inserts `s` literally (`\` starts a group reference there). */
function substitution(s: string): string {
  return s.replaceAll('\\', '\\\\');
}
