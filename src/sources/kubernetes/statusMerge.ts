import type { ObjectStatus } from '../objects.js';
import type { KubeObject } from './kubeClient.js';

/** Route kinds: `status.parents`, one entry per (parentRef, controllerName). */
export const ROUTE_KINDS: ReadonlySet<string> = new Set([
  'HTTPRoute',
  'GRPCRoute',
  'TLSRoute',
  'TCPRoute',
  'UDPRoute',
]);

type Json = Record<string, unknown>;

interface Condition {
  readonly type?: unknown;
  readonly status?: unknown;
  readonly lastTransitionTime?: unknown;
  readonly [field: string]: unknown;
}

/** Where a kind's status has per-controller entries, and what names an entry. */
function sharedList(kind: string): { readonly list: string; readonly ref: string } | undefined {
  if (ROUTE_KINDS.has(kind)) return { list: 'parents', ref: 'parentRef' };
  if (kind === 'BackendTLSPolicy') return { list: 'ancestors', ref: 'ancestorRef' };
  return undefined;
}

/**
 * The status to write on `current` so that it says what `desired` says, or undefined when the server
 * already says it. Pure.
 *
 * - GatewayClass, Gateway: the whole status is Skein's.
 * - Route kinds and BackendTLSPolicy: only the `parents` / `ancestors` entries whose controllerName is
 *   Skein's are replaced; other controllers' entries stay as they are. With `desired` undefined (the
 *   route no longer names a Skein Gateway), Skein's entries are removed.
 * - Ingress: only `loadBalancer` (networking.k8s.io/v1 has nothing else, and would drop the rest).
 *
 * A condition whose status did not change keeps the lastTransitionTime on the server: the translator's
 * times are stable only within one process, and a restarted operator must not rewrite every object.
 */
export function statusToWrite(
  kind: string,
  current: KubeObject,
  desired: ObjectStatus | undefined,
  controllerName: string,
): Json | undefined {
  const now = isRecord(current['status']) ? current['status'] : {};
  let next: Json | undefined;
  const shared = sharedList(kind);
  if (kind === 'Ingress') {
    if (desired === undefined) return undefined;
    next = { ...now, loadBalancer: desired.status['loadBalancer'] ?? {} };
  } else if (shared !== undefined) {
    next = mergeShared(shared, current, now, desired, controllerName);
    if (next === undefined) return undefined;
  } else {
    if (desired === undefined) return undefined;
    next = carryObject(desired.status, now);
  }
  return canonical(next) === canonical(now) ? undefined : next;
}

function mergeShared(
  shared: { readonly list: string; readonly ref: string },
  current: KubeObject,
  now: Json,
  desired: ObjectStatus | undefined,
  controllerName: string,
): Json | undefined {
  const existing = Array.isArray(now[shared.list]) ? (now[shared.list] as unknown[]).filter(isRecord) : [];
  const others = existing.filter((e) => e['controllerName'] !== controllerName);
  const ours = existing.filter((e) => e['controllerName'] === controllerName);
  // Not Skein's route (any more) and nothing of Skein's on it: leave it alone.
  if (desired === undefined && ours.length === 0) return undefined;
  const namespace = current.metadata?.namespace ?? '';
  const refKey = (e: Json): string =>
    `${refIdentity(e[shared.ref], namespace)}|${String(e['controllerName'])}`;
  const before = new Map(ours.map((e) => [refKey(e), e]));
  const wanted = desired === undefined ? [] : ((desired.status[shared.list] as unknown[] | undefined) ?? []);
  const mine = wanted.filter(isRecord).map((e) => {
    const old = before.get(refKey(e));
    return old === undefined ? e : carryObject(e, old);
  });
  return { ...now, [shared.list]: [...others, ...mine] };
}

/** A parentRef or ancestorRef with the API's defaults filled in, as a string. */
function refIdentity(ref: unknown, namespace: string): string {
  const r = isRecord(ref) ? ref : {};
  return canonical({
    group: r['group'] ?? 'gateway.networking.k8s.io',
    kind: r['kind'] ?? 'Gateway',
    namespace: r['namespace'] ?? namespace,
    name: r['name'],
    sectionName: r['sectionName'],
    port: r['port'],
  });
}

/**
 * `next` with the lastTransitionTime of every condition (at any depth: Gateway listeners, route
 * parents) taken from `old` where the condition of that type has the same status there. Arrays of
 * listeners pair by name.
 */
function carryObject(next: Readonly<Json>, old: Readonly<Json>): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(next)) {
    const o = old[k];
    if (k === 'conditions' && Array.isArray(v)) out[k] = carryConditions(v as Condition[], o);
    else if (k === 'listeners' && Array.isArray(v) && Array.isArray(o)) {
      const byName = new Map((o as unknown[]).filter(isRecord).map((l) => [l['name'], l]));
      out[k] = (v as unknown[]).map((l) => {
        if (!isRecord(l)) return l;
        const prev = byName.get(l['name']);
        return prev === undefined ? l : carryObject(l, prev);
      });
    } else out[k] = v;
  }
  return out;
}

function carryConditions(next: readonly Condition[], old: unknown): Condition[] {
  const before = Array.isArray(old) ? (old as unknown[]).filter(isRecord) : [];
  return next.map((c) => {
    const o = before.find((b) => b['type'] === c.type);
    return o !== undefined && o['status'] === c.status && typeof o['lastTransitionTime'] === 'string'
      ? { ...c, lastTransitionTime: o['lastTransitionTime'] }
      : c;
  });
}

/** JSON with object keys sorted: equal content gives equal strings whatever the key order. */
export function canonical(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isRecord(v)) return v;
  const out: Json = {};
  for (const k of Object.keys(v).sort()) if (v[k] !== undefined) out[k] = sortKeys(v[k]);
  return out;
}

function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
