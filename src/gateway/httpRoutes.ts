import type { GRPCRoute, HTTPRoute, ObjectStatus } from '../sources/objects.js';
import {
  type BackendIndex,
  type BackendRefHolder,
  type BackendRefSpec,
  type BackendResolution,
  HTTP_ROUTE_HOLDER,
} from './backends.js';
import {
  type Condition,
  ConditionType,
  condition,
  generationOf,
  RouteReason,
  sortConditions,
} from './conditions.js';
import type { GatewaysResult, ListenerState, Verdict } from './listeners.js';
import { type Attachment, echoParentRef, type ParentRef, resolveParent } from './parents.js';
import { ruleBackendRefs, type TranslatedRoute, translateRouteRules } from './routeRules.js';

export type { Attachment } from './parents.js';

/** What every route kind's object has that route processing reads. */
export interface RouteObject {
  readonly apiVersion: string;
  readonly metadata?: { readonly namespace?: string; readonly name?: string; readonly generation?: number };
  readonly spec?: { readonly parentRefs?: readonly ParentRef[] };
}

/** What every route kind's translation tells route processing: rules kept and dropped, ResolvedRefs. */
export interface RouteTranslation {
  readonly rules: readonly unknown[];
  readonly dropped: readonly string[];
  readonly resolvedRefs: Verdict;
}

/**
 * One route kind, for processRoutes: its name, how its backendRefs are spoken to, where its hostnames
 * and backendRefs are, and how its rules translate (pure, given how the backendRefs resolved).
 */
export interface RouteKind<R extends RouteObject, T extends RouteTranslation> {
  readonly kind: 'HTTPRoute' | 'GRPCRoute' | 'TLSRoute' | 'TCPRoute' | 'UDPRoute';
  readonly holder: BackendRefHolder;
  /** The route's hostnames, or undefined for kinds that have none (TCPRoute, UDPRoute). */
  hostnames(route: R): readonly string[] | undefined;
  /** The backendRefs of each rule. */
  backendRefs(route: R): readonly (readonly BackendRefSpec[] | undefined)[];
  translate(route: R, resolutions: readonly (readonly BackendResolution[])[]): T;
}

/** A route and where it attached. HTTPRoutes and GRPCRoutes (the kinds that route requests) by default. */
export interface RouteState<
  R extends RouteObject = HTTPRoute | GRPCRoute,
  T extends RouteTranslation = TranslatedRoute,
> {
  readonly route: R;
  readonly translated: T;
  readonly attachments: readonly Attachment[];
}

export const HTTP_ROUTE_KIND: RouteKind<HTTPRoute, TranslatedRoute> = {
  kind: 'HTTPRoute',
  holder: HTTP_ROUTE_HOLDER,
  hostnames: (route) => route.spec?.hostnames ?? [],
  // Its backendRefs, then its RequestMirror filters' backendRefs (see ruleBackendRefs).
  backendRefs: (route) => (route.spec?.rules ?? []).map(ruleBackendRefs),
  translate: translateRouteRules,
};

/**
 * Per-route memo across builds. The translation of a route object is reused while the object is the
 * same and its backendRefs resolve the same way, so its IR routes keep their identity downstream. The
 * rest (attachments and status) is reused while, besides, the Gateways are the same result (see
 * translate.ts) and the controllerName is the same: then nothing the route's processing reads changed.
 */
export type RouteMemo<
  R extends RouteObject = HTTPRoute,
  T extends RouteTranslation = TranslatedRoute,
> = WeakMap<R, RouteMemoEntry<R, T>>;

export interface RouteMemoEntry<
  R extends RouteObject = RouteObject,
  T extends RouteTranslation = RouteTranslation,
> {
  /** The resolutions of the route's backendRefs, as JSON. */
  readonly key: string;
  readonly translated: T;
  /** What the entry was computed against: `BackendIndex.resolutions`, the Gateways, the controllerName. */
  readonly resolutions: object;
  readonly gateways: GatewaysResult;
  readonly controllerName: string;
  readonly state: RouteState<R, T>;
  /** The listeners whose attachedRoutes the route counts toward, each once. */
  readonly counted: readonly ListenerState[];
  /** `kind/namespace/name`: which object the status is of. */
  readonly id: string;
  /** Its status, undefined when no parentRef is ours. Every condition has the time of the build that made it. */
  readonly status: ObjectStatus | undefined;
  /** The status the translator last returned for the route (transition times carried), and when. */
  returned: { readonly status: ObjectStatus; readonly build: number } | undefined;
}

export interface RoutesResult<R extends RouteObject, T extends RouteTranslation> {
  readonly routes: readonly RouteState<R, T>[];
  /** The memo entries of the routes that have a status, in input order. */
  readonly statuses: readonly RouteMemoEntry<R, T>[];
  /** Whether two routes share a namespace/name (which the sources do not let through). */
  readonly duplicates: boolean;
}

export type HttpRoutesResult = RoutesResult<HTTPRoute, TranslatedRoute>;

/** Step 5: HTTPRoutes (see processRoutes). */
export function processHttpRoutes(
  routes: readonly HTTPRoute[],
  gateways: GatewaysResult,
  backends: BackendIndex,
  memo: RouteMemo,
  options: { controllerName: string; transitionTime: string },
): HttpRoutesResult {
  return processRoutes(HTTP_ROUTE_KIND, routes, gateways, backends, memo, options);
}

