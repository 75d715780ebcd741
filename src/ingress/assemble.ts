import type { BackendIndex } from '../gateway/backends.js';
import type {
  Ir,
  IrBackend,
  IrCertificateSet,
  IrListener,
  IrRoute,
  IrSecret,
  IrVirtualHost,
} from '../model/ir.js';
import { ingressRouteName, virtualHostName } from '../model/names.js';
import { IngressCode, type IngressProblem } from './codes.js';
import { ANY_HOST, authorityGuard, isWildcard, matchesHost, parentWildcard } from './hosts.js';
import type { RankedRoute, TranslatedIngress } from './ingressRules.js';
import type { Binding, IngressSocket } from './sockets.js';

/** The answer for a host whose TLS Secret is missing or invalid, on either listener. */
export const TLS_UNAVAILABLE_STATUS = 503;
/** force-https redirects with 308 (Permanent Redirect), which keeps the method and body. */
export const FORCE_HTTPS_STATUS = 308;

/** How a host of an Ingress stands with TLS: not asked for, served, or asked for and not servable. */
type TlsState = 'none' | 'valid' | 'broken';

/** The certificates of one HTTPS socket, by SNI. */
interface TlsTable {
  /** Host (precise or wildcard) → the certificate that serves it and the Ingress it came from. */
  readonly explicit: ReadonlyMap<string, { readonly secret: IrSecret; readonly owner: TranslatedIngress }>;
  /** Every host some member's spec.tls lists, whether or not its Secret is valid. */
  readonly requested: ReadonlySet<string>;
  /** The certificate for server names no host lists (from a spec.tls entry without hosts). */
  readonly fallback: { readonly secret: IrSecret; readonly owner: TranslatedIngress } | undefined;
  readonly certificates: readonly IrCertificateSet[];
}

export interface AssembleResult {
  readonly ir: Ir;
  /** Problems found where Ingresses meet on a socket (certificate hosts, default backends). */
  readonly problems: ReadonlyMap<TranslatedIngress, readonly IngressProblem[]>;
  /** Names of the sockets that became IR listeners. */
  readonly programmed: ReadonlySet<string>;
}

/**
 * Step 6: the IR. One IR listener per socket:
 *
 * - HTTPS sockets get one certificate set per Secret, with the hosts it serves (the first Ingress to
 *   list a host keeps it), plus the set without hosts (the first `spec.tls` entry without hosts) for
 *   every other server name. An HTTPS socket with no valid certificate is not programmed.
 * - Virtual hosts: one per host a member Ingress has rules or TLS for, plus `*` for rules without a
 *   host and default backends. A virtual host's routes, first match wins:
 *   1. the host's own rules, from every member, in precedence order (Exact, regular expression,
 *      Prefix; longest first; then the oldest Ingress, namespace/name, rule and path order);
 *   2. for a precise host, the rules of the wildcard one label above it (`*.example.com` for
 *      `a.example.com`): the wildcard matches that host too;
 *   3. the rules without host (they match every host);
 *   4. the host's own default backend (the first member with rules for the host and a defaultBackend);
 *   5. the catch-all default backend (the first member with a defaultBackend).
 *   Nothing matched: Envoy's 404. A wildcard host's own routes (1 and 4) carry the one-label guard,
 *   so deeper names fall through to 3 and 5.
 * - TLS that cannot be served: a host whose Secret is missing or invalid (or whose Ingress lost its
 *   HTTPS socket) answers 503 on both listeners, so it is never served over plain HTTP; a request over
 *   HTTPS for it fails the handshake (no certificate covers it) unless a certificate without hosts
 *   exists, and then still gets the 503.
 * - force-https: on the HTTP listener, each route of such an Ingress whose host it serves over TLS
 *   becomes a 308 redirect to `https://` on its HTTPS port.
 *
 * The backends are those the routes forward to; the secrets those the certificate sets name.
 */
