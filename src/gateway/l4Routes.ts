import type { IrL4Route, IrWeightedBackend } from '../model/ir.js';
import { l4RouteName } from '../model/names.js';
import type { TCPRoute, TLSRoute, UDPRoute } from '../sources/objects.js';
import type { BackendResolution } from './backends.js';
import type { RouteKind, RouteState } from './httpRoutes.js';
import { type L4Attachment, type ListenerState, listenerProgrammed, type Verdict } from './listeners.js';
import type { Attachment } from './parents.js';
import { createdMs } from './precedence.js';
import { resolvedRefsVerdict, weightedBackends } from './routeBackends.js';

/**
 * TLSRoute, TCPRoute and UDPRoute: routes of whole connections (datagrams for UDP), with rules that
 * have no matches, only weighted backendRefs. They attach to TLS, TCP and UDP listeners through the
 * same parentRef logic as HTTPRoutes (parents.ts); TLSRoutes intersect their SNI hostnames with the
 * listener's, as HTTPRoutes do. Each rule becomes one IrL4Route on each listener the route attaches to.
 */

/** One rule's backends: the valid ones by weight, and the weight of those that did not resolve (refused). */
export interface L4Rule {
  readonly index: number;
  readonly backends: readonly IrWeightedBackend[];
  readonly invalidWeight: number;
}

export interface L4Translation {
  readonly rules: readonly L4Rule[];
  readonly dropped: readonly string[];
  readonly resolvedRefs: Verdict;
}

export type L4RouteObject = TLSRoute | TCPRoute | UDPRoute;
export type L4RouteState = RouteState<L4RouteObject, L4Translation>;

/** TLSRoute: the bytes of a TLS connection (passthrough) or of what it carries (terminate), by SNI. */
export const TLS_ROUTE_KIND: RouteKind<TLSRoute, L4Translation> = {
  kind: 'TLSRoute',
  holder: { kind: 'TLSRoute', speaks: 'tcp' },
  hostnames: (route) => route.spec?.hostnames ?? [],
  backendRefs: (route) => (route.spec?.rules ?? []).map((rule) => rule.backendRefs),
  translate: (route, resolutions) => translateL4Rules(route, resolutions),
};

export const TCP_ROUTE_KIND: RouteKind<TCPRoute, L4Translation> = {
  kind: 'TCPRoute',
  holder: { kind: 'TCPRoute', speaks: 'tcp' },
  hostnames: () => undefined,
  backendRefs: (route) => (route.spec?.rules ?? []).map((rule) => rule.backendRefs),
  translate: (route, resolutions) => translateL4Rules(route, resolutions),
};

export const UDP_ROUTE_KIND: RouteKind<UDPRoute, L4Translation> = {
  kind: 'UDPRoute',
  holder: { kind: 'UDPRoute', speaks: 'udp' },
  hostnames: () => undefined,
  backendRefs: (route) => (route.spec?.rules ?? []).map((rule) => rule.backendRefs),
  translate: (route, resolutions) => translateL4Rules(route, resolutions),
};

/**
 * The rules of an L4 route, whatever the listeners it attaches to. Pure: a function of the route and of
 * how its backendRefs resolved. A rule keeps its valid backends, and the weight of the invalid ones:
 * that share of connections is refused (datagrams dropped), as the spec asks, rather than shifted to
 * the valid backends; with no valid backend left (every ref invalid or of weight 0) every connection is.
 *
 * Only the first rule is served. A TCP or UDP listener forwards its port one way, and every rule of a
 * TLSRoute has the route's hostnames, which the first rule takes; Gateway API v1 allows one rule for
 * these kinds, v1alpha2 up to 16. The others are dropped ("Dropped Rule", PartiallyInvalid), so that
 * the status says they carry nothing.
 */
export function translateL4Rules(
  route: L4RouteObject,
  resolutions: readonly (readonly BackendResolution[])[],
): L4Translation {
  const specRules = route.spec?.rules ?? [];
  const rules: L4Rule[] = specRules.slice(0, 1).map((rule, index) => {
    const { backends, invalidWeight } = weightedBackends(rule.backendRefs ?? [], resolutions[index] ?? []);
    return { index, backends, invalidWeight };
  });
  const dropped = specRules
    .slice(1)
    .map(
      (_, i) =>
        `rules[${i + 1}]: only the first rule of a ${route.kind} carries traffic (${
          route.kind === 'TLSRoute'
            ? "the first rule takes the route's server names"
            : `a ${route.kind === 'UDPRoute' ? 'UDP' : 'TCP'} listener forwards its port one way`
        })`,
    );
  return { rules, dropped, resolvedRefs: resolvedRefsVerdict(resolutions) };
}

/** A route attached to one listener, as the IR assembly hands it over. */
export interface L4Attached {
  readonly state: L4RouteState;
  readonly attachment: Attachment;
}

/** The IrL4Routes of one listener, and the routes attached to it that carry none of its traffic (why). */
export interface ListenerL4Routes {
  readonly routes: IrL4Route[];
  readonly unserved: Map<L4RouteState, string>;
}

/**
 * The IrL4Routes of one listener from the L4 routes attached to it, sorted by name.
 *
 * On a TLS listener a connection picks a route by SNI, so each server name (or "any", for a route
 * without hostnames on a listener without one) belongs to one route: the oldest route claims it
 * (creationTimestamp, then namespace/name), later claims are left out, and a route left with no name
 * carries nothing there. On a TCP or UDP listener there is nothing to choose by: the oldest route takes
 * the port, as Envoy can only forward a port one way (the conformance tests TCPRouteMultipleRoutesAttachment
 * and UDPRouteMultipleRoutesAttachment ask for exactly this, with every route Accepted and counted).
 * The routes that carry nothing are named in `unserved`, for their status message.
 */
