import type {
  Ir,
  IrBackend,
  IrCertificateSet,
  IrL4Route,
  IrListener,
  IrSecret,
  IrVirtualHost,
} from './ir.js';

/**
 * One IR from several: the Gateway API translator's and the Ingress translator's meet here, so that
 * both reach Envoy through one pipeline. Pure and deterministic; the inputs are never modified.
 *
 * The rules, in the order the IRs are given (the control plane gives the Gateway API's first, so on
 * every conflict the Gateway API wins):
 *
 * - Listeners merge by name, which is their socket (`listener/<address>/<port>`). Listeners of one
 *   protocol merge their virtual hosts, certificate sets and L4 routes; a listener of another protocol
 *   on a socket an earlier IR holds is dropped (a socket serves one protocol).
 * - Virtual hosts merge by name (`<listener>/<hostname>`): one hostname on one socket belongs to the
 *   first IR that serves it. A later virtual host that shares a hostname (Envoy compares them
 *   case-insensitively) loses that hostname, and is dropped when none is left.
 * - Certificate sets: a server name belongs to the first IR whose set lists it; the set without
 *   hostnames (the fallback certificate) too. A later set left without its hostnames is dropped, never
 *   turned into a fallback.
 * - Backends and secrets merge by name. Both translators build a Service port's backend the same way,
 *   so the same name means the same content; if not, the first is kept.
 *
 * Every drop is a conflict. Lists stay sorted by name. Objects that come through unchanged are the
 * input's own (a listener only one IR has is that IR's listener object), so the Envoy translator's
 * identity memo keeps working; createIrMerger() also reuses the merged objects of the last call.
 */

export const MERGE_CONFLICT = 'SKEIN_MERGE_CONFLICT';

export interface IrConflict {
  readonly code: typeof MERGE_CONFLICT;
  /** What lost: a listener, a virtual host's hostname, a certificate's server name, a backend, a secret. */
  readonly kind: 'listener' | 'virtualHost' | 'certificate' | 'backend' | 'secret';
  /** The name of what lost. */
  readonly name: string;
  /** The socket (listener name) where a listener, a hostname or a certificate's server name lost. */
  readonly listener?: string;
  /**
   * The hostname that lost (`virtualHost`), or the certificate's server name (`certificate`; absent for
   * the certificate without hostnames, which serves every other name).
   */
  readonly hostname?: string;
  readonly message: string;
}

export interface MergeResult {
  readonly ir: Ir;
  readonly conflicts: readonly IrConflict[];
}

export function mergeIr(...irs: readonly Ir[]): MergeResult {
  return merge(irs, undefined);
}

/**
 * mergeIr with a memory of the last call: a listener merged from the very same input listeners as
 * then is the very same merged listener, and the same inputs give the same result object.
 */
export function createIrMerger(): (...irs: readonly Ir[]) => MergeResult {
  let last: { inputs: readonly Ir[]; result: MergeResult; memo: ListenerMemo } | undefined;
  return (...irs) => {
    if (last !== undefined && sameItems(last.inputs, irs)) return last.result;
    const memo: ListenerMemo = new Map();
    const result = merge(irs, { previous: last?.memo, next: memo });
    last = { inputs: irs, result, memo };
    return result;
  };
}

type ListenerMemo = Map<string, { readonly inputs: readonly IrListener[]; readonly merged: MergedListener }>;

interface MergedListener {
  readonly listener: IrListener;
  readonly conflicts: readonly IrConflict[];
}

function merge(
  irs: readonly Ir[],
  memo: { previous: ListenerMemo | undefined; next: ListenerMemo } | undefined,
): MergeResult {
  const nonEmpty = irs.filter((ir) => ir.listeners.length + ir.backends.length + ir.secrets.length > 0);
  if (nonEmpty.length <= 1)
    return { ir: nonEmpty[0] ?? irs[0] ?? { listeners: [], backends: [], secrets: [] }, conflicts: [] };

  const conflicts: IrConflict[] = [];
  const byName = new Map<string, IrListener[]>();
  for (const ir of nonEmpty) {
    for (const l of ir.listeners) {
      const list = byName.get(l.name);
      if (list === undefined) byName.set(l.name, [l]);
      else list.push(l);
    }
  }
  const listeners: IrListener[] = [];
  for (const [name, inputs] of byName) {
    if (inputs.length === 1) {
      listeners.push(inputs[0] as IrListener);
      continue;
    }
    const old = memo?.previous?.get(name);
    const merged = old !== undefined && sameItems(old.inputs, inputs) ? old.merged : mergeListeners(inputs);
    memo?.next.set(name, { inputs, merged });
    listeners.push(merged.listener);
    conflicts.push(...merged.conflicts);
  }
  return {
    ir: {
      listeners: listeners.sort(byNameOrder),
      backends: mergeNamed(
        nonEmpty.map((ir) => ir.backends),
        'backend',
        conflicts,
      ),
      secrets: mergeNamed(
        nonEmpty.map((ir) => ir.secrets),
        'secret',
        conflicts,
      ),
    },
    conflicts,
  };
}

