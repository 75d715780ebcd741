import { createHash } from 'node:crypto';
import { allTypeUrls, TypeUrl } from './proto.js';
import type { XdsResource } from './resource.js';

/** The full desired xDS state of one node group: every resource of every type, by name. */
export interface Snapshot {
  readonly resources: ReadonlyMap<TypeUrl, ReadonlyMap<string, XdsResource>>;
  /** Per type, a hash over the (name, version) pairs: the SotW version_info. */
  readonly versions: ReadonlyMap<TypeUrl, string>;
}

export function createSnapshot(resources: Iterable<XdsResource>): Snapshot {
  const byType = new Map<TypeUrl, Map<string, XdsResource>>(allTypeUrls.map((t) => [t, new Map()]));
  for (const r of resources) {
    const m = byType.get(r.typeUrl);
    if (m === undefined) throw new Error(`unknown type ${r.typeUrl}`);
    if (m.has(r.name)) throw new Error(`duplicate resource ${r.typeUrl} ${r.name}`);
    m.set(r.name, r);
  }
  const versions = new Map<TypeUrl, string>();
  for (const [t, m] of byType) versions.set(t, versionOf(m.values()));
  return { resources: byType, versions };
}

/** Version of a set of resources: a hash of their sorted names and versions. Empty set: "empty". */
export function versionOf(resources: Iterable<{ readonly name: string; readonly version: string }>): string {
  const pairs = [...resources].map((r) => `${r.name}\0${r.version}`).sort();
  if (pairs.length === 0) return 'empty';
  const h = createHash('sha256');
  for (const p of pairs) h.update(p).update('\n');
  return h.digest('base64url').slice(0, 16);
}

export interface ConsistencyError {
  readonly code: 'SKEIN_XDS_DANGLING_REF' | 'SKEIN_XDS_ORPHAN';
  readonly message: string;
}

/**
 * The publish-path check: every resource a resource names (deps and children) is in the snapshot, every
 * EDS resource is named by a cluster and every RDS resource by a listener. A snapshot that fails it is not published.
 */
export function checkConsistency(s: Snapshot): ConsistencyError[] {
  const errors: ConsistencyError[] = [];
  // Only a cluster names endpoints, and only a listener names a route configuration: a route
  // configuration's deps on endpoints do not keep endpoints without a cluster alive.
  const named = new Set<string>();
  for (const m of s.resources.values()) {
    for (const r of m.values()) {
      for (const d of [...r.deps, ...r.children]) {
        if (
          (d.typeUrl === TypeUrl.ClusterLoadAssignment && r.typeUrl === TypeUrl.Cluster) ||
          (d.typeUrl === TypeUrl.RouteConfiguration && r.typeUrl === TypeUrl.Listener)
        )
          named.add(`${d.typeUrl} ${d.name}`);
        if (!s.resources.get(d.typeUrl)?.has(d.name)) {
          errors.push({
            code: 'SKEIN_XDS_DANGLING_REF',
            message: `${r.typeUrl} "${r.name}" needs ${d.typeUrl} "${d.name}", which is not in the snapshot`,
          });
        }
      }
    }
  }
  for (const t of [TypeUrl.ClusterLoadAssignment, TypeUrl.RouteConfiguration] as const) {
    for (const name of s.resources.get(t)?.keys() ?? []) {
      if (!named.has(`${t} ${name}`)) {
        const by = t === TypeUrl.ClusterLoadAssignment ? 'cluster' : 'listener';
        errors.push({ code: 'SKEIN_XDS_ORPHAN', message: `${t} "${name}" is not referenced by any ${by}` });
      }
    }
  }
  return errors;
}
