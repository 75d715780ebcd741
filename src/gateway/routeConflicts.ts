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
 * Cost: nothing when either kind is absent; otherwise linear in the attachments of listeners that have
 * both kinds, times the labels of a hostname (wildcard hostnames scan the kept ones of the other kind).
 *
 * Returns, for each route that lost a listener, why, by listener (RouteLosses.rejected).
 */
export function kindConflicts(
  http: readonly RouteState[],
  grpc: readonly RouteState[],
): Map<RouteState, Map<ListenerState, string>> {
  const out = new Map<RouteState, Map<ListenerState, string>>();
  if (http.length === 0 || grpc.length === 0) return out;
  const byListener = new Map<ListenerState, Claim[]>();
  const add = (state: RouteState, onlyShared: boolean) => {
    for (const a of state.attachments) {
      let list = byListener.get(a.listener);
      if (list === undefined) {
        if (onlyShared) continue;
        list = [];
        byListener.set(a.listener, list);
      }
      list.push({ state, hostnames: a.hostnames });
    }
  };
  for (const s of grpc) add(s, false);
  for (const s of http) add(s, true);

  for (const [listener, claims] of byListener) {
    if (!claims.some((c) => c.state.route.kind === 'HTTPRoute')) continue;
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
