import type { ReferenceGrant } from '../sources/objects.js';

/** The object that holds a reference: a route's kind in its namespace (or a Gateway, for certificateRefs). */
export interface ReferenceFrom {
  readonly group: string;
  readonly kind: string;
  readonly namespace: string;
}

/** The object referred to, in another namespace than the referrer's. */
export interface ReferenceTo {
  readonly group: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

/**
 * ReferenceGrants, indexed by the namespace they live in. A reference from one namespace to an object in
 * another is allowed only when a ReferenceGrant in the *target's* namespace lists the referrer's group,
 * kind and namespace in `from` and the target's group and kind (and, if it names one, the target's name)
 * in `to`. Any one grant suffices; grants never deny. A reference within one namespace needs no grant.
 *
 * Used for the backendRefs of every route kind (to core Services) and for certificateRefs (to Secrets).
 * Pure and cheap: one map lookup and a scan of the few grants of the target namespace.
 */
export class ReferenceGrantIndex {
  readonly #byNamespace = new Map<string, ReferenceGrant[]>();

  constructor(grants: readonly ReferenceGrant[]) {
    for (const g of grants) {
      const ns = g.metadata?.namespace ?? 'default';
      const list = this.#byNamespace.get(ns);
      if (list === undefined) this.#byNamespace.set(ns, [g]);
      else list.push(g);
    }
  }

  /** Whether `from` may refer to `to`. */
  allows(from: ReferenceFrom, to: ReferenceTo): boolean {
    if (from.namespace === to.namespace) return true;
    for (const grant of this.#byNamespace.get(to.namespace) ?? []) {
      const spec = grant.spec;
      if (spec === undefined) continue;
      const fromOk = spec.from.some(
        (f) => f.group === from.group && f.kind === from.kind && f.namespace === from.namespace,
      );
      if (!fromOk) continue;
      const toOk = spec.to.some(
        (t) => t.group === to.group && t.kind === to.kind && (t.name === undefined || t.name === to.name),
      );
      if (toOk) return true;
    }
    return false;
  }
}
