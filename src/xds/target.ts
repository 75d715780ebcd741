import type { TypeUrl } from './proto.js';
import type { ResourceKey, XdsResource } from './resource.js';
import type { Snapshot } from './snapshot.js';
import { versionOf } from './snapshot.js';

/**
 * Pure make-before-break logic: given what a client holds and what it should have, which set of one type
 * to send next. No I/O, no stream state; `stream.ts` feeds it.
 */

/**
 * One resource as the client holds it. `resource` is undefined only when the client told us a version we
 * cannot map to bytes (delta `initial_resource_versions` naming an older version than the snapshot's).
 */
export interface Held {
  readonly version: string;
  readonly resource: XdsResource | undefined;
}
export type HeldSet = ReadonlyMap<string, Held>;

export function refKey(typeUrl: TypeUrl, name: string): string {
  return `${typeUrl} ${name}`;
}

/** The inverse of refKey: type URLs contain no space, names may. */
export function splitRefKey(key: string): [typeUrl: string, name: string] {
  const i = key.indexOf(' ');
  return [key.slice(0, i), key.slice(i + 1)];
}

export function held(resource: XdsResource): Held {
  return { version: resource.version, resource };
}

export interface TargetInput {
  /** The subscribed resources present in the snapshot. */
  readonly desired: Iterable<XdsResource>;
  /** What the client holds of this type (in-flight responses included). */
  readonly held: HeldSet;
  /** Whether `r` may be sent now: its deps are at the client. Always true on streams that do not order. */
  readonly ready: (r: XdsResource) => boolean;
  /** Whether something the client holds still names `name` of this type, so it must stay there. */
  readonly referenced: (name: string) => boolean;
}

/**
 * The next state of one type at the client:
 * - a desired resource goes at its new version once its deps are at the client; until then the client
 *   keeps the version it has, or does not get it yet;
 * - a resource the client holds but no longer should stays while anything the client holds refers to it
 *   (break after make); a later call drops it once the referrers are replaced.
 */
export function computeTarget(input: TargetInput): Map<string, Held> {
  const out = new Map<string, Held>();
  for (const r of input.desired) {
    const have = input.held.get(r.name);
    if (have?.version === r.version || input.ready(r)) out.set(r.name, held(r));
    else if (have !== undefined) out.set(r.name, have);
  }
  for (const [name, have] of input.held) {
    if (!out.has(name) && input.referenced(name)) out.set(name, have);
  }
  return out;
}

/** Equal names and versions. */
export function sameHeld(a: HeldSet, b: HeldSet): boolean {
  if (a.size !== b.size) return false;
  for (const [name, h] of a) if (b.get(name)?.version !== h.version) return false;
  return true;
}

/** The SotW version_info of a set: the same hash the snapshot uses, so a full set's version is the snapshot's. */
export function heldVersion(set: HeldSet): string {
  return versionOf([...set].map(([name, h]) => ({ name, version: h.version })));
}

/** Per resource (shared by every stream), the `refKey`s of its deps and children, built once. */
const refKeysCache = new WeakMap<XdsResource, readonly string[]>();

function refKeysOf(r: XdsResource): readonly string[] {
  let keys = refKeysCache.get(r);
  if (keys === undefined) {
    keys = [...r.deps, ...r.children].map((k) => refKey(k.typeUrl, k.name));
    refKeysCache.set(r, keys);
  }
  return keys;
}

/** Every resource the given sets name in deps or children, as `refKey`s. */
export function referencedKeys(sets: Iterable<HeldSet>): Set<string> {
  const out = new Set<string>();
  for (const set of sets) {
    for (const h of set.values()) {
      if (h.resource === undefined) continue;
      for (const k of refKeysOf(h.resource)) out.add(k);
    }
  }
  return out;
}

const parentCache = new WeakMap<Snapshot, ReadonlyMap<string, readonly XdsResource[]>>();

/** For each resource of the snapshot (as a `refKey`), the resources that name it as a child. */
export function parentsOf(snapshot: Snapshot): ReadonlyMap<string, readonly XdsResource[]> {
  let parents = parentCache.get(snapshot);
  if (parents === undefined) {
    const m = new Map<string, XdsResource[]>();
    for (const byName of snapshot.resources.values()) {
      for (const r of byName.values()) {
        for (const c of r.children) {
          const k = refKey(c.typeUrl, c.name);
          const list = m.get(k);
          if (list === undefined) m.set(k, [r]);
          else list.push(r);
        }
      }
    }
    parents = m;
    parentCache.set(snapshot, parents);
  }
  return parents;
}

export interface DepContext {
  /** The client has ACKed a resource of this name and type. */
  readonly acked: (dep: ResourceKey) => boolean;
  /** The client holds (ACKed or in flight) a resource of this name and type. */
  readonly holds: (dep: ResourceKey) => boolean;
  /** The client subscribes to this name (explicitly or by wildcard). */
  readonly subscribed: (dep: ResourceKey) => boolean;
  /** `parentsOf(snapshot)`. */
  readonly parents: ReadonlyMap<string, readonly XdsResource[]>;
}

/**
 * Whether `r` may be sent: every dep the client can obtain without `r` is ACKed.
 *
 * A dep the client can only learn about from `r` itself must not block it, or neither would ever be
 * sent: Envoy subscribes to a listener's SDS secrets only once it has the listener, and a proxyless gRPC
 * client subscribes to clusters only once it has the route configuration naming them. Such a client
 * warms or queues until the dep arrives. A dep can be obtained without `r` when the client subscribes to
 * it, or when it is the child of a resource the client holds or can itself obtain without `r` (a route's
 * ClusterLoadAssignment, child of a Cluster that Envoy gets by wildcard).
 */
export function depsReady(r: XdsResource, ctx: DepContext): boolean {
  for (const dep of r.deps) {
    if (ctx.acked(dep)) continue;
    if (obtainableWithout(dep, r, ctx, new Set())) return false;
  }
  return true;
}

function obtainableWithout(k: ResourceKey, except: XdsResource, ctx: DepContext, seen: Set<string>): boolean {
  if (ctx.subscribed(k)) return true;
  const key = refKey(k.typeUrl, k.name);
  if (seen.has(key)) return false;
  seen.add(key);
  for (const p of ctx.parents.get(key) ?? []) {
    if (p.typeUrl === except.typeUrl && p.name === except.name) continue;
    if (ctx.holds(p) || obtainableWithout(p, except, ctx, seen)) return true;
  }
  return false;
}
