import type {
  Ir,
  IrBackend,
  IrCertificateSet,
  IrL4Route,
  IrListener,
  IrListenerTls,
  IrSecret,
  IrVirtualHost,
} from '../model/ir.js';
import { virtualHostName } from '../model/names.js';
import type { BackendIndex } from './backends.js';
import { covers, isWildcard, specificity } from './hostnames.js';
import type { RouteState } from './httpRoutes.js';
import {
  type Bind,
  type GatewayState,
  type L4Attachment,
  type ListenerState,
  listenerProgrammed,
} from './listeners.js';
import { comparePrecedence, type RankedRoute } from './precedence.js';

/**
 * Step 7: the IR. One IR listener per socket (address and port) that at least one programmed listener
 * binds. Its virtual hosts are keyed by hostname ("domain"): one for each programmed listener's own
 * hostname (`*` without one), so that a host the listener owns but no route serves gets a 404 there
 * rather than falling through to another listener's routes; and one for each hostname an accepted route
 * serves.
 *
 * A request is matched to a listener first (the most specific listener hostname that covers its host:
 * "listener isolation"), then to that listener's routes. So each domain belongs to the most specific
 * listener covering it, and its virtual host holds every route attached to that listener whose hostnames
 * cover the domain (a route for `*.example.com` also serves `a.example.com`), ordered as the spec says:
 * routes with the longest matching precise hostname first, then the longest matching hostname, then
 * match precedence (see precedence.ts). The backends are those the routes forward to. Lists are sorted.
 *
 * With an `order` memo, each virtual host's route order starts from the last build's: routes gone are
 * taken out and new ones put in place, which gives the very order a full sort would, because the order
 * is total when no two routes share a namespace/name (`unique`; otherwise everything is sorted afresh).
 *
 * The IR listener of a socket has the protocol of its Gateway listeners (processGateways lets only one
 * kind share a socket). HTTPS and TLS Terminate listeners get one certificate set per Gateway listener:
 * its hostname (none for a listener without hostname: the default set) and its certificates, which
 * Envoy picks by SNI. TLS, TCP and UDP listeners get the L4 routes attached to their Gateway listeners
 * (`l4`, see listeners.ts); a route that reaches one socket through several Gateway listeners becomes
 * one IR route whose hostnames are the union. The secrets are those the certificate sets name.
 */
export function assembleIr(
  gateways: Iterable<GatewayState>,
  routes: readonly RouteState[],
  backends: BackendIndex,
  memo?: { readonly order: RouteOrderMemo; readonly unique: boolean },
  l4: readonly L4Attachment[] = [],
): Ir {
  const sockets = new Map<string, { bind: Bind; listeners: ListenerState[] }>();
  for (const g of gateways) {
    for (const l of g.listeners) {
      if (!listenerProgrammed(l)) continue;
      for (const bind of l.binds) {
        const socket = sockets.get(bind.name);
        if (socket === undefined) sockets.set(bind.name, { bind, listeners: [l] });
        else socket.listeners.push(l);
      }
    }
  }
  // The routes on each programmed listener; a route that has no rule left to serve takes no part.
  const attached = new Map<ListenerState, { route: RouteState; hostnames: readonly string[] }[]>();
  for (const r of routes) {
    if (r.translated.rules.length === 0) continue;
    for (const a of r.attachments) {
      if (!listenerProgrammed(a.listener)) continue;
      const list = attached.get(a.listener);
      if (list === undefined) attached.set(a.listener, [{ route: r, hostnames: a.hostnames }]);
      else list.push({ route: r, hostnames: a.hostnames });
    }
  }

  // The L4 routes of each programmed listener.
  const attachedL4 = new Map<ListenerState, IrL4Route[]>();
  for (const a of l4) {
    if (!listenerProgrammed(a.listener)) continue;
    const list = attachedL4.get(a.listener);
    if (list === undefined) attachedL4.set(a.listener, [a.route]);
    else list.push(a.route);
  }

  const listeners: IrListener[] = [];
  const used = new Set<string>();
  const secrets = new Map<string, IrSecret>();
  for (const { bind, listeners: onSocket } of sockets.values()) {
    const protocol = onSocket[0]?.irProtocol ?? 'HTTP';
    const tls = listenerTls(onSocket, secrets);
    if (protocol === 'TLS' || protocol === 'TCP' || protocol === 'UDP') {
      const l4Routes = mergeL4Routes(onSocket.flatMap((l) => attachedL4.get(l) ?? []));
      for (const r of l4Routes) for (const b of r.backends) used.add(b.backend);
      listeners.push({
        name: bind.name,
        address: bind.address,
        port: bind.port,
        protocol,
        virtualHosts: [],
        ...(tls === undefined ? {} : { tls }),
        l4Routes,
      });
      continue;
    }
    const domains = new Set<string>();
    for (const l of onSocket) {
      domains.add(l.hostname ?? '*');
      for (const a of attached.get(l) ?? []) for (const h of a.hostnames) domains.add(h);
    }
    const virtualHosts: IrVirtualHost[] = [];
    for (const domain of domains) {
      const owner = ownerOf(domain, onSocket);
      if (owner === undefined) continue;
      // The routes of this domain: each route state once (two parentRefs to one listener count once).
      const states = new Set<RouteState>();
      for (const a of attached.get(owner) ?? []) {
        if (a.hostnames.some((p) => covers(p, domain))) states.add(a.route);
      }
      const orderKey = `${bind.name}\0${domain}\0${owner.gateway.namespace}/${owner.gateway.name}/${owner.name}`;
      const last = memo?.unique === true ? memo.order.last(orderKey) : undefined;
      const entries =
        last === undefined ? sortedEntries(states, domain) : updatedEntries(last, states, domain);
      memo?.order.keep(orderKey, { entries, states });
      const ordered = entries.map((e) => e.ranked.route);
      for (const route of ordered) {
        if (route.action.kind === 'forward') for (const b of route.action.backends) used.add(b.backend);
        for (const m of route.mirrors ?? []) used.add(m.backend);
      }
      virtualHosts.push({ name: virtualHostName(bind.name, domain), hostnames: [domain], routes: ordered });
    }
    listeners.push({
      name: bind.name,
      address: bind.address,
      port: bind.port,
      protocol,
      virtualHosts: virtualHosts.sort(byName),
      ...(tls === undefined ? {} : { tls }),
    });
  }

  const irBackends: IrBackend[] = [];
  for (const name of used) {
    const b = backends.backend(name);
    if (b !== undefined) irBackends.push(b);
  }
  return {
    listeners: listeners.sort(byName),
    backends: irBackends.sort(byName),
    secrets: [...secrets.values()].sort(byName),
  };
}

