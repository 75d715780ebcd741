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
import { type Attachment, acceptedMessage, echoParentRef, type ParentRef, resolveParent } from './parents.js';
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

/** One parentRef of ours, as far as the route alone tells (other routes are looked at later). */
export interface ParentState {
  readonly ref: ParentRef;
  /** `namespace/name` of the Gateway. */
  readonly gateway: string;
  /** The listeners it attaches to; empty when it is not accepted. */
  readonly attachments: readonly Attachment[];
  readonly accepted: Verdict;
}

/**
 * A route and where it attached. HTTPRoutes and GRPCRoutes (the kinds that route requests) by default.
 * `attachments` are those of every accepted parentRef; in the state finishRoutes hands on, without the
 * listeners the route lost to another route (see routeConflicts.ts).
 */
export interface RouteState<
  R extends RouteObject = HTTPRoute | GRPCRoute,
  T extends RouteTranslation = TranslatedRoute,
> {
  readonly route: R;
  readonly translated: T;
  readonly attachments: readonly Attachment[];
  readonly parents: readonly ParentState[];
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
 * same and its backendRefs resolve the same way, so its IR routes keep their identity downstream. Its
 * parents are reused while, besides, the Gateways are the same result (see translate.ts) and the
 * controllerName is the same: then nothing the route's own processing reads changed. Its status is
 * reused while, besides, what other routes take from it is the same (`final`).
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
  /** The route on its own, before other routes are looked at. */
  readonly state: RouteState<R, T>;
  /** `kind/namespace/name`: which object the status is of. */
  readonly id: string;
  readonly kind: RouteKindName;
  /** The outcome of the last build that used this entry, and what other routes took from it then. */
  final: RouteFinal<R, T> | undefined;
}

export type RouteKindName = RouteKind<RouteObject, RouteTranslation>['kind'];

/** A route's outcome in one build, given what other routes took from it. */
export interface RouteFinal<
  R extends RouteObject = RouteObject,
  T extends RouteTranslation = RouteTranslation,
> {
  /** RouteLosses as a string: equal keys, equal outcome. */
  readonly lossKey: string;
  /** The state the IR is assembled from: without the attachments lost to other routes. */
  readonly state: RouteState<R, T>;
  /** The listeners whose attachedRoutes the route counts toward (parents with Accepted=True), each once. */
  readonly counted: readonly ListenerState[];
  /** `kind/namespace/name`: which object the status is of. */
  readonly id: string;
  /** Its status, undefined when no parentRef is ours. Every condition has the time of the build that made it. */
  readonly status: ObjectStatus | undefined;
  /** The status the translator last returned for the route (transition times carried), and when. */
  returned: { readonly status: ObjectStatus; build: number } | undefined;
}

/**
 * What other routes took from a route, per listener it attached to (see routeConflicts.ts and
 * l4Routes.ts). Both are rare; most routes lose nothing.
 */
export interface RouteLosses {
  /**
   * Listeners where the route is not accepted because a route of the other request kind holds a
   * hostname it has there (an HTTPRoute and a GRPCRoute must not share one): why, per listener.
   */
  readonly rejected?: ReadonlyMap<ListenerState, string>;
  /**
   * Listeners where the route is attached and accepted but carries no traffic, because an older route
   * holds the listener (a TCP or UDP port forwards one way; a TLS server name goes to one route): why.
   */
  readonly unserved?: ReadonlyMap<ListenerState, string>;
}

export interface RoutesResult<R extends RouteObject, T extends RouteTranslation> {
  /** Each route on its own, in input order (see finishRoutes for what other routes take). */
  readonly routes: readonly RouteState<R, T>[];
  /** Their memo entries, in the same order. */
  readonly entries: readonly RouteMemoEntry<R, T>[];
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
  options: { controllerName: string },
): HttpRoutesResult {
  return processRoutes(HTTP_ROUTE_KIND, routes, gateways, backends, memo, options);
}

/**
 * Routes of one kind, each on its own. Each parentRef to one of our Gateways is resolved to the
 * listeners the route attaches to (sectionName and port select listeners; allowedRoutes must admit the
 * route's kind and namespace; the hostnames must intersect). The rules are translated once per route,
 * whatever its parents (memoised). What other routes take from it, its status and the attachedRoutes
 * counts come after every kind is processed (finishRoutes).
 */
export function processRoutes<R extends RouteObject, T extends RouteTranslation>(
  kind: RouteKind<R, T>,
  routes: readonly R[],
  gateways: GatewaysResult,
  backends: BackendIndex,
  memo: RouteMemo<R, T>,
  options: { controllerName: string },
): RoutesResult<R, T> {
  const { controllerName } = options;
  const states: RouteState<R, T>[] = [];
  const entries: RouteMemoEntry<R, T>[] = [];
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
      // Nothing the route's own processing reads changed.
      states.push(old.state);
      entries.push(old);
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

    // Resolved every build (cheap); the translation only reruns when the outcome changes.
    const resolutions: BackendResolution[][] = kind
      .backendRefs(route)
      .map((refs) => (refs ?? []).map((ref) => backends.resolve(ref, namespace, kind.holder)));
    const key = JSON.stringify(resolutions);
    const translated = old?.key === key ? old.translated : kind.translate(route, resolutions);
    const hostnames = kind.hostnames(route);

    const attachments: Attachment[] = [];
    const parents: ParentState[] = [];
    for (const ref of route.spec?.parentRefs ?? []) {
      const parent = resolveParent(ref, kind.kind, hostnames, namespace, gateways);
      if (parent === undefined) continue; // not a parent of ours
      let accepted: Verdict = parent.accepted;
      if (accepted.ok && translated.rules.length === 0) {
        accepted = {
          ok: false,
          reason: RouteReason.UnsupportedValue,
          message: `no rule can be served: ${translated.dropped.join('; ')}`,
        };
      }
      const mine = accepted.ok ? parent.attachments : [];
      attachments.push(...mine);
      parents.push({ ref, gateway: parent.gateway, attachments: mine, accepted });
    }
    const state: RouteState<R, T> = { route, translated, attachments, parents };
    states.push(state);
    const entry: RouteMemoEntry<R, T> = {
      key,
      translated,
      resolutions: backends.resolutions,
      gateways,
      controllerName,
      state,
      id,
      kind: kind.kind,
      final: undefined,
    };
    memo.set(route, entry);
    entries.push(entry);
  }
  return { routes: states, entries, duplicates };
}

