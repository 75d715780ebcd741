import { RouteReason } from './conditions.js';
import { intersectHostnames } from './hostnames.js';
import {
  admitsRoute,
  GATEWAY_GROUP,
  type GatewaysResult,
  type ListenerState,
  listenerProgrammed,
  listenerWhy,
} from './listeners.js';

/**
 * parentRefs, shared by every route kind (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, UDPRoute): which
 * listeners of which of our Gateways a route attaches to, and the Accepted verdict of each parentRef.
 */

/** A parentRef as every route kind writes it (CommonRouteSpec). */
export interface ParentRef {
  readonly group?: string;
  readonly kind?: string;
  readonly namespace?: string;
  readonly name: string;
  readonly sectionName?: string;
  readonly port?: number;
}

/**
 * A route on one listener, with the hostnames it serves there: the intersection of the route's and the
 * listener's (`*` when neither has one). Empty for kinds without hostnames (TCPRoute, UDPRoute).
 */
export interface Attachment {
  readonly listener: ListenerState;
  readonly hostnames: readonly string[];
}

export interface ParentResult {
  /** The listeners the parentRef attaches to; empty when it is not accepted. */
  readonly attachments: readonly Attachment[];
  /**
   * Accepted, as far as this route alone tells (conflicts with other routes come later). When ok, the
   * message is a stand-in: the status names the listeners it keeps (see acceptedMessage).
   */
  readonly accepted: { readonly ok: boolean; readonly reason: string; readonly message: string };
  /** `namespace/name` of the Gateway. */
  readonly gateway: string;
}

/**
 * One parentRef of a route of `kind` in `routeNamespace`, or undefined if it names something that is
 * not ours (another controller's Gateway, another kind of parent). sectionName and port select
 * listeners; allowedRoutes must admit the kind and the namespace; `hostnames` (the route's; undefined
 * for kinds that have none) must intersect the listener's hostname.
 *
 * Attachment is about the parentRef, allowedRoutes and hostnames alone: a route attached to a listener
 * that is not programmed (a conflict, a certificate that does not resolve) is still attached and
 * Accepted, and counts toward attachedRoutes (the spec: "Listener or Route status does not impact
 * successful attachment"; a route's availability "is also subject to the Gateway's own status
 * conditions and listener status"). Only a Gateway that is itself rejected (its class is not accepted,
 * an infrastructure parametersRef, an address type Skein cannot bind) accepts no route.
 */
export function resolveParent(
  ref: ParentRef,
  kind: string,
  hostnames: readonly string[] | undefined,
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
    gateway: key,
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
  if (gw.rejected !== undefined) {
    return fail(
      RouteReason.NoMatchingParent,
      `Gateway ${key} is not accepted (${gw.rejected.reason}), so it takes no routes: ${gw.rejected.message}`,
    );
  }

  const allowed = selected.filter((l) => admitsRoute(l, kind, routeNamespace));
  if (allowed.length === 0) {
    return fail(
      RouteReason.NotAllowedByListeners,
      `no listener of Gateway ${key} that the parentRef selects allows ${kind}s from namespace ${routeNamespace}`,
    );
  }

  const attachments =
    hostnames === undefined
      ? allowed.map((listener) => ({ listener, hostnames: [] }))
      : allowed
          .map((listener) => ({ listener, hostnames: intersectHostnames(listener.hostname, hostnames) }))
          .filter((a) => a.hostnames.length > 0);
  if (attachments.length === 0) {
    return fail(
      RouteReason.NoMatchingListenerHostname,
      `no hostname of the route (${(hostnames ?? []).join(', ')}) matches a listener of Gateway ${key} it may attach to`,
    );
  }
  return {
    attachments,
    accepted: { ok: true, reason: RouteReason.Accepted, message: `attached to Gateway ${key}` },
    gateway: key,
  };
}

/**
 * The message of an Accepted=True parent: the listeners it is attached to, and for each that carries
 * none of its traffic, why (the listener is not programmed; an older route holds it, `unserved`), and
 * the listeners it lost to a route of the other kind (`lost`).
 */
export function acceptedMessage(
  gateway: string,
  kept: readonly Attachment[],
  unserved: ReadonlyMap<ListenerState, string>,
  lost: readonly string[],
): string {
  const notes: string[] = [];
  /** Listeners that are not programmed, grouped by why. */
  const idle = new Map<string, string[]>();
  for (const a of kept) {
    if (!listenerProgrammed(a.listener)) {
      const why = listenerWhy(a.listener);
      idle.set(why, [...(idle.get(why) ?? []), a.listener.name]);
    } else {
      const why = unserved.get(a.listener);
      if (why !== undefined) notes.push(why);
    }
  }
  for (const [why, names] of idle) {
    notes.push(
      names.length === 1
        ? `listener ${names[0]} is not programmed (${why}), so it serves nothing yet`
        : `listeners ${names.join(', ')} are not programmed (${why}), so they serve nothing yet`,
    );
  }
  notes.push(...lost);
  const names = kept.map((a) => a.listener.name).join(', ');
  return [`attached to Gateway ${gateway} listener(s) ${names}`, ...notes].join('; ');
}

/** The parentRef as status echoes it, with the API server's defaults for group and kind filled in. */
export function echoParentRef(ref: ParentRef): Record<string, unknown> {
  return {
    group: ref.group ?? GATEWAY_GROUP,
    kind: ref.kind ?? 'Gateway',
    ...(ref.namespace === undefined ? {} : { namespace: ref.namespace }),
    name: ref.name,
    ...(ref.sectionName === undefined ? {} : { sectionName: ref.sectionName }),
    ...(ref.port === undefined ? {} : { port: ref.port }),
  };
}
