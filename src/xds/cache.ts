import { allTypeUrls } from './proto.js';
import { type ConsistencyError, checkConsistency, type Snapshot } from './snapshot.js';
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
export class SnapshotCache {
  readonly #nodeGroup: NodeGroupFn;
  readonly #snapshots = new Map<string, Snapshot>();
  readonly #listeners = new Map<string, Set<SnapshotListener>>();

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

  /** Groups with a published snapshot, sorted. */
  groups(): string[] {
    return [...this.#snapshots.keys()].sort();
  }
}

function sameVersions(a: Snapshot, b: Snapshot): boolean {
  return allTypeUrls.every((t) => a.versions.get(t) === b.versions.get(t));
}