export function assembleIngressIr(binding: Binding, backends: BackendIndex): AssembleResult {
  const problems = new Map<TranslatedIngress, IngressProblem[]>();
  const report = (ing: TranslatedIngress, p: IngressProblem): void => {
    const list = problems.get(ing);
    if (list === undefined) problems.set(ing, [p]);
    else list.push(p);
  };

  const tables = new Map<string, TlsTable>();
  for (const socket of binding.sockets.values()) {
    if (socket.protocol === 'HTTPS') tables.set(socket.name, tlsTable(socket, report));
  }

  const tlsFor = (m: TranslatedIngress, host: string): TlsState => {
    const explicitly = m.tls.some((e) => e.hosts.some((h) => h === host || matchesHost(h, host)));
    const wantsHost =
      host === ANY_HOST ? m.hosts.has(ANY_HOST) || m.defaultRoute !== undefined : m.hosts.has(host);
    const hostless = m.tls.filter((e) => e.hosts.length === 0);
    if (!explicitly && !(hostless.length > 0 && wantsHost)) return 'none';
    const socket = binding.https.get(m);
    const table = socket === undefined ? undefined : tables.get(socket.name);
    if (table === undefined || table.certificates.length === 0) return 'broken';
    if (explicitly || hostless.every((e) => e.secret === undefined)) {
      return host !== ANY_HOST && explicitCovers(table, host) ? 'valid' : 'broken';
    }
    return validOn(table, host) ? 'valid' : 'broken';
  };

  const listeners: IrListener[] = [];
  const secrets = new Map<string, IrSecret>();
  const used = new Set<string>();
  const programmed = new Set<string>();
  for (const socket of [...binding.sockets.values()].sort(byName)) {
    const table = tables.get(socket.name);
    if (table !== undefined && table.certificates.length === 0) continue;
    const defaultsUsed = new Set<TranslatedIngress>();
    const virtualHosts = virtualHostsOf(socket, table, tlsFor, defaultsUsed);
    if (virtualHosts.length === 0 && table === undefined) continue;
    programmed.add(socket.name);
    for (const vh of virtualHosts) {
      for (const r of vh.routes)
        if (r.action.kind === 'forward') for (const b of r.action.backends) used.add(b.backend);
    }
    if (table !== undefined) {
      if (table.fallback !== undefined) secrets.set(table.fallback.secret.name, table.fallback.secret);
      for (const { secret } of table.explicit.values()) secrets.set(secret.name, secret);
    }
    listeners.push({
      name: socket.name,
      address: socket.address,
      port: socket.port,
      protocol: socket.protocol,
      virtualHosts,
      ...(table === undefined
        ? {}
        : { tls: { mode: 'Terminate' as const, certificates: table.certificates } }),
    });
    // A defaultBackend no request can reach on this socket is worth a word (HTTP only: over HTTPS it
    // depends on the certificates too, which are reported on their own).
    if (socket.protocol !== 'HTTP') continue;
    const catchAll = socket.members.find(
      (m) => m.defaultRoute !== undefined && tlsFor(m, ANY_HOST) !== 'broken',
    );
    for (const m of socket.members) {
      if (m.defaultRoute === undefined || defaultsUsed.has(m) || tlsFor(m, ANY_HOST) === 'broken') continue;
      report(m, {
        code: IngressCode.Conflict,
        condition: 'Conflicted',
        reason: 'DefaultBackendConflict',
        field: 'spec.defaultBackend',
        message: `spec.defaultBackend is not used on ${socket.address}:${socket.port}: the catch-all default backend there is Ingress ${catchAll === undefined ? '?' : `${catchAll.namespace}/${catchAll.name}`}'s (the oldest Ingress with one)`,
      });
    }
  }

  const irBackends: IrBackend[] = [];
  for (const name of used) {
    const b = backends.backend(name);
    if (b !== undefined) irBackends.push(b);
  }
  return {
    ir: {
      listeners: listeners.sort(byName),
      backends: irBackends.sort(byName),
      secrets: [...secrets.values()].sort(byName),
    },
    problems,
    programmed,
  };
}

/**
 * The certificates of an HTTPS socket. Members in precedence order; each valid spec.tls entry gives its
 * hosts to its Secret unless an earlier one took them (reported when the Secret differs), or, without
 * hosts, becomes the fallback certificate unless an earlier one did. One set per Secret, sorted by
 * their first host (the fallback, with no hosts, first): Envoy picks by SNI, most specific host first.
 */
