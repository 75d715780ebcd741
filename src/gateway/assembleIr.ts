import type { Ir, IrBackend, IrListener, IrRoute, IrVirtualHost } from '../model/ir.js';
import { virtualHostName } from '../model/names.js';
import type { BackendIndex } from './backends.js';
import type { RouteState } from './httpRoutes.js';
import { type Bind, type GatewayState, listenerProgrammed } from './listeners.js';
import { comparePrecedence, type RankedRoute } from './precedence.js';

/**
 * Step 7: the IR. One IR listener per bound socket (address and port) that at least one programmed
 * listener uses, even without routes (Envoy then answers 404, as a Gateway with no routes should). Within
 * it, one virtual host per hostname a route serves there; routes of every HTTPRoute attached for that
 * hostname merge into it, in Gateway API precedence order. The backends are those the routes forward to.
 * Every list is sorted by name.
 */
export function assembleIr(gateways: Iterable<GatewayState>, routes: readonly RouteState[], backends: BackendIndex): Ir {
  const sockets = new Map<string, { bind: Bind; hosts: Map<string, VirtualHostBuilder> }>();
  for (const g of gateways) {
    for (const l of g.listeners) {
      if (!listenerProgrammed(l)) continue;
      for (const bind of l.binds) if (!sockets.has(bind.name)) sockets.set(bind.name, { bind, hosts: new Map() });
    }
  }

  for (const r of routes) {
    for (const a of r.attachments) {
      if (!listenerProgrammed(a.listener)) continue;
      for (const bind of a.listener.binds) {
        const socket = sockets.get(bind.name);
        if (socket === undefined) continue;
        for (const hostname of a.hostnames) {
          let vh = socket.hosts.get(hostname);
          if (vh === undefined) {
            vh = { seen: new Set(), ranked: [] };
            socket.hosts.set(hostname, vh);
          }
          for (const rule of r.translated.rules) {
            for (const rr of rule.routes) {
              // A route reached through two parentRefs (or two listeners on one socket) counts once.
              if (vh.seen.has(rr.route)) continue;
              vh.seen.add(rr.route);
              vh.ranked.push(rr);
            }
          }
        }
      }
    }
  }

  const listeners: IrListener[] = [];
  const used = new Set<string>();
  for (const { bind, hosts } of sockets.values()) {
    const virtualHosts: IrVirtualHost[] = [];
    for (const [hostname, vh] of hosts) {
      const ordered: IrRoute[] = vh.ranked.sort((a, b) => comparePrecedence(a.key, b.key)).map((rr) => rr.route);
      for (const route of ordered) {
        if (route.action.kind === 'forward') for (const b of route.action.backends) used.add(b.backend);
      }
      virtualHosts.push({ name: virtualHostName(bind.name, hostname), hostnames: [hostname], routes: ordered });
    }
    listeners.push({
      name: bind.name,
      address: bind.address,
      port: bind.port,
      protocol: 'HTTP',
      virtualHosts: virtualHosts.sort(byName),
    });
  }

  const irBackends: IrBackend[] = [];
  for (const name of used) {
    const b = backends.backend(name);
    if (b !== undefined) irBackends.push(b);
  }
  return { listeners: listeners.sort(byName), backends: irBackends.sort(byName), secrets: [] };
}

interface VirtualHostBuilder {
  readonly seen: Set<IrRoute>;
  readonly ranked: RankedRoute[];
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * Reuses the previous build's IR objects wherever the new ones are equal, so that identity means "did not
 * change" all the way up: a virtual host whose routes are the same objects is the previous virtual host,
 * and a listener whose virtual hosts are the same objects is the previous listener. (Routes and backends
 * are memoised where they are made.) The Envoy translator memoises on this identity.
 */
export function shareStructure(previous: Ir | undefined, next: Ir): Ir {
  if (previous === undefined) return next;
  const oldListeners = new Map(previous.listeners.map((l) => [l.name, l]));
  let reusedAll = previous.listeners.length === next.listeners.length;
  const listeners = next.listeners.map((l, i) => {
    const old = oldListeners.get(l.name);
    const shared = old === undefined ? l : shareListener(old, l);
    if (shared !== previous.listeners[i]) reusedAll = false;
    return shared;
  });
  const backendsSame = sameItems(previous.backends, next.backends);
  if (reusedAll && backendsSame && sameItems(previous.secrets, next.secrets)) return previous;
  return { listeners, backends: backendsSame ? previous.backends : next.backends, secrets: next.secrets };
}

function shareListener(old: IrListener, next: IrListener): IrListener {
  const oldHosts = new Map(old.virtualHosts.map((vh) => [vh.name, vh]));
  const virtualHosts = next.virtualHosts.map((vh) => {
    const o = oldHosts.get(vh.name);
    return o !== undefined && sameItems(o.hostnames, vh.hostnames) && sameItems(o.routes, vh.routes) ? o : vh;
  });
  const same =
    old.address === next.address &&
    old.port === next.port &&
    old.protocol === next.protocol &&
    old.tls === next.tls &&
    sameItems(old.virtualHosts, virtualHosts);
  return same ? old : { ...next, virtualHosts };
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
