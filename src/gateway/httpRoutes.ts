import type { HTTPRoute, ObjectStatus } from '../sources/objects.js';
import type { BackendIndex, BackendResolution } from './backends.js';
import {
  type Condition,
  ConditionType,
  condition,
  generationOf,
  RouteReason,
  sortConditions,
} from './conditions.js';
import { intersectHostnames } from './hostnames.js';
import { namespaceLabels } from './labelSelector.js';
import {
  GATEWAY_GROUP,
  type GatewayState,
  type GatewaysResult,
  type ListenerState,
  listenerProgrammed,
  listenerValid,
} from './listeners.js';
import { type TranslatedRoute, translateRouteRules } from './routeRules.js';

/** A route on one listener, with the hostnames it serves there. */
export interface Attachment {
  readonly listener: ListenerState;
  readonly hostnames: readonly string[];
}

export interface RouteState {
  readonly route: HTTPRoute;
  readonly translated: TranslatedRoute;
  readonly attachments: readonly Attachment[];
}

/**
 * Per-route memo across builds. The translation of a route object is reused while the object is the
 * same and its backendRefs resolve the same way, so its IR routes keep their identity downstream. The
 * rest (attachments and status) is reused while, besides, the Gateways are the same result (see
 * translate.ts) and the controllerName is the same: then nothing the route's processing reads changed.
 */
export type RouteMemo = WeakMap<HTTPRoute, RouteMemoEntry>;

export interface RouteMemoEntry {
  /** The resolutions of the route's backendRefs, as JSON. */
  readonly key: string;
  readonly translated: TranslatedRoute;
  /** What the entry was computed against: `BackendIndex.resolutions`, the Gateways, the controllerName. */
  readonly resolutions: object;
  readonly gateways: GatewaysResult;
  readonly controllerName: string;
  readonly state: RouteState;
  /** The listeners whose attachedRoutes the route counts toward, each once. */
  readonly counted: readonly ListenerState[];
  /** `namespace/name`: which object the status is of. */
  readonly id: string;
  /** Its status, undefined when no parentRef is ours. Every condition has the time of the build that made it. */
  readonly status: ObjectStatus | undefined;
  /** The status the translator last returned for the route (transition times carried), and when. */
  returned: { readonly status: ObjectStatus; readonly build: number } | undefined;
}

export interface HttpRoutesResult {
  readonly routes: readonly RouteState[];
  /** The memo entries of the routes that have a status, in input order. */
  readonly statuses: readonly RouteMemoEntry[];
  /** Whether two routes share a namespace/name (which the sources do not let through). */
  readonly duplicates: boolean;
}

type ParentRef = NonNullable<NonNullable<HTTPRoute['spec']>['parentRefs']>[number];

/**
 * Step 5: HTTPRoutes. Each parentRef to one of our Gateways is resolved to the listeners the route
 * attaches to (sectionName and port select listeners; allowedRoutes must admit the route's kind and
 * namespace; the hostnames must intersect), which counts toward the listeners' attachedRoutes. The rules
 * are translated once per route, whatever its parents (memoised). Each parent gets its own status entry.
 */