function tlsTable(
  socket: IngressSocket,
  report: (ing: TranslatedIngress, p: IngressProblem) => void,
): TlsTable {
  const explicit = new Map<string, { secret: IrSecret; owner: TranslatedIngress }>();
  const requested = new Set<string>();
  let fallback: { secret: IrSecret; owner: TranslatedIngress } | undefined;
  const at = `${socket.address}:${socket.port}`;
  for (const m of socket.members) {
    for (const entry of m.tls) {
      for (const h of entry.hosts) requested.add(h);
      const secret = entry.secret;
      if (secret === undefined) continue;
      if (entry.hosts.length === 0) {
        if (fallback === undefined) fallback = { secret, owner: m };
        else if (fallback.secret.name !== secret.name) {
          report(m, {
            code: IngressCode.Conflict,
            condition: 'Conflicted',
            reason: 'HostnameConflict',
            field: `spec.tls[${entry.index}]`,
            message: `spec.tls[${entry.index}]: Secret ${secret.name} is not used on ${at}: the certificate for names no host lists there is Secret ${fallback.secret.name} of Ingress ${fallback.owner.namespace}/${fallback.owner.name}`,
          });
        }
        continue;
      }
      for (const h of entry.hosts) {
        const taken = explicit.get(h);
        if (taken === undefined) explicit.set(h, { secret, owner: m });
        else if (taken.secret.name !== secret.name) {
          report(m, {
            code: IngressCode.Conflict,
            condition: 'Conflicted',
            reason: 'HostnameConflict',
            field: `spec.tls[${entry.index}]`,
            message: `spec.tls[${entry.index}]: host ${h} on ${at} is served with Secret ${taken.secret.name} of Ingress ${taken.owner.namespace}/${taken.owner.name}, not with Secret ${secret.name}`,
          });
        }
      }
    }
  }
  const bySecret = new Map<string, string[]>();
  for (const [host, { secret }] of explicit) {
    const list = bySecret.get(secret.name);
    if (list === undefined) bySecret.set(secret.name, [host]);
    else list.push(host);
  }
  const certificates: IrCertificateSet[] = [...bySecret].map(([secret, hosts]) => ({
    hostnames: hosts.sort(),
    secretNames: [secret],
  }));
  certificates.sort((a, b) => compareText(a.hostnames[0] ?? '', b.hostnames[0] ?? ''));
  if (fallback !== undefined) certificates.unshift({ hostnames: [], secretNames: [fallback.secret.name] });
  return { explicit, requested, fallback, certificates };
}

/** A certificate lists the host, or the wildcard one label above it. */
function explicitCovers(table: TlsTable, host: string): boolean {
  const parent = parentWildcard(host);
  return table.explicit.has(host) || (parent !== undefined && table.explicit.has(parent));
}

/** Whether the socket serves `host` over TLS: a certificate lists it, or no one lists it and a fallback exists. */
function validOn(table: TlsTable, host: string): boolean {
  if (host === ANY_HOST) return table.fallback !== undefined;
  if (explicitCovers(table, host)) return true;
  const parent = parentWildcard(host);
  const requested = table.requested.has(host) || (parent !== undefined && table.requested.has(parent));
  return !requested && table.fallback !== undefined;
}

