/**
 * Security identities: one number per distinct security-relevant label set, and one per ipBlock CIDR.
 *
 * A label identity stands for (namespace, the pod's labels minus those below, the namespace's labels).
 * Its number is derived from a hash of that set, so an agent that lost its state finds the same numbers
 * again; a collision (two sets, one number) is resolved by probing upwards in the sorted order of the new
 * sets, and the numbers already handed out are kept (`previous`, which the agent persists), so an
 * identity never changes while its set exists. docs/architecture.md has the cluster-wide plan.
 *
 * Labels left out of identities (`NON_SECURITY_LABELS`) are those Kubernetes controllers put on pods
 * per revision or per pod: keeping them would give every rollout, every StatefulSet replica or every Job
 * run an identity of its own, and policy would churn with them. A peer selector that looks at one of
 * them is reported and selects nothing (identities cannot tell such pods apart; failing closed is safe).
 */

import { createHash } from 'node:crypto';
import { FIRST_CIDR_IDENTITY, FIRST_LABEL_IDENTITY, IDENTITY_LIMIT } from '../model/policy.js';

/** Pod labels that are not security relevant: per revision, per pod or per Job run. */
export const NON_SECURITY_LABELS: ReadonlySet<string> = new Set([
  'pod-template-hash', // Deployment: one per ReplicaSet (every rollout)
  'controller-revision-hash', // StatefulSet, DaemonSet: one per revision
  'pod-template-generation', // DaemonSet (older clusters): one per revision
  'statefulset.kubernetes.io/pod-name', // one per pod
  'apps.kubernetes.io/pod-index', // StatefulSet: one per pod
  'batch.kubernetes.io/controller-uid', // Job: one per run
  'controller-uid', // Job (older clusters): one per run
  'batch.kubernetes.io/job-completion-index', // indexed Job: one per pod
  'job-completion-index',
]);

/** The pod labels that go into its identity, sorted by key. */
export function securityLabels(labels: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(labels ?? {}).sort()) {
    const v = labels?.[k];
    if (v !== undefined && !NON_SECURITY_LABELS.has(k)) out[k] = v;
  }
  return out;
}

export function sortedLabels(labels: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(labels ?? {}).sort()) {
    const v = labels?.[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** The key that names a label identity: canonical JSON of its (sorted) parts. */
export function labelIdentityKey(
  namespace: string,
  podLabels: Readonly<Record<string, string>>,
  namespaceLabels: Readonly<Record<string, string>>,
): string {
  return JSON.stringify(['labels', namespace, sortedLabels(podLabels), sortedLabels(namespaceLabels)]);
}

export function cidrIdentityKey(cidr: string): string {
  return JSON.stringify(['cidr', cidr]);
}

/** Which range a key's identity comes from. */
function rangeOf(key: string): readonly [number, number] {
  return key.startsWith('["cidr"')
    ? [FIRST_CIDR_IDENTITY, IDENTITY_LIMIT]
    : [FIRST_LABEL_IDENTITY, FIRST_CIDR_IDENTITY];
}

/** The number a key prefers: a hash of it, into its range. */
export function preferredIdentity(key: string): number {
  const [lo, hi] = rangeOf(key);
  const h = createHash('sha256').update(key).digest().readUInt32BE(0);
  return lo + (h % (hi - lo));
}

/**
 * Numbers for `keys`: the previous number of a key that had one (and is in its range), else its
 * preferred number, probing upwards (wrapping within the range) past numbers already taken. Pure: the
 * same keys and previous give the same result whatever their order.
 */
export function allocateIdentities(
  keys: Iterable<string>,
  previous: ReadonlyMap<string, number> = new Map(),
): Map<string, number> {
  const wanted = [...new Set(keys)].sort();
  const out = new Map<string, number>();
  const taken = new Set<number>();
  for (const key of wanted) {
    const id = previous.get(key);
    const [lo, hi] = rangeOf(key);
    if (id !== undefined && id >= lo && id < hi && !taken.has(id)) {
      out.set(key, id);
      taken.add(id);
    }
  }
  for (const key of wanted) {
    if (out.has(key)) continue;
    const [lo, hi] = rangeOf(key);
    let id = preferredIdentity(key);
    // Bounded: the range has millions of numbers and there are at most as many keys as this loop runs.
    for (let i = 0; i < hi - lo && taken.has(id); i++) id = id + 1 >= hi ? lo : id + 1;
    if (taken.has(id)) throw new RangeError(`Cannot allocate an identity: all ${hi - lo} numbers are taken`);
    out.set(key, id);
    taken.add(id);
  }
  return out;
}
