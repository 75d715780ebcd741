import type { ObjectStatus } from '../sources/objects.js';

/**
 * Kubernetes status conditions (metav1.Condition) and the reasons the Gateway API defines for them.
 * Reasons are part of the API: tools and conformance tests match on them, so only the spec's names are
 * used, except where noted.
 */
export interface Condition {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly observedGeneration: number;
  readonly lastTransitionTime: string;
  readonly reason: string;
  readonly message: string;
}

/** What every condition of one object shares: the generation it describes and the time of this build. */
export interface ConditionContext {
  readonly generation: number;
  readonly transitionTime: string;
}

export function condition(
  ctx: ConditionContext,
  type: string,
  status: boolean,
  reason: string,
  message: string,
): Condition {
  return {
    type,
    status: status ? 'True' : 'False',
    observedGeneration: ctx.generation,
    lastTransitionTime: ctx.transitionTime,
    reason,
    message,
  };
}

/** Conditions in a fixed order (by type), so that equal inputs give byte-identical status. */
export function sortConditions(conditions: readonly Condition[]): Condition[] {
  return [...conditions].sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
}

/** Objects read from files have no generation; the API server starts every object at 1. */
export function generationOf(object: { metadata?: { generation?: number } | undefined }): number {
  const g = object.metadata?.generation;
  return typeof g === 'number' && Number.isInteger(g) && g > 0 ? g : 1;
}

export const ConditionType = {
  Accepted: 'Accepted',
  Programmed: 'Programmed',
  ResolvedRefs: 'ResolvedRefs',
  Conflicted: 'Conflicted',
  PartiallyInvalid: 'PartiallyInvalid',
  /** GatewayClass: whether Skein implements the Gateway API version of the CRDs present. */
  SupportedVersion: 'SupportedVersion',
} as const;

export const GatewayClassReason = {
  Accepted: 'Accepted',
  InvalidParameters: 'InvalidParameters',
  SupportedVersion: 'SupportedVersion',
  UnsupportedVersion: 'UnsupportedVersion',
} as const;

export const GatewayReason = {
  Accepted: 'Accepted',
  ListenersNotValid: 'ListenersNotValid',
  Invalid: 'Invalid',
  InvalidParameters: 'InvalidParameters',
  UnsupportedAddress: 'UnsupportedAddress',
  Programmed: 'Programmed',
  AddressNotUsable: 'AddressNotUsable',
} as const;

export const ListenerReason = {
  Accepted: 'Accepted',
  UnsupportedProtocol: 'UnsupportedProtocol',
  /**
   * Not in the spec's list for Accepted (which says "controllers may raise other reasons"): a listener
   * that loses a hostname conflict is not accepted, and this names why in the same words as Conflicted.
   */
  HostnameConflict: 'HostnameConflict',
  ProtocolConflict: 'ProtocolConflict',
  PortUnavailable: 'PortUnavailable',
  UnsupportedValue: 'UnsupportedValue',
  NoConflicts: 'NoConflicts',
  ResolvedRefs: 'ResolvedRefs',
  InvalidRouteKinds: 'InvalidRouteKinds',
  InvalidCertificateRef: 'InvalidCertificateRef',
  RefNotPermitted: 'RefNotPermitted',
  Programmed: 'Programmed',
  Invalid: 'Invalid',
} as const;

export const RouteReason = {
  Accepted: 'Accepted',
  NotAllowedByListeners: 'NotAllowedByListeners',
  NoMatchingListenerHostname: 'NoMatchingListenerHostname',
  NoMatchingParent: 'NoMatchingParent',
  UnsupportedValue: 'UnsupportedValue',
  /**
   * Not in the spec's list for Accepted (which lets controllers raise others): an HTTPRoute and a
   * GRPCRoute share a hostname on a listener, which the GRPCRoute spec forbids without naming a reason;
   * the newer one is not accepted there, named like the listeners' HostnameConflict.
   */
  HostnameConflict: 'HostnameConflict',
  ResolvedRefs: 'ResolvedRefs',
  RefNotPermitted: 'RefNotPermitted',
  InvalidKind: 'InvalidKind',
  BackendNotFound: 'BackendNotFound',
  UnsupportedProtocol: 'UnsupportedProtocol',
} as const;

