import type { IrWeightedBackend } from '../model/ir.js';
import type { BackendResolution } from './backends.js';
import { RouteReason } from './conditions.js';
import type { Verdict } from './listeners.js';

/**
 * Weights and ResolvedRefs as every route kind computes them from its backendRefs and how they
 * resolved (GRPCRoute, TLSRoute, TCPRoute, UDPRoute; HTTPRoute has its own in routeRules.ts).
 */

/** A backendRef's weight and, for request routes, its own header changes. */
export interface WeightedRef {
  readonly weight?: number;
}

/**
 * The valid backends of one rule with their weights (default 1), merged when one is named twice and
 * without those of weight 0, sorted by backend name; and the total weight of the refs that did not
 * resolve. `extra(i)` adds per-backendRef fields (per-backend filters) to the i-th ref's entry; a
 * backend named twice with different extras keeps the first one's.
 */
export function weightedBackends(
  refs: readonly WeightedRef[],
  resolved: readonly BackendResolution[],
  extra?: (index: number) => Omit<IrWeightedBackend, 'backend' | 'weight'>,
): { readonly backends: IrWeightedBackend[]; readonly invalidWeight: number } {
  const byName = new Map<string, IrWeightedBackend>();
  let invalidWeight = 0;
  refs.forEach((ref, i) => {
    const weight = ref.weight ?? 1;
    const r = resolved[i];
    if (r?.ok !== true) {
      invalidWeight += weight;
      return;
    }
    const seen = byName.get(r.backend);
    byName.set(
      r.backend,
      seen === undefined
        ? { backend: r.backend, weight, ...(extra?.(i) ?? {}) }
        : { ...seen, weight: seen.weight + weight },
    );
  });
  const backends = [...byName.values()]
    .filter((b) => b.weight > 0)
    .sort((a, b) => (a.backend < b.backend ? -1 : a.backend > b.backend ? 1 : 0));
  return { backends, invalidWeight };
}

/** ResolvedRefs for a whole route: the reason of the first backendRef that did not resolve, if any. */
export function resolvedRefsVerdict(resolutions: readonly (readonly BackendResolution[])[]): Verdict {
  const failures: { reason: string; message: string }[] = [];
  resolutions.forEach((rule, i) => {
    rule.forEach((r, j) => {
      if (!r.ok) failures.push({ reason: r.reason, message: `rules[${i}].backendRefs[${j}]: ${r.message}` });
    });
  });
  const first = failures[0];
  if (first === undefined)
    return { ok: true, reason: RouteReason.ResolvedRefs, message: 'all references resolved' };
  const shown = failures.slice(0, 3).map((f) => f.message);
  if (failures.length > 3) shown.push(`and ${failures.length - 3} more`);
  return { ok: false, reason: first.reason, message: shown.join('; ') };
}