export function listenerL4Routes(
  listener: ListenerState,
  protocol: string,
  attached: readonly L4Attached[],
): ListenerL4Routes {
  const ordered = [...attached].sort(
    (a, b) =>
      compareNumbers(createdMs(a.state.route), createdMs(b.state.route)) ||
      compareText(a.state.route.metadata?.namespace ?? '', b.state.route.metadata?.namespace ?? '') ||
      compareText(a.state.route.metadata?.name ?? '', b.state.route.metadata?.name ?? ''),
  );
  const out: IrL4Route[] = [];
  const unserved = new Map<L4RouteState, string>();
  const names = new Set<string>();
  const where = `listener ${listener.name} of Gateway ${listener.gateway.namespace}/${listener.gateway.name}`;
  const nameOf = (r: L4RouteObject) =>
    `${r.kind} ${r.metadata?.namespace ?? 'default'}/${r.metadata?.name ?? ''}`;
  const irRoute = (state: L4RouteState, rule: L4Rule, hostnames: readonly string[]): IrL4Route => {
    const route = state.route;
    return {
      name: l4RouteName(
        route.kind,
        route.metadata?.namespace ?? 'default',
        route.metadata?.name ?? '',
        rule.index,
      ),
      hostnames,
      backends: rule.backends,
      ...(rule.invalidWeight > 0 ? { invalidBackendWeight: rule.invalidWeight } : {}),
    };
  };
  if (protocol === 'TLS') {
    /** Each server name, and the route that took it. */
    const claimed = new Map<string, L4RouteState>();
    for (const { state, attachment } of ordered) {
      const rule = state.translated.rules[0];
      if (rule === undefined) continue;
      const ir = irRoute(state, rule, []);
      if (names.has(ir.name)) continue;
      // `*` (neither route nor listener names a host) is "any server name": no SNI condition.
      const hostnames = attachment.hostnames.filter((h) => !claimed.has(h));
      if (hostnames.length === 0) {
        const holders = [...new Set(attachment.hostnames.map((h) => claimed.get(h)))]
          .filter((h) => h !== undefined)
          .map((h) => nameOf(h.route));
        unserved.set(
          state,
          `on ${where} every server name it has (${attachment.hostnames.map((h) => (h === '*' ? 'any' : h)).join(', ')}) is taken by ${holders.join(', ')}, which ${holders.length === 1 ? 'precedes' : 'precede'} it (creationTimestamp, then namespace/name), so it carries no connection there`,
        );
        continue;
      }
      for (const h of hostnames) claimed.set(h, state);
      names.add(ir.name);
      out.push({ ...ir, hostnames: hostnames.filter((h) => h !== '*') });
    }
  } else {
    const first = ordered[0];
    const rule = first?.state.translated.rules[0];
    if (first !== undefined && rule !== undefined) {
      out.push(irRoute(first.state, rule, []));
      for (const { state } of ordered.slice(1)) {
        if (state === first.state) continue;
        unserved.set(
          state,
          `${where} forwards its port one way, to ${nameOf(first.state.route)}, which precedes this route (creationTimestamp, then namespace/name), so it carries no ${protocol === 'UDP' ? 'datagram' : 'connection'} there`,
        );
      }
    }
  }
  return { routes: out.sort((a, b) => compareText(a.name, b.name)), unserved };
}

/** The IrL4Routes of each listener in the last build, and the routes attached they were made of. */
export type L4Memo = WeakMap<
  ListenerState,
  { readonly attached: readonly L4Attached[]; readonly result: ListenerL4Routes }
>;

/**
 * What the L4 route processors hand to assembleIr (see listeners.ts): for each Gateway listener with L4
 * routes attached, its IrL4Routes (listenerL4Routes). Listeners that are not programmed are included;
 * assembleIr leaves them out. And, per route, the listeners where it carries nothing (for its status):
 * only programmed listeners, since on the others the status already says nothing is served.
 */
export function l4Attachments(
  states: readonly L4RouteState[],
  memo?: L4Memo,
): {
  readonly attachments: L4Attachment[];
  readonly unserved: Map<L4RouteState, Map<ListenerState, string>>;
} {
  const byListener = new Map<ListenerState, L4Attached[]>();
  for (const state of states) {
    for (const attachment of state.attachments) {
      const list = byListener.get(attachment.listener);
      if (list === undefined) byListener.set(attachment.listener, [{ state, attachment }]);
      else list.push({ state, attachment });
    }
  }
  const attachments: L4Attachment[] = [];
  const unserved = new Map<L4RouteState, Map<ListenerState, string>>();
  for (const [listener, attached] of byListener) {
    // The same route states on the listener as last build: the same IrL4Routes (identity kept downstream).
    const old = memo?.get(listener);
    const result =
      old !== undefined &&
      old.attached.length === attached.length &&
      old.attached.every((x, i) => x.state === attached[i]?.state && x.attachment === attached[i]?.attachment)
        ? old.result
        : listenerL4Routes(listener, listener.irProtocol ?? listener.protocol, attached);
    memo?.set(listener, { attached, result });
    for (const route of result.routes) attachments.push({ listener, route });
    if (!listenerProgrammed(listener)) continue;
    for (const [state, why] of result.unserved) {
      let m = unserved.get(state);
      if (m === undefined) {
        m = new Map();
        unserved.set(state, m);
      }
      m.set(listener, why);
    }
  }
  return { attachments, unserved };
}

function compareNumbers(a: number, b: number): number {
  return a === b ? 0 : a < b ? -1 : 1;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
