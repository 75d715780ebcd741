import { allTypeUrls, type TypeUrl } from './proto.js';
import type { XdsResource } from './resource.js';
import { type ConsistencyError, checkConsistency, type Snapshot } from './snapshot.js';
import type { ResourceVerdicts } from './stream.js';
import { refKey, splitRefKey } from './target.js';
import type { NodeInfo } from './wire.js';

/**
 * Which snapshot a node gets. A strategy, not a branch in the server: one group per node, one per Envoy
 * cluster, or (the default, right for one Envoy per node fed by its own agent) one group for everybody.
 */
export type NodeGroupFn = (node: NodeInfo) => string;

export const defaultNodeGroup: NodeGroupFn = () => 'default';

export type SnapshotListener = (snapshot: Snapshot) => void;

export interface SnapshotCacheOptions {
  readonly groupOf?: NodeGroupFn;
}

/**
 * The published xDS state: one consistent snapshot per node group, and the streams watching each group.
 * Publishing is the only way config reaches a client, so the consistency check lives here, on the path.
 */
export class SnapshotCache implements ResourceVerdicts {
  readonly #nodeGroup: NodeGroupFn;
  readonly #snapshots = new Map<string, Snapshot>();
  readonly #listeners = new Map<string, Set<SnapshotListener>>();
  /** Per group, per resource (`refKey`): the newest version some client of the group ACKed. */
  readonly #accepted = new Map<string, Map<string, XdsResource>>();
  /** Per group: the resources (`refKey` → version) that NACKed responses changed, one map per NACK. */
  readonly #rejected = new Map<string, Map<string, string>[]>();

  constructor(options: SnapshotCacheOptions = {}) {
    this.#nodeGroup = options.groupOf ?? defaultNodeGroup;
  }

  /** The group a node belongs to. Throws whatever the strategy throws. */
  groupOf(node: NodeInfo): string {
    return this.#nodeGroup(node);
  }

  /**
   * Publishes `snapshot` for `group` and notifies the group's streams, unless it fails the consistency
   * check: then nothing changes and the errors come back. An empty result means published (or unchanged:
   * a snapshot whose per-type versions equal the current one's is the same content, since versions are
   * content hashes, so it is not pushed again).
   */
  setSnapshot(group: string, snapshot: Snapshot): ConsistencyError[] {
    const errors = checkConsistency(snapshot);
    if (errors.length > 0) return errors;
    const current = this.#snapshots.get(group);
    if (current !== undefined && sameVersions(current, snapshot)) return [];
    this.#snapshots.set(group, snapshot);
    this.#forgetGone(group, snapshot);
    // Copy: a listener may unsubscribe (its stream closing) while we iterate.
    for (const listener of [...(this.#listeners.get(group) ?? [])]) listener(snapshot);
    return [];
  }

  getSnapshot(group: string): Snapshot | undefined {
    return this.#snapshots.get(group);
  }

  /** Calls `listener` with each snapshot published for `group` from now on. Returns the unsubscribe. */
  watch(group: string, listener: SnapshotListener): () => void {
    let set = this.#listeners.get(group);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(group, set);
    }
    set.add(listener);
    return () => {
      const s = this.#listeners.get(group);
      if (s === undefined) return;
      s.delete(listener);
      if (s.size === 0) this.#listeners.delete(group);
    };
  }

  accepted(group: string, resources: Iterable<XdsResource>): void {
    const accepted = mapOf(this.#accepted, group);
    const batches = this.#rejected.get(group);
    for (const r of resources) {
      const key = refKey(r.typeUrl, r.name);
      accepted.set(key, r);
      // A client took this very version: whatever rejected it was about that client, not the config.
      if (batches !== undefined)
        this.#rejected.set(
          group,
          batches.filter((b) => b.get(key) !== r.version),
        );
    }
  }

  rejected(group: string, resources: Iterable<XdsResource>): void {
    const batch = new Map<string, string>();
    for (const r of resources) batch.set(refKey(r.typeUrl, r.name), r.version);
    const snapshot = this.#snapshots.get(group);
    // A NACK of a response older than the published snapshot says nothing about the current config.
    if (batch.size === 0 || snapshot === undefined || !intact(batch, snapshot)) return;
    const batches = this.#rejected.get(group) ?? [];
    batches.push(batch);
    this.#rejected.set(group, batches.slice(-MAX_REJECTED_BATCHES));
  }

  offer(group: string, r: XdsResource): XdsResource | undefined {
    const batches = this.#rejected.get(group);
    if (batches === undefined || batches.length === 0) return r;
    const key = refKey(r.typeUrl, r.name);
    if (!batches.some((b) => b.get(key) === r.version)) return r;
    return this.#accepted.get(group)?.get(key);
  }

  /**
   * After a publish: a rejected batch stays in force only while every resource in it is unchanged
   * (the NACK names no resource, so the batch is judged as a whole: fix the bad one and the good ones
   * that came with it go out again). Accepted versions of resources that are gone are forgotten, so
   * memory stays bounded by the config.
   */
  #forgetGone(group: string, snapshot: Snapshot): void {
    const batches = this.#rejected.get(group);
    if (batches !== undefined)
      this.#rejected.set(
        group,
        batches.filter((b) => intact(b, snapshot)),
      );
    const accepted = this.#accepted.get(group);
    if (accepted === undefined) return;
    for (const key of accepted.keys()) {
      const [typeUrl, name] = splitRefKey(key);
      if (!snapshot.resources.get(typeUrl as TypeUrl)?.has(name)) accepted.delete(key);
    }
  }

  /** Groups with a published snapshot, sorted. */
  groups(): string[] {
    return [...this.#snapshots.keys()].sort();
  }
}

/** Enough for every type to have a few distinct rejected configs outstanding. */
const MAX_REJECTED_BATCHES = 16;

/** Whether every resource of a rejected batch is still at the rejected version in `snapshot`. */
function intact(batch: ReadonlyMap<string, string>, snapshot: Snapshot): boolean {
  for (const [key, version] of batch) {
    const [typeUrl, name] = splitRefKey(key);
    if (snapshot.resources.get(typeUrl as TypeUrl)?.get(name)?.version !== version) return false;
  }
  return true;
}

function mapOf<V>(outer: Map<string, Map<string, V>>, group: string): Map<string, V> {
  let m = outer.get(group);
  if (m === undefined) {
    m = new Map();
    outer.set(group, m);
  }
  return m;
}

function sameVersions(a: Snapshot, b: Snapshot): boolean {
  return allTypeUrls.every((t) => a.versions.get(t) === b.versions.get(t));
}
