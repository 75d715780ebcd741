import { covers, isWildcard } from './hostnames.js';
import type { RouteState } from './httpRoutes.js';
import type { ListenerState } from './listeners.js';
import { createdMs } from './precedence.js';

/**
 * Step 5b: HTTPRoutes and GRPCRoutes that share a hostname on a listener. The GRPCRoute spec (GEP-1016,
 * "cross serving") forbids merging the two kinds on one hostname: when the hostnames of an HTTPRoute
 * and a GRPCRoute attached to one listener intersect, exactly one of them is accepted there, the oldest
 * by creationTimestamp, then the first by `namespace/name`; the other gets Accepted=False on that
 * listener (finishRoutes). Routes of one kind never conflict with each other here: their rules merge by
 * precedence.
 *
 * Per listener, routes are taken oldest first, and each is kept unless one of its hostnames intersects
 * a hostname of a kept route of the other kind. So a rejected route takes nothing from anyone, and the
 * outcome does not depend on input order. Hostnames are those the route has on the listener (already
 * intersected with the listener's own, `*` for any), so two hostnames intersect when one covers the
 * other.
 *
 * Cost: nothing when either kind is absent. Otherwise a first pass looks each HTTPRoute hostname up in
 * an index of the GRPCRoute hostnames on its listener (with a ConflictMemo, only HTTPRoutes not already
 * found clear against the same index); the age-ordered pass runs only on listeners where two meet.
 *
 * Returns, for each route that lost a listener, why, by listener (RouteLosses.rejected).
 */
export function kindConflicts(
  http: readonly RouteState[],
  grpc: readonly RouteState[],
  memo: ConflictMemo = new ConflictMemo(),
): Map<RouteState, Map<ListenerState, string>> {
  const out = new Map<RouteState, Map<ListenerState, string>>();
  if (http.length === 0 || grpc.length === 0) return out;
  const grpcByListener = new Map<ListenerState, Claim[]>();
  for (const state of grpc) {
    for (const a of state.attachments) {
      const list = grpcByListener.get(a.listener);
      if (list === undefined) grpcByListener.set(a.listener, [{ state, hostnames: a.hostnames }]);
      else list.push({ state, hostnames: a.hostnames });
    }
  }
  // Which listeners have an HTTPRoute whose hostnames meet a GRPCRoute's there at all (ages aside):
  // only those need the age-ordered pass. An HTTPRoute found clear against the same GRPCRoute
  // hostnames as last build is not looked at again.
  const indexes = memo.indexes(grpcByListener);
  const shared = new Set<ListenerState>();
  for (const state of http) {
    if (memo.clear(state, indexes)) continue;
    let clear = true;
    for (const a of state.attachments) {
      const index = indexes.get(a.listener);
      if (index === undefined) continue;
      if (a.hostnames.some((h) => index.overlap(h) !== undefined)) {
        shared.add(a.listener);
        clear = false;
      }
    }
    if (clear) memo.markClear(state, indexes);
  }
  if (shared.size === 0) return out;

  const byListener = new Map<ListenerState, Claim[]>();
  for (const listener of shared) byListener.set(listener, [...(grpcByListener.get(listener) ?? [])]);
  for (const state of http) {
    for (const a of state.attachments) byListener.get(a.listener)?.push({ state, hostnames: a.hostnames });
  }

  for (const [listener, claims] of byListener) {
    claims.sort(compareClaims);
    const kept = { HTTPRoute: new HostIndex(), GRPCRoute: new HostIndex() };
    for (const claim of claims) {
      const kind = claim.state.route.kind === 'GRPCRoute' ? 'GRPCRoute' : 'HTTPRoute';
      const other = kept[kind === 'GRPCRoute' ? 'HTTPRoute' : 'GRPCRoute'];
      let winner: { state: RouteState; hostname: string; mine: string } | undefined;
      for (const h of claim.hostnames) {
        const hit = other.overlap(h);
        if (hit !== undefined) {
          winner = { ...hit, mine: h };
          break;
        }
      }
      if (winner === undefined) {
        for (const h of claim.hostnames) kept[kind].add(h, claim.state);
        continue;
      }
      const w = winner.state.route;
      const shown = (h: string) => (h === '*' ? 'any hostname' : `hostname ${h}`);
      const why =
        `${shown(winner.mine)} on listener ${listener.name} of Gateway ${listener.gateway.namespace}/${listener.gateway.name} ` +
        `is served there by ${w.kind} ${w.metadata?.namespace ?? 'default'}/${w.metadata?.name ?? ''} (${shown(winner.hostname)}), which precedes this route (creationTimestamp, then namespace/name); ` +
        'an HTTPRoute and a GRPCRoute must not share a hostname on a listener';
      let lost = out.get(claim.state);
      if (lost === undefined) {
        lost = new Map();
        out.set(claim.state, lost);
      }
      lost.set(listener, why);
    }
  }
  return out;
}