/**
 * Routes of one kind. Each parentRef to one of our Gateways is resolved to the listeners the route
 * attaches to (sectionName and port select listeners; allowedRoutes must admit the route's kind and
 * namespace; the hostnames must intersect), which counts toward the listeners' attachedRoutes. The rules
 * are translated once per route, whatever its parents (memoised). Each parent gets its own status entry.
 */
export function processRoutes<R extends RouteObject, T extends RouteTranslation>(
  kind: RouteKind<R, T>,
  routes: readonly R[],
  gateways: GatewaysResult,
  backends: BackendIndex,
  memo: RouteMemo<R, T>,
  options: { controllerName: string; transitionTime: string },
): RoutesResult<R, T> {
  const { controllerName, transitionTime } = options;
  const states: RouteState<R, T>[] = [];
  const statuses: RouteMemoEntry<R, T>[] = [];
  const ids = new Set<string>();
  let duplicates = false;
  for (const route of routes) {
    const old = memo.get(route);
    if (
      old !== undefined &&
      old.resolutions === backends.resolutions &&
      old.gateways === gateways &&
      old.controllerName === controllerName
    ) {
      // Nothing the route's processing reads changed: the same state and status as last time.
      for (const l of old.counted) l.attachedRoutes++;
      states.push(old.state);
      if (old.status !== undefined) statuses.push(old);
      duplicates ||= ids.has(old.id);
      ids.add(old.id);
      continue;
    }

    const namespace = route.metadata?.namespace ?? 'default';
    const name = route.metadata?.name ?? '';
    // The kind too: an HTTPRoute and a GRPCRoute may share a namespace and name.
    const id = `${kind.kind}/${namespace}/${name}`;
    duplicates ||= ids.has(id);
    ids.add(id);
    const ctx = { generation: generationOf(route), transitionTime };

    // Resolved every build (cheap); the translation only reruns when the outcome changes.
    const resolutions: BackendResolution[][] = kind
      .backendRefs(route)
      .map((refs) => (refs ?? []).map((ref) => backends.resolve(ref, namespace, kind.holder)));
    const key = JSON.stringify(resolutions);
    const translated = old?.key === key ? old.translated : kind.translate(route, resolutions);
    const hostnames = kind.hostnames(route);

    const attachments: Attachment[] = [];
    const counted = new Set<ListenerState>();
    const parents: Record<string, unknown>[] = [];
    for (const ref of route.spec?.parentRefs ?? []) {
      const parent = resolveParent(ref, kind.kind, hostnames, namespace, gateways);
      if (parent === undefined) continue; // not a parent of ours
      for (const a of parent.attachments) {
        if (!counted.has(a.listener)) {
          counted.add(a.listener);
          a.listener.attachedRoutes++;
        }
        attachments.push(a);
      }
      const conditions: Condition[] = [];
      if (!parent.accepted.ok) {
        conditions.push(
          condition(ctx, ConditionType.Accepted, false, parent.accepted.reason, parent.accepted.message),
        );
      } else if (translated.rules.length === 0) {
        conditions.push(
          condition(
            ctx,
            ConditionType.Accepted,
            false,
            RouteReason.UnsupportedValue,
            `no rule can be served: ${translated.dropped.join('; ')}`,
          ),
        );
      } else {
        conditions.push(
          condition(ctx, ConditionType.Accepted, true, RouteReason.Accepted, parent.accepted.message),
        );
        if (translated.dropped.length > 0) {
          conditions.push(
            condition(
              ctx,
              ConditionType.PartiallyInvalid,
              true,
              RouteReason.UnsupportedValue,
              `Dropped Rule(s): ${translated.dropped.join('; ')}`,
            ),
          );
        }
      }
      const rr = translated.resolvedRefs;
      conditions.push(condition(ctx, ConditionType.ResolvedRefs, rr.ok, rr.reason, rr.message));
      parents.push({
        parentRef: echoParentRef(ref),
        controllerName,
        conditions: sortConditions(conditions),
      });
    }
    const state = { route, translated, attachments };
    states.push(state);
    const status: ObjectStatus | undefined =
      parents.length === 0
        ? undefined
        : {
            // Written back in the version the object was read in (TLSRoute and others have several).
            apiVersion: route.apiVersion,
            kind: kind.kind,
            namespace,
            name,
            status: { parents },
          };
    const entry: RouteMemoEntry<R, T> = {
      key,
      translated,
      resolutions: backends.resolutions,
      gateways,
      controllerName,
      state,
      counted: [...counted],
      id,
      status,
      returned: undefined,
    };
    memo.set(route, entry);
    if (status !== undefined) statuses.push(entry);
  }
  return { routes: states, statuses, duplicates };
}

/**
 * A route status as of `transitionTime`: the memoised one if it was made then, else the same with every
 * condition's lastTransitionTime set to it.
 */
export function stampRouteStatus(status: ObjectStatus, transitionTime: string): ObjectStatus {
  const parents = status.status['parents'] as readonly Record<string, unknown>[];
  const conditionsOf = (p: Record<string, unknown>) => p['conditions'] as readonly Condition[];
  if (parents.every((p) => conditionsOf(p).every((c) => c.lastTransitionTime === transitionTime))) {
    return status;
  }
  return {
    ...status,
    status: {
      ...status.status,
      parents: parents.map((p) => ({
        ...p,
        conditions: conditionsOf(p).map((c) => ({ ...c, lastTransitionTime: transitionTime })),
      })),
    },
  };
}