/**
 * The TLS of a socket's listeners (all of one kind): Passthrough, or Terminate with one certificate set
 * per Gateway listener, sorted by hostname (the set without hostname first). The secrets they name are
 * added to `secrets`. Undefined for HTTP, TCP and UDP.
 */
function listenerTls(
  onSocket: readonly ListenerState[],
  secrets: Map<string, IrSecret>,
): IrListenerTls | undefined {
  const first = onSocket[0];
  if (first?.tls === undefined) return undefined;
  if (first.tls.mode === 'Passthrough') return { mode: 'Passthrough', certificates: [] };
  const certificates: IrCertificateSet[] = [];
  for (const l of onSocket) {
    if (l.tls === undefined || l.tls.secrets.length === 0) continue;
    for (const s of l.tls.secrets) secrets.set(s.name, s);
    certificates.push({
      hostnames: l.hostname === undefined ? [] : [l.hostname],
      secretNames: l.tls.secrets.map((s) => s.name),
    });
  }
  certificates.sort((a, b) => compareText(a.hostnames[0] ?? '', b.hostnames[0] ?? ''));
  return { mode: 'Terminate', certificates };
}

/**
 * L4 routes of one socket, one per name (a route reaching the socket through several Gateway listeners
 * serves the union of its hostnames there), sorted by name. A route that appears once is kept as given,
 * so its identity survives for the Envoy translator's memo.
 */