const NO_LOSSES: RouteLosses = {};

/**
 * Step 5c, after every kind is processed and other routes have had their say (`losses`, by route
 * state): each route's final state and status, and the attachedRoutes counts.
 *
 * Per parentRef: Accepted as the route alone tells, unless a route of the other request kind took
 * every listener it attaches to (Accepted=False, HostnameConflict). ResolvedRefs from the translation.
 * PartiallyInvalid (only with Accepted=True) when rules were dropped. A listener counts the route once
 * if some parentRef with Accepted=True attaches to it; routes with any other Accepted are not counted,
 * as the spec asks.
 *
 * The outcome is reused (same objects) while the memo entry and the losses are the same, so that a
 * build where nothing changed costs a key comparison per route.
 */
export function finishRoutes<R extends RouteObject, T extends RouteTranslation>(
  entries: readonly RouteMemoEntry<R, T>[],
  losses: ReadonlyMap<RouteState, RouteLosses>,
  options: { controllerName: string; transitionTime: string },
): RouteFinal<R, T>[] {
  const out: RouteFinal<R, T>[] = [];
  for (const entry of entries) {
    const lost = losses.get(entry.state as unknown as RouteState) ?? NO_LOSSES;
    const lossKey = lost === NO_LOSSES ? '' : lossKeyOf(lost);
    let final = entry.final;
    if (final === undefined || final.lossKey !== lossKey) {
      final = finishRoute(entry, lost, lossKey, options);
      entry.final = final;
    }
    for (const l of final.counted) l.attachedRoutes++;
    out.push(final);
  }
  return out;
}

function lossKeyOf(lost: RouteLosses): string {
  const part = (m: ReadonlyMap<ListenerState, string> | undefined) =>
    [...(m ?? [])].map(([l, why]) => `${l.gateway.namespace}/${l.gateway.name}/${l.name}\0${why}`).sort();
  return JSON.stringify([part(lost.rejected), part(lost.unserved)]);
}

function finishRoute<R extends RouteObject, T extends RouteTranslation>(
  entry: RouteMemoEntry<R, T>,
  lost: RouteLosses,
  lossKey: string,
  options: { controllerName: string; transitionTime: string },
): RouteFinal<R, T> {
  const { state } = entry;
  const { route, translated } = state;
  const ctx = { generation: generationOf(route), transitionTime: options.transitionTime };
  const rejected = lost.rejected ?? new Map<ListenerState, string>();
  const unserved = lost.unserved ?? new Map<ListenerState, string>();
  const counted = new Set<ListenerState>();
  const attachments: Attachment[] = [];
  const parents: Record<string, unknown>[] = [];
  for (const parent of state.parents) {
    const conditions: Condition[] = [];
    const kept = parent.attachments.filter((a) => !rejected.has(a.listener));
    const lostHere = parent.attachments.flatMap((a) => {
      const why = rejected.get(a.listener);
      return why === undefined ? [] : [why];
    });
    if (!parent.accepted.ok) {
      conditions.push(
        condition(ctx, ConditionType.Accepted, false, parent.accepted.reason, parent.accepted.message),
      );
    } else if (kept.length === 0) {
      conditions.push(
        condition(ctx, ConditionType.Accepted, false, RouteReason.HostnameConflict, lostHere.join('; ')),
      );
    } else {
      for (const a of kept) counted.add(a.listener);
      attachments.push(...kept);
      conditions.push(
        condition(
          ctx,
          ConditionType.Accepted,
          true,
          RouteReason.Accepted,
          acceptedMessage(parent.gateway, kept, unserved, lostHere),
        ),
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
      parentRef: echoParentRef(parent.ref),
      controllerName: options.controllerName,
      conditions: sortConditions(conditions),
    });
  }
  const status: ObjectStatus | undefined =
    parents.length === 0
      ? undefined
      : {
          // Written back in the version the object was read in (TLSRoute and others have several).
          apiVersion: route.apiVersion,
          kind: entry.kind,
          namespace: route.metadata?.namespace ?? 'default',
          name: route.metadata?.name ?? '',
          status: { parents },
        };
  // The state keeps its identity unless the route lost a listener, so the IR order memo stays warm.
  const same = attachments.length === state.attachments.length;
  return {
    lossKey,
    state: same ? state : { ...state, attachments },
    counted: [...counted],
    id: entry.id,
    status,
    returned: undefined,
  };
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
