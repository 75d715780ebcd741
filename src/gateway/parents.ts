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
  readonly attachments: readonly Attachment[];
  readonly accepted: { readonly ok: boolean; readonly reason: string; readonly message: string };
}

/**
 * One parentRef of a route of `kind` in `routeNamespace`, or undefined if it names something that is
 * not ours (another controller's Gateway, another kind of parent). sectionName and port select
 * listeners; allowedRoutes must admit the kind and the namespace; `hostnames` (the route's; undefined
 * for kinds that have none) must intersect the listener's hostname.
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

  // Attached (and counted); but a route is only Accepted if a listener it is on actually serves it.
  if (!attachments.some((a) => listenerProgrammed(a.listener))) {
    const why = attachments.map((a) => `${a.listener.name} (${listenerWhy(a.listener)})`).join(', ');
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