function mergeL4Routes(routes: readonly IrL4Route[]): IrL4Route[] {
  const named = new Map<string, IrL4Route>();
  for (const r of routes) {
    const seen = named.get(r.name);
    if (seen === undefined) {
      named.set(r.name, r);
    } else if (seen !== r) {
      const hostnames =
        seen.hostnames.length === 0 || r.hostnames.length === 0
          ? []
          : [...new Set([...seen.hostnames, ...r.hostnames])].sort();
      named.set(r.name, { ...seen, hostnames });
    }
  }
  return [...named.values()].sort(byName);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A route of a virtual host with what orders it there. */
interface Entry {
  readonly state: RouteState;
  readonly ranked: RankedRoute;
  readonly host: HostRank;
}

function compareEntries(a: Entry, b: Entry): number {
  return (
    b.host.precise - a.host.precise ||
    b.host.any - a.host.any ||
    comparePrecedence(a.ranked.key, b.ranked.key)
  );
}

/** The entries of route states on one domain, in their own order. */
function entriesOf(states: Iterable<RouteState>, domain: string): Entry[] {
  const out: Entry[] = [];
  for (const state of states) {
    const host = hostRank(state.route.spec?.hostnames ?? [], domain);
    for (const rule of state.translated.rules)
      for (const ranked of rule.routes) out.push({ state, ranked, host });
  }
  return out;
}

function sortedEntries(states: Iterable<RouteState>, domain: string): Entry[] {
  return entriesOf(states, domain).sort(compareEntries);
}

/**
 * The last build's order with the states no longer on the domain taken out and the new ones merged in.
 * The order being total, this is what sorting everything would give.
 */
function updatedEntries(last: VirtualHostOrder, states: ReadonlySet<RouteState>, domain: string): Entry[] {
  const kept = last.entries.filter((e) => states.has(e.state));
  const added = sortedEntries(
    [...states].filter((s) => !last.states.has(s)),
    domain,
  );
  if (added.length === 0) return kept;
  const out: Entry[] = [];
  let i = 0;
  let j = 0;
  while (i < kept.length && j < added.length) {
    const a = kept[i] as Entry;
    const b = added[j] as Entry;
    if (compareEntries(a, b) <= 0) {
      out.push(a);
      i++;
    } else {
      out.push(b);
      j++;
    }
  }
  for (; i < kept.length; i++) out.push(kept[i] as Entry);
  for (; j < added.length; j++) out.push(added[j] as Entry);
  return out;
}

interface VirtualHostOrder {
  readonly entries: readonly Entry[];
  readonly states: ReadonlySet<RouteState>;
}

/**
 * The route order of each virtual host (by socket, domain and owning listener) in the last build, for
 * the next one to start from. Virtual hosts not assembled in a build are forgotten at its end.
 */
export class RouteOrderMemo {
  #last = new Map<string, VirtualHostOrder>();
  #next = new Map<string, VirtualHostOrder>();

  last(key: string): VirtualHostOrder | undefined {
    return this.#last.get(key);
  }

  keep(key: string, order: VirtualHostOrder): void {
    this.#next.set(key, order);
  }

  /** Ends a build. */
  commit(): void {
    this.#last = this.#next;
    this.#next = new Map();
  }
}

/** The listener a request for `domain` is matched to: the most specific one whose hostname covers it. */
function ownerOf(domain: string, listeners: readonly ListenerState[]): ListenerState | undefined {
  let best: ListenerState | undefined;
  for (const l of listeners) {
    const own = l.hostname ?? '*';
    if (!covers(own, domain)) continue;
    if (best === undefined || specificity(own) > specificity(best.hostname ?? '*')) best = l;
  }
  return best;
}

/** The spec's hostname precedence between routes: characters of the matching precise, then any, hostname. */
interface HostRank {
  readonly precise: number;
  readonly any: number;
}

function hostRank(routeHostnames: readonly string[], domain: string): HostRank {
  let best: HostRank = { precise: 0, any: 0 };
  for (const h of routeHostnames) {
    if (!covers(h, domain)) continue;
    const rank = { precise: isWildcard(h) ? 0 : h.length, any: h.length };
    if (rank.precise > best.precise || (rank.precise === best.precise && rank.any > best.any)) best = rank;
  }
  return best;
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
  const secretsSame = sameItems(previous.secrets, next.secrets);
  return {
    listeners,
    backends: backendsSame ? previous.backends : next.backends,
    secrets: secretsSame ? previous.secrets : next.secrets,
  };
}

function shareListener(old: IrListener, next: IrListener): IrListener {
  const oldHosts = new Map(old.virtualHosts.map((vh) => [vh.name, vh]));
  const virtualHosts = next.virtualHosts.map((vh) => {
    const o = oldHosts.get(vh.name);
    return o !== undefined && sameItems(o.hostnames, vh.hostnames) && sameItems(o.routes, vh.routes) ? o : vh;
  });
  // TLS settings and L4 routes are small and rebuilt each time: equal content counts as the same.
  const tls = old.tls !== undefined && sameJson(old.tls, next.tls) ? old.tls : next.tls;
  const oldL4 = new Map((old.l4Routes ?? []).map((r) => [r.name, r]));
  const l4Routes = next.l4Routes?.map((r) => {
    const o = oldL4.get(r.name);
    return o !== undefined && (o === r || sameJson(o, r)) ? o : r;
  });
  const same =
    old.address === next.address &&
    old.port === next.port &&
    old.protocol === next.protocol &&
    old.tls === tls &&
    sameItems(old.virtualHosts, virtualHosts) &&
    (old.l4Routes === undefined) === (l4Routes === undefined) &&
    sameItems(old.l4Routes ?? [], l4Routes ?? []);
  if (same) return old;
  return {
    ...next,
    virtualHosts,
    ...(tls === undefined ? {} : { tls }),
    ...(l4Routes === undefined ? {} : { l4Routes }),
  };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
