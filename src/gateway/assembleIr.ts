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
 * With a `memo`, the work follows the change (see AssemblyMemo): the route states that appeared or went
 * since the last build are found, and only the domains whose hostnames they have are rebuilt; every
 * other virtual host, and every socket they do not touch, is the previous build's object. A domain's
 * route order starts from the last build's, with routes gone taken out and new ones merged in, which
 * gives the very order a full sort would, because the order is total when no two routes share a
 * namespace/name (`unique`; otherwise everything is built afresh).
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
  memo?: { readonly order: AssemblyMemo; readonly unique: boolean },
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
  const state = memo?.unique === true ? memo.order : new AssemblyMemo();
  // Which route states appeared and went since the last build; a route without rules takes no part.
  const current = new Set<RouteState>();
  for (const r of routes) if (r.translated.rules.length > 0) current.add(r);
  const added = [...current].filter((r) => !state.routes.has(r));
  const removed = [...state.routes].filter((r) => !current.has(r));

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
  const nextSockets = new Map<string, HttpSocket>();
  const nextL4 = new Map<string, IrListener>();
  for (const { bind, listeners: onSocket } of sockets.values()) {
    const protocol = onSocket[0]?.irProtocol ?? 'HTTP';
    const tls = listenerTls(onSocket, secrets);
    if (protocol === 'TLS' || protocol === 'TCP' || protocol === 'UDP') {
      const l4Routes = mergeL4Routes(onSocket.flatMap((l) => attachedL4.get(l) ?? []));
      for (const r of l4Routes) for (const b of r.backends) used.add(b.backend);
      // The same routes (by identity, see l4Attachments) and TLS as last build: the same listener.
      const last = state.l4Sockets.get(bind.name);
      const listener: IrListener =
        last !== undefined &&
        last.protocol === protocol &&
        sameItems(last.l4Routes ?? [], l4Routes) &&
        sameJson(last.tls, tls)
          ? last
          : {
              name: bind.name,
              address: bind.address,
              port: bind.port,
              protocol,
              virtualHosts: [],
              ...(tls === undefined ? {} : { tls }),
              l4Routes,
            };
      nextL4.set(bind.name, listener);
      listeners.push(listener);
      continue;
    }
    const old = state.sockets.get(bind.name);
    const socket =
      old !== undefined && sameItems(old.listeners, onSocket)
        ? old.update(added, removed)
        : new HttpSocket(bind, onSocket).update([...current], []);
    nextSockets.set(bind.name, socket);
    for (const b of socket.backends()) used.add(b);
    const last = socket.listener;
    const listener: IrListener =
      last !== undefined &&
      last.virtualHosts === socket.virtualHosts &&
      last.protocol === protocol &&
      sameJson(last.tls, tls)
        ? last
        : {
            name: bind.name,
            address: bind.address,
            port: bind.port,
            protocol,
            virtualHosts: socket.virtualHosts,
            ...(tls === undefined ? {} : { tls }),
          };
    socket.listener = listener;
    listeners.push(listener);
  }
  state.commit(current, nextSockets, nextL4);

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

/** One domain of an HTTP socket: its routes in order, the states they come from, its virtual host. */
interface Host {
  readonly entries: readonly Entry[];
  readonly states: ReadonlySet<RouteState>;
  readonly vhost: IrVirtualHost;
  /** The backends its routes send to (and mirror to). */
  readonly backends: readonly string[];
}

/**
 * The virtual hosts of one HTTP socket, kept across builds and updated by the route states that came
 * and went: per listener on the socket, which routes have which hostnames there (precise ones indexed
 * by name, patterns in a list), how many attachments name each domain, and each domain's Host. Only
 * domains a changed route names (or, for a pattern, covers) are rebuilt.
 */