/** The virtual hosts of one socket, sorted by name (see assembleIngressIr). */
function virtualHostsOf(
  socket: IngressSocket,
  table: TlsTable | undefined,
  tlsFor: (m: TranslatedIngress, host: string) => TlsState,
  defaultsUsed: Set<TranslatedIngress>,
): IrVirtualHost[] {
  const https = table !== undefined;
  const members = socket.members;
  const order = new Map(members.map((m, i) => [m, i]));

  /** A member's route as this listener serves it, or undefined when it must not be served here. */
  const variant = (m: TranslatedIngress, route: IrRoute, tlsHost: string): IrRoute | undefined => {
    const state = tlsFor(m, tlsHost);
    if (state === 'broken') return undefined;
    if (!https && state === 'valid' && m.settings.forceHttps)
      return redirectVariant(route, m.settings.httpsPort);
    return route;
  };
  /** The rules every member has for `key`, merged in precedence order, as served here. */
  const rulesOf = (key: string, tlsHost: string): IrRoute[] => {
    const ranked: { m: TranslatedIngress; r: RankedRoute }[] = [];
    for (const m of members) for (const r of m.hosts.get(key) ?? []) ranked.push({ m, r });
    ranked.sort(
      (a, b) =>
        a.r.pathRank - b.r.pathRank ||
        b.r.pathLength - a.r.pathLength ||
        (order.get(a.m) ?? 0) - (order.get(b.m) ?? 0) ||
        a.r.rule - b.r.rule ||
        a.r.path - b.r.path,
    );
    const out: IrRoute[] = [];
    for (const { m, r } of ranked) {
      const v = variant(m, r.route, tlsHost);
      if (v !== undefined) out.push(v);
    }
    return out;
  };
  const defaultOf = (pick: (m: TranslatedIngress) => boolean, tlsHost: string): IrRoute | undefined => {
    for (const m of members) {
      if (m.defaultRoute === undefined || !pick(m) || tlsFor(m, tlsHost) === 'broken') continue;
      defaultsUsed.add(m);
      return variant(m, m.defaultRoute, tlsHost);
    }
    return undefined;
  };
  const hasCatchAll = members.some((m) => m.hosts.has(ANY_HOST) || m.defaultRoute !== undefined);
  // Over HTTPS the routes after a host's own serve only names a certificate covers: with a fallback
  // certificate every name, without one only the host's own (so not a wildcard's deeper names).
  const fallthrough = (): IrRoute[] => {
    const global = defaultOf(() => true, ANY_HOST);
    return [...rulesOf(ANY_HOST, ANY_HOST), ...(global === undefined ? [] : [global])];
  };

  const hosts = new Set<string>();
  for (const m of members) {
    for (const h of m.hosts.keys()) if (h !== ANY_HOST) hosts.add(h);
    for (const e of m.tls) for (const h of e.hosts) hosts.add(h);
  }
  const out: IrVirtualHost[] = [];
  for (const host of [...hosts].sort()) {
    const wildcard = isWildcard(host);
    const guard = (r: IrRoute): IrRoute => (wildcard ? guardedVariant(r, host) : r);
    const broken = members.find((m) => tlsFor(m, host) === 'broken');
    if (https && broken === undefined && table !== undefined && !validOn(table, host)) continue;
    const deeper = wildcard && (!https || table?.fallback !== undefined);
    let routes: IrRoute[];
    if (broken !== undefined) {
      routes = [guard(unavailableRoute(broken)), ...(deeper ? fallthrough() : [])];
    } else {
      const parent = parentWildcard(host);
      const own = defaultOf((m) => m.hosts.has(host), host);
      const parentDefault =
        own === undefined && parent !== undefined ? defaultOf((m) => m.hosts.has(parent), parent) : undefined;
      const ownDefault = own ?? parentDefault;
      // After an unguarded `/` default nothing is reachable; a wildcard's own default is guarded.
      const global =
        (ownDefault === undefined && !wildcard) || deeper ? defaultOf(() => true, ANY_HOST) : undefined;
      routes = [
        ...rulesOf(host, host).map(guard),
        ...(parent === undefined ? [] : rulesOf(parent, parent)),
        ...(!wildcard || deeper ? rulesOf(ANY_HOST, ANY_HOST) : []),
        // A wildcard's own default is guarded, so the catch-all follows it (unless it is the same).
        ...(ownDefault === undefined || ownDefault === global ? [] : [guard(ownDefault)]),
        ...(global === undefined ? [] : [global]),
      ];
    }
    if (routes.length > 0) out.push({ name: virtualHostName(socket.name, host), hostnames: [host], routes });
  }
  if (hasCatchAll && (!https || table?.fallback !== undefined)) {
    const routes = fallthrough();
    if (routes.length > 0)
      out.push({ name: virtualHostName(socket.name, ANY_HOST), hostnames: [ANY_HOST], routes });
  }
  return out.sort(byName);
}

// Variants of a route, made once per route object and kept while it lives, so that unchanged input
// gives the very same IR route objects (which the Envoy translator memoises on).
const variants = new WeakMap<IrRoute, Map<string, IrRoute>>();

function variantOf(route: IrRoute, key: string, make: () => IrRoute): IrRoute {
  let byKey = variants.get(route);
  if (byKey === undefined) {
    byKey = new Map();
    variants.set(route, byKey);
  }
  let v = byKey.get(key);
  if (v === undefined) {
    v = make();
    byKey.set(key, v);
  }
  return v;
}

/** The route with the wildcard's one-label guard on `:authority` (see hosts.ts). */
function guardedVariant(route: IrRoute, wildcard: string): IrRoute {
  return variantOf(route, `guard ${wildcard}`, () => ({
    ...route,
    match: { ...route.match, headers: [...(route.match.headers ?? []), authorityGuard(wildcard)] },
  }));
}

/** The same match answered with a redirect to HTTPS on `port`, path and query kept. */
function redirectVariant(route: IrRoute, port: number): IrRoute {
  return variantOf(route, `redirect ${port}`, () => ({
    name: route.name,
    match: route.match,
    action: { kind: 'redirect', scheme: 'https', port, statusCode: FORCE_HTTPS_STATUS },
  }));
}

const unavailable = new WeakMap<TranslatedIngress, IrRoute>();

/** The 503 a host with unusable TLS gets, named after the Ingress that asked for the TLS. */
function unavailableRoute(ing: TranslatedIngress): IrRoute {
  let r = unavailable.get(ing);
  if (r === undefined) {
    r = {
      name: ingressRouteName(ing.namespace, ing.name, 'tls-unavailable'),
      match: { path: { kind: 'PathPrefix', value: '/' } },
      action: {
        kind: 'directResponse',
        status: TLS_UNAVAILABLE_STATUS,
        body: 'TLS is not available for this host\n',
      },
    };
    unavailable.set(ing, r);
  }
  return r;
}

function byName(a: { name: string }, b: { name: string }): number {
  return compareText(a.name, b.name);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
