/**
 * Object identity is what the memo caches downstream key on: a source keeps the very same object for
 * an object that did not change. Not every source can (a Kubernetes relist after a lost watch, a
 * benchmark that builds its input afresh), and then a new but equal Service would rebuild every backend
 * and re-resolve every route. An Interner hands back, for each object that equals (deeply) the object of
 * the same kind and name in the previous build, that previous object, so identity means "unchanged"
 * whatever the source does.
 *
 * It is used for the kinds that many routes depend on and that are few next to the routes: classes,
 * Gateways, Services and EndpointSlices. Routes themselves are compared by identity only; comparing
 * 10,000 of them deeply on every build would cost more than it saves.
 */
export class Interner<T extends { metadata?: { namespace?: string; name?: string } | undefined }> {
  #previous: readonly T[] = [];
  #byKey = new Map<string, T>();

  /** `objects`, with each one that equals the previous build's object of the same name replaced by it. */
  intern(objects: readonly T[]): readonly T[] {
    // The common case with a source that keeps identity: nothing to look up.
    if (objects === this.#previous || sameItems(objects, this.#previous)) return this.#previous;
    const byKey = new Map<string, T>();
    const out = objects.map((o) => {
      const key = keyOf(o);
      const old = this.#byKey.get(key);
      const kept = old !== undefined && deepEqual(old, o) ? old : o;
      byKey.set(key, kept);
      return kept;
    });
    this.#previous = out;
    this.#byKey = byKey;
    return out;
  }
}

function keyOf(o: { metadata?: { namespace?: string; name?: string } | undefined }): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Equality of parsed YAML/JSON data (plain objects, arrays, primitives, Dates); anything else by identity. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof Date || b instanceof Date) {
    return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => deepEqual(x, b[i]));
  }
  if (Object.getPrototypeOf(a) !== Object.prototype || Object.getPrototypeOf(b) !== Object.prototype)
    return false;
  // Keys in the same order too: then nothing that walks an object's keys can tell the two apart.
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  return ka.every((k, i) => k === kb[i] && deepEqual(ra[k], rb[k]));
}