class HttpSocket {
  readonly #bind: Bind;
  readonly listeners: readonly ListenerState[];
  /** Per listener: each route's hostnames there (two parentRefs to one listener count once). */
  readonly #attached = new Map<ListenerState, Map<RouteState, readonly string[]>>();
  /** Per listener: precise hostname → the routes that have it. */
  readonly #precise = new Map<ListenerState, Map<string, Set<RouteState>>>();
  /** Per listener: the routes with a pattern hostname (`*`, `*.example.com`) → those patterns. */
  readonly #patterns = new Map<ListenerState, Map<RouteState, readonly string[]>>();
  /** Each domain, and how many listeners and route attachments name it. */
  readonly #domains = new Map<string, number>();
  readonly #hosts = new Map<string, Host>();
  /** How many hosts use each backend. */
  readonly #used = new Map<string, number>();
  virtualHosts: readonly IrVirtualHost[] = [];
  /** The IR listener last made of this socket. */
  listener: IrListener | undefined;

  constructor(bind: Bind, listeners: readonly ListenerState[]) {
    this.#bind = bind;
    this.listeners = listeners;
    for (const l of listeners) {
      this.#attached.set(l, new Map());
      this.#precise.set(l, new Map());
      this.#patterns.set(l, new Map());
      this.#count(l.hostname ?? '*', 1);
    }
  }

  backends(): IterableIterator<string> {
    return this.#used.keys();
  }

  /** Applies the route states that appeared and went, and rebuilds the domains they touch. */
  update(added: readonly RouteState[], removed: readonly RouteState[]): this {
    const touched = new Set<string>();
    const first = this.listener === undefined;
    // A new socket: every listener's own domain gets a host, routes or not.
    if (first) for (const d of this.#domains.keys()) touched.add(d);
    for (const r of removed) this.#remove(r, touched);
    for (const r of added) this.#add(r, touched);
    if (touched.size === 0) return this;
    let domainsChanged = first;
    for (const domain of touched) {
      const before = this.#hosts.get(domain);
      if (before !== undefined) {
        this.#use(before.backends, -1);
        this.#hosts.delete(domain);
      }
      const host = this.#domains.has(domain) ? this.#host(domain, before) : undefined;
      if (host !== undefined) {
        this.#hosts.set(domain, host);
        this.#use(host.backends, 1);
      }
      if ((before === undefined) !== (host === undefined)) domainsChanged = true;
    }
    if (domainsChanged) {
      this.virtualHosts = [...this.#hosts.values()].map((h) => h.vhost).sort(byName);
    } else {
      const next = this.virtualHosts.map((vh) => this.#hosts.get(vh.hostnames[0] ?? '')?.vhost ?? vh);
      if (!sameItems(next, this.virtualHosts)) this.virtualHosts = next;
    }
    return this;
  }

  #add(r: RouteState, touched: Set<string>): void {
    for (const a of r.attachments) {
      const mine = this.#attached.get(a.listener);
      if (mine === undefined) continue; // not on this socket, or not programmed
      const before = mine.get(r) ?? [];
      const hostnames = [...new Set([...before, ...a.hostnames])];
      if (hostnames.length === before.length) continue;
      mine.set(r, hostnames);
      const fresh = hostnames.filter((h) => !before.includes(h));
      for (const h of fresh) this.#count(h, 1);
      this.#index(a.listener, r, hostnames);
      this.#touch(fresh, touched);
    }
  }

  #remove(r: RouteState, touched: Set<string>): void {
    for (const [listener, mine] of this.#attached) {
      const hostnames = mine.get(r);
      if (hostnames === undefined) continue;
      this.#touch(hostnames, touched);
      mine.delete(r);
      for (const h of hostnames) this.#count(h, -1);
      this.#index(listener, r, undefined);
    }
  }

  /** Puts `r` in (or, with no hostnames, takes it out of) a listener's hostname index. */
  #index(listener: ListenerState, r: RouteState, hostnames: readonly string[] | undefined): void {
    const precise = this.#precise.get(listener);
    const patterns = this.#patterns.get(listener);
    if (precise === undefined || patterns === undefined) return;
    for (const set of precise.values()) set.delete(r);
    patterns.delete(r);
    if (hostnames === undefined) return;
    const wild = hostnames.filter((h) => h === '*' || isWildcard(h));
    if (wild.length > 0) patterns.set(r, wild);
    for (const h of hostnames) {
      if (h === '*' || isWildcard(h)) continue;
      const set = precise.get(h);
      if (set === undefined) precise.set(h, new Set([r]));
      else set.add(r);
    }
  }

