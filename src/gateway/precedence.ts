import type { IrRoute } from '../model/ir.js';

/**
 * The order of routes within a virtual host (Envoy takes the first match), as the Gateway API's
 * HTTPRoute rules define it. Across all HTTPRoutes sharing a hostname, a match wins that has, in turn:
 *
 * 1. an Exact path; then (implementation-specific) a RegularExpression path; then a PathPrefix path
 *    (regular expressions sit between the two, longest pattern first, as Envoy Gateway orders them);
 * 2. the longest path value (trailing slash of a prefix ignored);
 * 3. a method;
 * 4. the most header matches;
 * 5. the most query parameter matches;
 *
 * and on a tie: the oldest route (creationTimestamp), then the route first in namespace/name order, then
 * the first rule in the route, then the first match in the rule.
 *
 * GRPCRoutes have their own order (keys with `grpc` set): the most characters in the matching service,
 * then in the method, then the most header matches, an exact match before a regular expression, then
 * the same ties. The Gateway API forbids merging the two kinds on one hostname; should both reach one
 * virtual host anyway, GRPCRoute matches come first (they only match gRPC paths, while an HTTPRoute's
 * `/` prefix would match every call), which keeps the order total.
 */
export interface PrecedenceKey {
  /** 0 Exact, 1 RegularExpression, 2 PathPrefix. */
  readonly pathRank: number;
  readonly pathLength: number;
  readonly hasMethod: boolean;
  readonly headers: number;
  readonly queryParams: number;
  /** GRPCRoute matches only: characters of the service and method matched, and whether by regex. */
  readonly grpc?: { readonly service: number; readonly method: number; readonly regex: boolean };
  /** The route's kind when it is not an HTTPRoute (an HTTPRoute and a GRPCRoute may share a name). */
  readonly kind?: string;
  /** creationTimestamp in ms since the epoch; +Infinity when unknown (files have none). */
  readonly createdMs: number;
  readonly namespace: string;
  readonly name: string;
  readonly rule: number;
  readonly match: number;
}

export interface RankedRoute {
  readonly route: IrRoute;
  readonly key: PrecedenceKey;
}

export function precedenceKey(
  route: IrRoute,
  source: { createdMs: number; namespace: string; name: string; rule: number; match: number },
): PrecedenceKey {
  const path = route.match.path;
  return {
    pathRank: path.kind === 'Exact' ? 0 : path.kind === 'RegularExpression' ? 1 : 2,
    pathLength: path.value.length,
    hasMethod: route.match.method !== undefined,
    headers: route.match.headers?.length ?? 0,
    queryParams: route.match.queryParams?.length ?? 0,
    ...source,
  };
}

export function comparePrecedence(a: PrecedenceKey, b: PrecedenceKey): number {
  if (a.grpc !== undefined || b.grpc !== undefined) {
    if (a.grpc === undefined) return 1;
    if (b.grpc === undefined) return -1;
    return (
      b.grpc.service - a.grpc.service ||
      b.grpc.method - a.grpc.method ||
      b.headers - a.headers ||
      Number(a.grpc.regex) - Number(b.grpc.regex) ||
      compareTies(a, b)
    );
  }
  return (
    a.pathRank - b.pathRank ||
    b.pathLength - a.pathLength ||
    Number(b.hasMethod) - Number(a.hasMethod) ||
    b.headers - a.headers ||
    b.queryParams - a.queryParams ||
    compareTies(a, b)
  );
}

/** Route age, then namespace/name, then kind, then position in the route. */
function compareTies(a: PrecedenceKey, b: PrecedenceKey): number {
  return (
    compareNumbers(a.createdMs, b.createdMs) ||
    compareText(a.namespace, b.namespace) ||
    compareText(a.name, b.name) ||
    compareText(a.kind ?? '', b.kind ?? '') ||
    a.rule - b.rule ||
    a.match - b.match
  );
}

/** Milliseconds of `metadata.creationTimestamp`, or +Infinity when absent or unreadable. */
export function createdMs(object: { metadata?: { creationTimestamp?: unknown } | undefined }): number {
  const t = object.metadata?.creationTimestamp;
  const ms = typeof t === 'string' ? Date.parse(t) : t instanceof Date ? t.getTime() : Number.NaN;
  return Number.isNaN(ms) ? Number.POSITIVE_INFINITY : ms;
}

/** Older first; objects without a creationTimestamp after those with one, tied among themselves. */
export function compareAge(
  a: { metadata?: { creationTimestamp?: unknown } | undefined },
  b: { metadata?: { creationTimestamp?: unknown } | undefined },
): number {
  return compareNumbers(createdMs(a), createdMs(b));
}

function compareNumbers(a: number, b: number): number {
  return a === b ? 0 : a < b ? -1 : 1;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