/** Listeners of one socket, first one's protocol. */
function mergeListeners(inputs: readonly IrListener[]): MergedListener {
  const first = inputs[0] as IrListener;
  const conflicts: IrConflict[] = [];
  const same: IrListener[] = [first];
  for (const l of inputs.slice(1)) {
    if (l.protocol === first.protocol && (l.tls?.mode ?? '') === (first.tls?.mode ?? '')) {
      same.push(l);
      continue;
    }
    conflicts.push({
      code: MERGE_CONFLICT,
      kind: 'listener',
      name: l.name,
      listener: l.name,
      message: `${describe(l)} is not served: the socket already serves ${describe(first)} (the Gateway API's listeners come first)`,
    });
  }
  if (same.length === 1) return { listener: first, conflicts };

  // Virtual hosts: a hostname belongs to the first listener that serves it.
  const taken = new Set<string>();
  const virtualHosts: IrVirtualHost[] = [];
  for (const l of same) {
    for (const vh of l.virtualHosts) {
      const kept = vh.hostnames.filter((h) => !taken.has(h.toLowerCase()));
      for (const h of vh.hostnames) {
        if (taken.has(h.toLowerCase())) {
          conflicts.push({
            code: MERGE_CONFLICT,
            kind: 'virtualHost',
            name: vh.name,
            listener: first.name,
            hostname: h,
            message: `hostname ${h} on ${first.address}:${first.port} is served by the listener translated first (the Gateway API's); the routes of ${vh.name} for it are not served`,
          });
        }
      }
      for (const h of kept) taken.add(h.toLowerCase());
      if (kept.length === vh.hostnames.length) virtualHosts.push(vh);
      else if (kept.length > 0) virtualHosts.push({ ...vh, hostnames: kept });
    }
  }

  // Certificate sets: a server name (and the fallback) belongs to the first set that has it.
  let tls = first.tls;
  if (first.tls?.mode === 'Terminate') {
    const names = new Set<string>();
    let fallback = false;
    const certificates: IrCertificateSet[] = [];
    for (const l of same) {
      for (const set of l.tls?.certificates ?? []) {
        if (set.hostnames.length === 0) {
          if (!fallback) certificates.push(set);
          else conflictCert(conflicts, first, undefined, set);
          fallback = true;
          continue;
        }
        const kept = set.hostnames.filter((h) => !names.has(h.toLowerCase()));
        for (const h of set.hostnames) if (names.has(h.toLowerCase())) conflictCert(conflicts, first, h, set);
        for (const h of kept) names.add(h.toLowerCase());
        if (kept.length === set.hostnames.length) certificates.push(set);
        else if (kept.length > 0) certificates.push({ ...set, hostnames: kept });
      }
    }
    certificates.sort((a, b) => compareText(a.hostnames[0] ?? '', b.hostnames[0] ?? ''));
    tls = { mode: 'Terminate', certificates };
  }

  // L4 routes (Gateway API only today): by name, first wins.
  let l4Routes: IrL4Route[] | undefined;
  if (same.some((l) => l.l4Routes !== undefined)) {
    const routes = new Map<string, IrL4Route>();
    for (const l of same) for (const r of l.l4Routes ?? []) if (!routes.has(r.name)) routes.set(r.name, r);
    l4Routes = [...routes.values()].sort(byNameOrder);
  }

  return {
    listener: {
      name: first.name,
      address: first.address,
      port: first.port,
      protocol: first.protocol,
      virtualHosts: virtualHosts.sort(byNameOrder),
      ...(tls === undefined ? {} : { tls }),
      ...(l4Routes === undefined ? {} : { l4Routes }),
    },
    conflicts,
  };
}

/** A certificate set lost a server name (`undefined`: the set without hostnames lost the fallback). */
function conflictCert(
  conflicts: IrConflict[],
  l: IrListener,
  hostname: string | undefined,
  set: IrCertificateSet,
): void {
  conflicts.push({
    code: MERGE_CONFLICT,
    kind: 'certificate',
    name: set.secretNames.join(','),
    listener: l.name,
    ...(hostname === undefined ? {} : { hostname }),
    message: `on ${l.address}:${l.port} the certificate for ${hostname ?? '(any name no certificate lists)'} is the one translated first (the Gateway API's), not ${set.secretNames.join(', ')}`,
  });
}

/** Backends or secrets by name; the first of a name is kept, and a different later one is a conflict. */
function mergeNamed<T extends IrBackend | IrSecret>(
  lists: readonly (readonly T[])[],
  kind: 'backend' | 'secret',
  conflicts: IrConflict[],
): T[] {
  const out = new Map<string, T>();
  for (const list of lists) {
    for (const item of list) {
      const seen = out.get(item.name);
      if (seen === undefined) out.set(item.name, item);
      else if (seen !== item && JSON.stringify(seen) !== JSON.stringify(item)) {
        conflicts.push({
          code: MERGE_CONFLICT,
          kind,
          name: item.name,
          message: `two translators made different ${kind}s named ${item.name}; the first (the Gateway API's) is used`,
        });
      }
    }
  }
  return [...out.values()].sort(byNameOrder);
}

function describe(l: IrListener): string {
  return `${l.protocol}${l.tls === undefined ? '' : ` (${l.tls.mode})`} on ${l.address}:${l.port}`;
}

function byNameOrder(a: { name: string }, b: { name: string }): number {
  return compareText(a.name, b.name);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