  /** The domains that change with routes of these hostnames: each one, and for a pattern every domain it covers. */
  #touch(hostnames: readonly string[], touched: Set<string>): void {
    for (const h of hostnames) {
      touched.add(h);
      if (h === '*' || isWildcard(h)) for (const d of this.#domains.keys()) if (covers(h, d)) touched.add(d);
    }
  }

  #count(domain: string, delta: number): void {
    const n = (this.#domains.get(domain) ?? 0) + delta;
    if (n > 0) this.#domains.set(domain, n);
    else this.#domains.delete(domain);
  }

  #use(names: readonly string[], delta: number): void {
    for (const name of names) {
      const n = (this.#used.get(name) ?? 0) + delta;
      if (n > 0) this.#used.set(name, n);
      else this.#used.delete(name);
    }
  }

  /** A domain's routes (from its owning listener), ordered, starting from its last order when it had one. */
  #host(domain: string, before: Host | undefined): Host | undefined {
    const owner = ownerOf(domain, this.listeners);
    if (owner === undefined) return undefined;
    const states = new Set<RouteState>(this.#precise.get(owner)?.get(domain));
    for (const [r, patterns] of this.#patterns.get(owner) ?? []) {
      if (patterns.some((p) => covers(p, domain))) states.add(r);
    }
    const entries =
      before === undefined ? sortedEntries(states, domain) : updatedEntries(before, states, domain);
    const ordered = entries.map((e) => e.ranked.route);
    const vhost =
      before !== undefined && sameItems(before.vhost.routes, ordered)
        ? before.vhost
        : { name: virtualHostName(this.#bind.name, domain), hostnames: [domain], routes: ordered };
    const used = new Set<string>();
    for (const route of ordered) {
      if (route.action.kind === 'forward') for (const b of route.action.backends) used.add(b.backend);
      for (const m of route.mirrors ?? []) used.add(m.backend);
    }
    return { entries, states, vhost, backends: [...used] };
  }
}

/**
 * What assembleIr keeps from one build for the next: the route states it assembled, and each HTTP
 * socket's virtual hosts (HttpSocket). A socket whose programmed listeners are not the very same objects
 * as last time is built afresh; so is everything when route names are not unique (no memo is used then).
 */
export class AssemblyMemo {
  routes: ReadonlySet<RouteState> = new Set();
  sockets: ReadonlyMap<string, HttpSocket> = new Map();
  /** The IR listener of each TLS, TCP and UDP socket. */
  l4Sockets: ReadonlyMap<string, IrListener> = new Map();

  /** Ends a build: what it assembled is what the next one starts from. */
  commit(
    routes: ReadonlySet<RouteState>,
    sockets: ReadonlyMap<string, HttpSocket>,
    l4Sockets: ReadonlyMap<string, IrListener>,
  ): void {
    this.routes = routes;
    this.sockets = sockets;
    this.l4Sockets = l4Sockets;
  }
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
  if (routes.length <= 1) return [...routes];
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
function updatedEntries(
  last: { readonly entries: readonly Entry[]; readonly states: ReadonlySet<RouteState> },
  states: ReadonlySet<RouteState>,
  domain: string,
): Entry[] {
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
  if (old === next) return old;
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
  // Nothing of the old one taken over: the new listener as it is (assembleIr keeps it for next time).
  if (
    sameItems(virtualHosts, next.virtualHosts) &&
    tls === next.tls &&
    sameItems(l4Routes ?? [], next.l4Routes ?? [])
  )
    return next;
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
