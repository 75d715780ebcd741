import type { IrL4Route, IrWeightedBackend } from '../model/ir.js';
import { l4RouteName } from '../model/names.js';
import type { TCPRoute, TLSRoute, UDPRoute } from '../sources/objects.js';
import type { BackendResolution } from './backends.js';
import type { RouteKind, RouteState } from './httpRoutes.js';
import type { L4Attachment, ListenerState, Verdict } from './listeners.js';
import type { Attachment } from './parents.js';
import { createdMs } from './precedence.js';
import { resolvedRefsVerdict, weightedBackends } from './routeBackends.js';

/**
 * TLSRoute, TCPRoute and UDPRoute: routes of whole connections (datagrams for UDP), with rules that
 * have no matches, only weighted backendRefs. They attach to TLS, TCP and UDP listeners through the
 * same parentRef logic as HTTPRoutes (parents.ts); TLSRoutes intersect their SNI hostnames with the
 * listener's, as HTTPRoutes do. Each rule becomes one IrL4Route on each listener the route attaches to.
 */

/** One rule's backends: the valid ones by weight, and the weight of those that did not resolve. */
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
 * how its backendRefs resolved. A rule keeps its valid backends; with none left (every ref invalid or of
 * weight 0) its connections are refused (IrL4Route with no backends). The IR has no share for invalid
 * refs at this level, so connections that would have gone to an invalid backend go to the valid ones.
 */
export function translateL4Rules(
  route: L4RouteObject,
  resolutions: readonly (readonly BackendResolution[])[],
): L4Translation {
  const rules: L4Rule[] = (route.spec?.rules ?? []).map((rule, index) => {
    const { backends, invalidWeight } = weightedBackends(rule.backendRefs ?? [], resolutions[index] ?? []);
    return { index, backends, invalidWeight };
  });
  return { rules, dropped: [], resolvedRefs: resolvedRefsVerdict(resolutions) };
}

/** A route attached to one listener, as the IR assembly hands it over. */
export interface L4Attached {
  readonly state: L4RouteState;
  readonly attachment: Attachment;
}

/**
 * The IrL4Routes of one listener from the L4 routes attached to it, sorted by name.
 *
 * On a TLS listener a connection picks a route by SNI, so each server name (or "any", for a route
 * without hostnames on a listener without one) belongs to one route: the oldest route claims it
 * (creationTimestamp, then namespace/name, then rule order), later claims are left out, and a rule left
 * with no name is dropped. On a TCP or UDP listener there is nothing to choose by: the first rule of
 * the oldest route takes the port, as Envoy can only forward a port one way.
 */
export function listenerL4Routes(protocol: string, attached: readonly L4Attached[]): IrL4Route[] {
  const ordered = [...attached].sort(
    (a, b) =>
      compareNumbers(createdMs(a.state.route), createdMs(b.state.route)) ||
      compareText(a.state.route.metadata?.namespace ?? '', b.state.route.metadata?.namespace ?? '') ||
      compareText(a.state.route.metadata?.name ?? '', b.state.route.metadata?.name ?? ''),
  );
  const out: IrL4Route[] = [];
  const names = new Set<string>();
  if (protocol === 'TLS') {
    const claimed = new Set<string>();
    for (const { state, attachment } of ordered) {
      const route = state.route;
      for (const rule of state.translated.rules) {
        const name = l4RouteName(
          route.kind,
          route.metadata?.namespace ?? 'default',
          route.metadata?.name ?? '',
          rule.index,
        );
        if (names.has(name)) continue;
        // `*` (neither route nor listener names a host) is "any server name": no SNI condition.
        const hostnames = attachment.hostnames.filter((h) => !claimed.has(h));
        if (hostnames.length === 0) continue;
        for (const h of hostnames) claimed.add(h);
        names.add(name);
        out.push({ name, hostnames: hostnames.filter((h) => h !== '*'), backends: rule.backends });
      }
    }
  } else {
    const first = ordered[0];
    const rule = first?.state.translated.rules[0];
    if (first !== undefined && rule !== undefined) {
      const route = first.state.route;
      out.push({
        name: l4RouteName(
          route.kind,
          route.metadata?.namespace ?? 'default',
          route.metadata?.name ?? '',
          rule.index,
        ),
        hostnames: [],
        backends: rule.backends,
      });
    }
  }
  return out.sort((a, b) => compareText(a.name, b.name));
}

/**
 * What the L4 route processors hand to assembleIr (see listeners.ts): for each Gateway listener with L4
 * routes attached, its IrL4Routes (listenerL4Routes). Listeners that are not programmed are included;
 * assembleIr leaves them out.
 */
export function l4Attachments(states: readonly L4RouteState[]): L4Attachment[] {
  const byListener = new Map<ListenerState, L4Attached[]>();
  for (const state of states) {
    for (const attachment of state.attachments) {
      const list = byListener.get(attachment.listener);
      if (list === undefined) byListener.set(attachment.listener, [{ state, attachment }]);
      else list.push({ state, attachment });
    }
  }
  const out: L4Attachment[] = [];
  for (const [listener, attached] of byListener) {
    for (const route of listenerL4Routes(listener.irProtocol ?? listener.protocol, attached)) {
      out.push({ listener, route });
    }
  }
  return out;
}

function compareNumbers(a: number, b: number): number {
  return a === b ? 0 : a < b ? -1 : 1;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