/**
 * Keeps the previous lastTransitionTime of every condition that did not change (same type, status,
 * reason, message and observedGeneration): Kubernetes defines lastTransitionTime as the time the
 * condition last changed, not the time it was last computed. A recompute with no input change thus yields
 * byte-identical status, and a status writer has nothing to write.
 *
 * Conditions are found at `status.conditions`, `status.listeners[].conditions` (matched by listener
 * name), `status.parents[].conditions` (matched by parentRef and controllerName) and
 * `status.ancestors[].conditions` (policies: matched by ancestorRef and controllerName). Pure: neither input
 * is modified.
 */
export function carryTransitionTimes(
  previous: readonly ObjectStatus[],
  next: readonly ObjectStatus[],
): ObjectStatus[] {
  const before = new Map(previous.map((s) => [statusKey(s), s]));
  return next.map((s) => carryStatus(before.get(statusKey(s)), s));
}

/** carryTransitionTimes for one object: `old` is its previous status, if it had one. */
export function carryStatus(old: ObjectStatus | undefined, next: ObjectStatus): ObjectStatus {
  if (old === undefined) return next;
  const status = carryObject(old.status, next.status);
  return status === next.status ? next : { ...next, status };
}

/** Identifies the object a status is of. */
export function statusKey(s: ObjectStatus): string {
  return `${s.apiVersion}|${s.kind}|${s.namespace}|${s.name}`;
}

/** Walks the same shape in old and new; returns `next` itself when nothing had to change. */
function carryObject(
  old: unknown,
  next: Readonly<Record<string, unknown>>,
): Readonly<Record<string, unknown>> {
  if (!isRecord(old)) return next;
  let out: Record<string, unknown> | undefined;
  const set = (key: string, value: unknown): void => {
    out ??= { ...next };
    out[key] = value;
  };
  for (const [key, value] of Object.entries(next)) {
    if (!Array.isArray(value)) continue;
    const oldValue = old[key];
    if (!Array.isArray(oldValue)) continue;
    if (key === 'conditions') {
      const carried = carryConditions(oldValue, value);
      if (carried !== value) set(key, carried);
    } else if (key === 'listeners' || key === 'parents' || key === 'ancestors') {
      const oldByKey = new Map<string, unknown>();
      for (const o of oldValue) if (isRecord(o)) oldByKey.set(entryKey(key, o), o);
      let changed = false;
      const items = value.map((item: unknown) => {
        if (!isRecord(item)) return item;
        const carried = carryObject(oldByKey.get(entryKey(key, item)), item);
        if (carried !== item) changed = true;
        return carried;
      });
      if (changed) set(key, items);
    }
  }
  return out ?? next;
}

function entryKey(list: string, item: Readonly<Record<string, unknown>>): string {
  if (list === 'listeners') return String(item['name']);
  const ref = list === 'ancestors' ? item['ancestorRef'] : item['parentRef'];
  return `${JSON.stringify(ref)}|${String(item['controllerName'])}`;
}

function carryConditions(old: readonly unknown[], next: readonly unknown[]): readonly unknown[] {
  const byType = new Map<string, Readonly<Record<string, unknown>>>();
  for (const o of old) if (isRecord(o) && typeof o['type'] === 'string') byType.set(o['type'], o);
  let changed = false;
  const out = next.map((c) => {
    if (!isRecord(c)) return c;
    const o = byType.get(String(c['type']));
    if (
      o === undefined ||
      o['status'] !== c['status'] ||
      o['reason'] !== c['reason'] ||
      o['message'] !== c['message'] ||
      o['observedGeneration'] !== c['observedGeneration'] ||
      o['lastTransitionTime'] === c['lastTransitionTime']
    ) {
      return c;
    }
    changed = true;
    return { ...c, lastTransitionTime: o['lastTransitionTime'] };
  });
  return changed ? out : next;
}

function isRecord(v: unknown): v is Readonly<Record<string, unknown>> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