/**
 * What kindConflicts keeps across builds so that a build costs what changed: per listener, the index of
 * its GRPCRoutes' hostnames (reused while the same GRPCRoute states are on it), and the HTTPRoute
 * states found to share no hostname with them (while the indexes they were checked against stand).
 */
export class ConflictMemo {
  #grpc = new Map<ListenerState, { readonly claims: readonly Claim[]; readonly index: HostIndex }>();
  #clear = new WeakMap<RouteState, ReadonlyMap<ListenerState, HostIndex>>();

  /** The GRPCRoute hostname index of each listener that has GRPCRoutes. */
  indexes(grpcByListener: ReadonlyMap<ListenerState, readonly Claim[]>): Map<ListenerState, HostIndex> {
    const next = new Map<ListenerState, { readonly claims: readonly Claim[]; readonly index: HostIndex }>();
    const out = new Map<ListenerState, HostIndex>();
    for (const [listener, claims] of grpcByListener) {
      const old = this.#grpc.get(listener);
      const same =
        old !== undefined &&
        old.claims.length === claims.length &&
        old.claims.every((c, i) => c.state === claims[i]?.state && c.hostnames === claims[i]?.hostnames);
      let index: HostIndex;
      if (same) index = old.index;
      else {
        index = new HostIndex();
        for (const c of claims) for (const h of c.hostnames) index.add(h, c.state);
      }
      next.set(listener, { claims, index });
      out.set(listener, index);
    }
    this.#grpc = next;
    return out;
  }

  /** Whether `state` was found clear against these very indexes (for each listener it is on). */
  clear(state: RouteState, indexes: ReadonlyMap<ListenerState, HostIndex>): boolean {
    const seen = this.#clear.get(state);
    if (seen === undefined) return false;
    for (const a of state.attachments) if (indexes.get(a.listener) !== seen.get(a.listener)) return false;
    return true;
  }

  markClear(state: RouteState, indexes: ReadonlyMap<ListenerState, HostIndex>): void {
    const seen = new Map<ListenerState, HostIndex>();
    for (const a of state.attachments) {
      const index = indexes.get(a.listener);
      if (index !== undefined) seen.set(a.listener, index);
    }
    this.#clear.set(state, seen);
  }
}

interface Claim {
  readonly state: RouteState;
  readonly hostnames: readonly string[];
}

/** Oldest first, then by namespace/name; the kind last, only to keep the order total. */
function compareClaims(a: Claim, b: Claim): number {
  const ra = a.state.route;
  const rb = b.state.route;
  const ta = createdMs(ra);
  const tb = createdMs(rb);
  if (ta !== tb) return ta < tb ? -1 : 1;
  return (
    compareText(ra.metadata?.namespace ?? 'default', rb.metadata?.namespace ?? 'default') ||
    compareText(ra.metadata?.name ?? '', rb.metadata?.name ?? '') ||
    compareText(ra.kind, rb.kind)
  );
}

/** The hostnames kept for one kind on one listener, for "does this one intersect any of them". */
class HostIndex {
  #any: RouteState | undefined;
  readonly #precise = new Map<string, RouteState>();
  readonly #wildcards = new Map<string, RouteState>();

  add(hostname: string, state: RouteState): void {
    if (hostname === '*') this.#any ??= state;
    else if (isWildcard(hostname)) {
      if (!this.#wildcards.has(hostname)) this.#wildcards.set(hostname, state);
    } else if (!this.#precise.has(hostname)) this.#precise.set(hostname, state);
  }

  /** A kept hostname that intersects `h`, and whose it is. */
  overlap(h: string): { state: RouteState; hostname: string } | undefined {
    if (this.#any !== undefined) return { state: this.#any, hostname: '*' };
    if (h === '*') {
      const [first] = [...this.#precise, ...this.#wildcards];
      return first === undefined ? undefined : { state: first[1], hostname: first[0] };
    }
    const exact = this.#precise.get(h) ?? this.#wildcards.get(h);
    if (exact !== undefined) return { state: exact, hostname: h };
    // Wildcards that cover h: `*.` and each of its parent domains.
    const labels = (isWildcard(h) ? h.slice(2) : h).split('.');
    for (let i = 1; i < labels.length; i++) {
      const w = `*.${labels.slice(i).join('.')}`;
      const s = this.#wildcards.get(w);
      if (s !== undefined) return { state: s, hostname: w };
    }
    // What a wildcard h covers (rare: scans the kept hostnames).
    if (isWildcard(h)) {
      for (const [name, s] of [...this.#precise, ...this.#wildcards]) {
        if (covers(h, name)) return { state: s, hostname: name };
      }
    }
    return undefined;
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