export function processHttpRoutes(
  routes: readonly HTTPRoute[],
  gateways: GatewaysResult,
  backends: BackendIndex,
  memo: RouteMemo,
  options: { controllerName: string; transitionTime: string },
): HttpRoutesResult {
  const { controllerName, transitionTime } = options;
  const states: RouteState[] = [];
  const statuses: RouteMemoEntry[] = [];
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
    const id = `${namespace}/${name}`;
    duplicates ||= ids.has(id);
    ids.add(id);
    const ctx = { generation: generationOf(route), transitionTime };

    // Resolved every build (cheap); the translation only reruns when the outcome changes.
    const resolutions: BackendResolution[][] = (route.spec?.rules ?? []).map((rule) =>
      (rule.backendRefs ?? []).map((ref) => backends.resolve(ref, namespace)),
    );
    const key = JSON.stringify(resolutions);
    const translated = old?.key === key ? old.translated : translateRouteRules(route, resolutions);

    const attachments: Attachment[] = [];
    const counted = new Set<ListenerState>();
    const parents: Record<string, unknown>[] = [];
    for (const ref of route.spec?.parentRefs ?? []) {
      const parent = resolveParent(ref, route, namespace, gateways);
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
            apiVersion: 'gateway.networking.k8s.io/v1',
            kind: 'HTTPRoute',
            namespace,
            name,
            status: { parents },
          };
    const entry: RouteMemoEntry = {
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

interface ParentResult {
  readonly attachments: readonly Attachment[];
  readonly accepted: { readonly ok: boolean; readonly reason: string; readonly message: string };
}

/** One parentRef: undefined if it names something that is not ours (another controller's Gateway). */
function resolveParent(
  ref: ParentRef,
  route: HTTPRoute,
  routeNamespace: string,
  gateways: GatewaysResult,
): ParentResult | undefined {
  if ((ref.group ?? GATEWAY_GROUP) !== GATEWAY_GROUP || (ref.kind ?? 'Gateway') !== 'Gateway')
    return undefined;
  const key = `${ref.namespace ?? routeNamespace}/${ref.name}`;
  const gw = gateways.gateways.get(key);
  const fail = (reason: string, message: string): ParentResult => ({
    attachments: [],
    accepted: { ok: false, reason, message },
  });
  if (gw === undefined) {
    if (gateways.allGateways.has(key)) return undefined;
    return fail(RouteReason.NoMatchingParent, `Gateway ${key} not found`);
  }

  const selected = gw.listeners.filter(
    (l) =>
      (ref.sectionName === undefined || l.name === ref.sectionName) &&
      (ref.port === undefined || l.port === ref.port),
  );
  if (selected.length === 0) {
    const by = [
      ref.sectionName === undefined ? undefined : `named ${ref.sectionName}`,
      ref.port === undefined ? undefined : `on port ${ref.port}`,
    ].filter((x) => x !== undefined);
    return fail(RouteReason.NoMatchingParent, `Gateway ${key} has no listener ${by.join(' ')}`);
  }

  const allowed = selected.filter((l) => allowsRoute(l, gw, routeNamespace));
  if (allowed.length === 0) {
    return fail(
      RouteReason.NotAllowedByListeners,
      `no listener of Gateway ${key} that the parentRef selects allows HTTPRoutes from namespace ${routeNamespace}`,
    );
  }

  const hostnames = route.spec?.hostnames ?? [];
  const attachments = allowed
    .map((listener) => ({ listener, hostnames: intersectHostnames(listener.hostname, hostnames) }))
    .filter((a) => a.hostnames.length > 0);
  if (attachments.length === 0) {
    return fail(
      RouteReason.NoMatchingListenerHostname,
      `no hostname of the route (${hostnames.join(', ')}) matches a listener of Gateway ${key} it may attach to`,
    );
  }

  // Attached (and counted); but a route is only Accepted if a listener it is on actually serves it.
  if (!attachments.some((a) => listenerProgrammed(a.listener))) {
    const why = attachments.map((a) => `${a.listener.name} (${listenerWhy(a.listener, gw)})`).join(', ');
    return {
      attachments,
      accepted: {
        ok: false,
        reason: RouteReason.NoMatchingParent,
        message: `no listener it attaches to is programmed: ${why}`,
      },
    };
  }
  const on = attachments.filter((a) => listenerProgrammed(a.listener)).map((a) => a.listener.name);
  return {
    attachments,
    accepted: {
      ok: true,
      reason: RouteReason.Accepted,
      message: `attached to Gateway ${key} listener(s) ${on.join(', ')}`,
    },
  };
}

/** allowedRoutes: the route kind must be supported, and its namespace admitted. */
function allowsRoute(l: ListenerState, gw: GatewayState, routeNamespace: string): boolean {
  if (!l.supportedKinds.some((k) => k.group === GATEWAY_GROUP && k.kind === 'HTTPRoute')) return false;
  const ns = l.namespaces;
  if (ns.from === 'All') return true;
  if (ns.from === 'Same') return routeNamespace === gw.namespace;
  return ns.selector.ok && ns.selector.matches(namespaceLabels(routeNamespace));
}

function listenerWhy(l: ListenerState, gw: GatewayState): string {
  if (gw.rejected !== undefined) return `Gateway not accepted: ${gw.rejected.reason}`;
  if (!gw.addresses.ok) return 'Gateway address not usable';
  if (!l.accepted.ok) return l.accepted.reason;
  if (l.conflict !== undefined) return 'HostnameConflict';
  if (!listenerValid(l)) return 'invalid';
  return 'Gateway not accepted';
}

/** The parentRef as status echoes it, with the API server's defaults for group and kind filled in. */
function echoParentRef(ref: ParentRef): Record<string, unknown> {
  return {
    group: ref.group ?? GATEWAY_GROUP,
    kind: ref.kind ?? 'Gateway',
    ...(ref.namespace === undefined ? {} : { namespace: ref.namespace }),
    name: ref.name,
    ...(ref.sectionName === undefined ? {} : { sectionName: ref.sectionName }),
    ...(ref.port === undefined ? {} : { port: ref.port }),
  };
}
