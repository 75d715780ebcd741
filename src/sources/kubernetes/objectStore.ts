import { emptyObjectSet, type ObjectSet } from '../objects.js';
import type { KubeObject } from './kubeClient.js';
import type { ReflectorSink } from './reflector.js';
import { listedResources } from './resources.js';

interface Entry {
  /** The object as last read, status and resourceVersion included (what the status writer compares). */
  readonly raw: KubeObject;
  /** What translators get: frozen, without status and resourceVersion; replaced only when it changes. */
  readonly view: KubeObject;
  readonly viewJson: string;
}

const noOrigins: ReadonlyMap<string, string> = new Map();

export function storeKey(namespace: string | undefined, name: string | undefined): string {
  return `${namespace ?? ''}/${name ?? ''}`;
}

/**
 * The typed store the informers fill: objects by kind and namespace/name, and the ObjectSet the
 * translators read, built the way the file source builds it (lists sorted by namespace, then name).
 *
 * An update that changes only `status` or `metadata.resourceVersion` keeps the translators' object (by
 * identity, so their memos hit) and is not reported as a change: the operator's own status writes must
 * not rebuild every node. The latest object is still kept for the status writer. A Pod and a Node
 * keep the part of their status the datapath reads (phase and addresses).
 */
export class ObjectStore {
  readonly #kinds = new Map<string, Map<string, Entry>>();
  /** Per ObjectSet field, the sorted list of views while the kind has not changed. */
  readonly #lists = new Map<string, readonly KubeObject[]>();
  readonly #onChange: (kind: string) => void;
  readonly #onRawChange: ((kind: string, key: string) => void) | undefined;

  constructor(opts: {
    /** The translators' view of `kind` changed. */
    readonly onChange: (kind: string) => void;
    /** Only the status or resourceVersion of an object changed (the status writer checks it again). */
    readonly onRawChange?: (kind: string, key: string) => void;
  }) {
    this.#onChange = opts.onChange;
    this.#onRawChange = opts.onRawChange;
  }

  /**
   * A sink for a reflector of `kind`. With `owns`, the sink's `replace` only touches keys it owns (a
   * reflector that watches one Secret by name must not delete the others).
   */
  sink(kind: string, owns?: (key: string) => boolean): ReflectorSink {
    return {
      replace: (items) => {
        const map = this.#map(kind);
        const keep = new Set<string>();
        let changed = false;
        for (const o of items) {
          const key = storeKey(o.metadata?.namespace, o.metadata?.name);
          keep.add(key);
          changed = this.#put(kind, map, key, o) || changed;
        }
        for (const key of [...map.keys()]) {
          if (keep.has(key) || (owns !== undefined && !owns(key))) continue;
          map.delete(key);
          changed = true;
        }
        if (changed) this.#changed(kind);
      },
      upsert: (o) => {
        const key = storeKey(o.metadata?.namespace, o.metadata?.name);
        if (this.#put(kind, this.#map(kind), key, o)) this.#changed(kind);
      },
      remove: (o) => this.delete(kind, storeKey(o.metadata?.namespace, o.metadata?.name)),
    };
  }

  delete(kind: string, key: string): void {
    if (this.#map(kind).delete(key)) this.#changed(kind);
  }

  /** The latest object as read from the API server (with status). */
  get(kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.#kinds.get(kind)?.get(storeKey(namespace, name))?.raw;
  }

  /** The translators' view of one object: the same object while it does not change. */
  view(kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.#kinds.get(kind)?.get(storeKey(namespace, name))?.view;
  }

  /** Every object of a kind as read (with status), in no particular order. */
  list(kind: string): KubeObject[] {
    return [...(this.#kinds.get(kind)?.values() ?? [])].map((e) => e.raw);
  }

  count(kind: string): number {
    return this.#kinds.get(kind)?.size ?? 0;
  }

  /** Everything the translators read, as the file source would give it. */
  snapshot(): ObjectSet {
    const out: Record<string, unknown> = { ...emptyObjectSet, origins: noOrigins };
    for (const r of listedResources) {
      let list = this.#lists.get(r.field);
      if (list === undefined) {
        list = [...(this.#kinds.get(r.kind)?.values() ?? [])].map((e) => e.view).sort(compareObjects);
        this.#lists.set(r.field, list);
      }
      out[r.field] = list;
    }
    return out as unknown as ObjectSet;
  }

  #map(kind: string): Map<string, Entry> {
    let map = this.#kinds.get(kind);
    if (map === undefined) {
      map = new Map();
      this.#kinds.set(kind, map);
    }
    return map;
  }

  /** Stores `o`; true when the translators' view of it changed. */
  #put(kind: string, map: Map<string, Entry>, key: string, o: KubeObject): boolean {
    const old = map.get(key);
    const { status, ...rest } = o;
    const { resourceVersion: _rv, ...metadata } = o.metadata ?? {};
    const kept = kind === 'Pod' || kind === 'Node' ? statusView(kind, status) : undefined;
    const view = { ...rest, metadata, ...(kept === undefined ? {} : { status: kept }) };
    const viewJson = JSON.stringify(view);
    if (old !== undefined && old.viewJson === viewJson) {
      map.set(key, { raw: o, view: old.view, viewJson });
      if (old.raw.metadata?.resourceVersion !== o.metadata?.resourceVersion) this.#onRawChange?.(kind, key);
      return false;
    }
    map.set(key, { raw: o, view: deepFreeze(view), viewJson });
    return true;
  }

  #changed(kind: string): void {
    const r = listedResources.find((x) => x.kind === kind);
    if (r !== undefined) this.#lists.delete(r.field);
    this.#onChange(kind);
  }
}

/** The status fields the datapath reads: a Pod's phase and addresses, a Node's addresses. */
const STATUS_FIELDS: Readonly<Record<string, readonly string[]>> = {
  Pod: ['phase', 'podIP', 'podIPs'],
  Node: ['addresses'],
};

/**
 * The part of a status the datapath reads. The rest (conditions, container states, heartbeats) changes
 * all the time and must not rebuild anything.
 */
function statusView(kind: string, status: unknown): Record<string, unknown> | undefined {
  if (typeof status !== 'object' || status === null) return undefined;
  const s = status as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of STATUS_FIELDS[kind] ?? []) if (s[k] !== undefined) out[k] = s[k];
  return Object.keys(out).length === 0 ? undefined : out;
}

function compareObjects(a: KubeObject, b: KubeObject): number {
  const an = a.metadata?.namespace ?? '';
  const bn = b.metadata?.namespace ?? '';
  if (an !== bn) return an < bn ? -1 : 1;
  const aName = a.metadata?.name ?? '';
  const bName = b.metadata?.name ?? '';
  return aName < bName ? -1 : aName > bName ? 1 : 0;
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
