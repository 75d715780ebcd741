/**
 * Services IR → the map writes that make the datapath match it: pure. Given what the maps hold now
 * (LbState, which lbReconcile.ts reads from the kernel once and then keeps), plan() returns only the
 * writes for what changed, in three phases that keep every connect() working:
 *
 *   1. before the flip: new backends, then every new slot set, complete (and its members);
 *   2. the flip: one service value per changed service, pointing at its new set; removed services go;
 *   3. after every BPF program that may have read an old value has returned: the old slot sets, their
 *      members, and the backends no live set names.
 *
 * A slot set is immutable: changing a service's backends writes a new set under a fresh id (a random
 * service of at most INLINE_SLOTS backends keeps its set inline in its value: no slot writes). An unchanged
 * service costs a comparison and no write; a changed one writes its new set, its value, and deletes its
 * old set. A service whose IR is invalid, or that does not fit the maps, keeps what it has (last good).
 */

import {
  type LbBackendIr,
  type LbIrError,
  type LbServiceIr,
  type ServicesIr,
  serviceKeyString,
  serviceSocket,
  usableBackends,
  validateServices,
} from '../model/serviceLb.js';
import { encodeAddress } from './codec.js';
import {
  type Backend,
  INLINE_SLOTS,
  type Member,
  type MemberKey,
  type Service,
  ServiceFlag,
  type ServiceKey,
  type Slot,
  type SlotKey,
} from './codecs/lb.js';
import { backendBytes, serviceTag } from './lbHash.js';
import { MAGLEV_DEFAULT_TABLE_SIZE, maglevTable } from './maglev.js';

/** One service as the maps hold it. */
export interface LbServiceEntry {
  readonly name: string;
  readonly key: ServiceKey;
  readonly value: Service;
  /**
   * The backend id of each slot of the live set (index = slot); [] when count is 0; undefined when the
   * maps hold an incomplete set (found on load), which the next plan replaces.
   */
  readonly slots: readonly number[] | undefined;
  /** Whether the live set has skein_members entries (services with affinity). */
  readonly members: boolean;
  /** What the maps hold of the live set, when it is not what slots and members say (found on load). */
  readonly held?: LbRetiredSet;
}

/** A slot set no service points at any more, deleted in phase 3. */
export interface LbRetiredSet {
  readonly id: number;
  /** Slot indexes present in the map. */
  readonly slots: readonly number[];
  /** Backend ids with a skein_members entry for this set. */
  readonly members: readonly number[];
}

export interface LbBackendEntry {
  readonly id: number;
  readonly address: string;
  readonly port: number;
}

/** What the maps hold, as far as the reconciler knows. */
export interface LbState {
  /** By serviceKeyString. */
  readonly services: ReadonlyMap<string, LbServiceEntry>;
  /** By backendKey (address and port). */
  readonly backends: ReadonlyMap<string, LbBackendEntry>;
  /** Backend ids in the map that the plan must delete (duplicates found on load). */
  readonly strayBackends: readonly number[];
  readonly retired: readonly LbRetiredSet[];
  readonly nextServiceId: number;
  readonly nextSlotSet: number;
  readonly nextBackendId: number;
}

export const emptyLbState: LbState = {
  services: new Map(),
  backends: new Map(),
  strayBackends: [],
  retired: [],
  nextServiceId: 1,
  nextSlotSet: 1,
  nextBackendId: 1,
};

/** The size limits of the maps (their max_entries). */
export interface LbCapacity {
  readonly services: number;
  readonly slots: number;
  readonly members: number;
  readonly backends: number;
}

export interface LbPlanOptions {
  /** Slots of every Maglev table (a prime). Changing it moves every Maglev flow once. */
  readonly maglevTableSize?: number;
  readonly capacity?: LbCapacity;
  /** Kept between plans: Maglev tables by service and backend list, so an unchanged one is not rebuilt. */
  readonly memo?: Map<string, { readonly signature: string; readonly slots: readonly number[] }>;
}

/** Codes of reconcile problems beyond the IR's own (SKEIN_LB_* from validateServices). */
export const LbReconcileErrorCode = {
  /** A service's new slot set, or a new service or backend, does not fit its map: it keeps what it had. */
  Capacity: 'SKEIN_LB_CAPACITY',
  /** A Maglev table cannot be built (more backends than slots): the service keeps what it had. */
  MaglevTable: 'SKEIN_LB_MAGLEV_TABLE',
  /** The kernel refused a map write: nothing after it was written; the next reconcile re-reads the maps. */
  MapWriteFailed: 'SKEIN_LB_MAP_WRITE_FAILED',
} as const;

export interface LbReconcileError {
  readonly code: string;
  /** The IR path (`services[3].port`), when the problem is in the IR. */
  readonly path?: string;
  readonly message: string;
}

export interface LbPlan {
  readonly backendWrites: readonly (readonly [number, Backend])[];
  readonly slotWrites: readonly (readonly [SlotKey, Slot])[];
  readonly memberWrites: readonly (readonly [MemberKey, Member])[];
  readonly serviceWrites: readonly (readonly [ServiceKey, Service])[];
  readonly serviceDeletes: readonly ServiceKey[];
  readonly slotDeletes: readonly SlotKey[];
  readonly memberDeletes: readonly MemberKey[];
  readonly backendDeletes: readonly number[];
  /** Names of the services whose entries change (written or removed), sorted. */
  readonly changed: readonly string[];
  readonly errors: readonly LbReconcileError[];
  /** The state once every write of the plan has been made. */
  readonly next: LbState;
}

/** A backend's identity in the datapath: its address and port. */
export function backendKey(address: string, port: number): string {
  return `${encodeAddress(address).toString('hex')}|${port}`;
}

const U32_MAX = 0xffff_ffff;

/** The next free id from `from` (1..2^32-1, wrapping), skipping `used`. */
function allocator(from: number, used: (id: number) => boolean): () => number {
  let next = from;
  return () => {
    for (let tries = 0; tries < U32_MAX; tries++) {
      const id = next;
      next = next >= U32_MAX ? 1 : next + 1;
      if (id !== 0 && !used(id)) return id;
    }
    throw new RangeError('Cannot allocate an id: all 2^32-1 are in use');
  };
}

function sameValue(a: Service, b: Service): boolean {
  return (
    a.slotSet === b.slotSet &&
    a.count === b.count &&
    a.tag === b.tag &&
    a.id === b.id &&
    a.affinityTimeoutSeconds === b.affinityTimeoutSeconds &&
    a.algorithm === b.algorithm &&
    a.flags === b.flags &&
    sameSlots(a.inlineSlots, b.inlineSlots)
  );
}

const isInline = (v: Service): boolean => (v.flags & ServiceFlag.inline) !== 0;

/** The inline slots of a value: slot i at i % count, so any index the program masks to holds a backend. */
function inlineSlotsOf(slots: readonly number[]): number[] {
  return Array.from({ length: INLINE_SLOTS }, (_, i) =>
    slots.length === 0 ? 0 : (slots[i % slots.length] ?? 0),
  );
}

function sameSlots(a: readonly number[] | undefined, b: readonly number[]): boolean {
  if (a === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Backends in the canonical order (address bytes, then port): Maglev's ties depend on it. */
function canonicalOrder(backends: readonly LbBackendIr[]): LbBackendIr[] {
  return backends
    .map((b) => ({ b, k: backendKey(b.address, b.port) }))
    .sort((x, y) => (x.k < y.k ? -1 : x.k > y.k ? 1 : 0))
    .map((x) => x.b);
}

export function plan(state: LbState, ir: ServicesIr, options: LbPlanOptions = {}): LbPlan {
  const tableSize = options.maglevTableSize ?? MAGLEV_DEFAULT_TABLE_SIZE;
  const capacity = options.capacity;
  const errors: LbReconcileError[] = validateServices(ir).map((e: LbIrError) => ({ ...e }));
  const invalid = new Set<number>();
  for (const e of errors) {
    const m = /^services\[(\d+)\]/.exec(e.path ?? '');
    if (m?.[1] !== undefined) invalid.add(Number(m[1]));
  }

  const services = new Map<string, LbServiceEntry>();
  const backends = new Map(state.backends);
  const backendIdsInUse = new Set<number>([...state.backends.values()].map((b) => b.id));
  for (const id of state.strayBackends) backendIdsInUse.add(id);
  const setIdsInUse = new Set<number>(state.retired.map((r) => r.id));
  const serviceIdsInUse = new Set<number>();
  for (const e of state.services.values()) {
    setIdsInUse.add(e.value.slotSet);
    serviceIdsInUse.add(e.value.id);
  }
  const newServiceId = allocator(state.nextServiceId, (id) => serviceIdsInUse.has(id));
  const newSlotSet = allocator(state.nextSlotSet, (id) => setIdsInUse.has(id));
  const newBackendId = allocator(state.nextBackendId, (id) => backendIdsInUse.has(id));

  const backendWrites: [number, Backend][] = [];
  const slotWrites: [SlotKey, Slot][] = [];
  const memberWrites: [MemberKey, Member][] = [];
  const serviceWrites: [ServiceKey, Service][] = [];
  const retiring: LbRetiredSet[] = [...state.retired];
  const changed = new Set<string>();

  // What the maps hold at the busiest moment of the plan (between phases 1 and 3): for capacity checks.
  let slotsHeld = state.retired.reduce((n, r) => n + r.slots.length, 0);
  let membersHeld = state.retired.reduce((n, r) => n + r.members.length, 0);
  for (const e of state.services.values()) {
    if (e.held !== undefined) {
      slotsHeld += e.held.slots.length;
      membersHeld += e.held.members.length;
    } else {
      if (!isInline(e.value)) slotsHeld += e.slots?.length ?? 0;
      if (e.members) membersHeld += new Set(e.slots).size;
    }
  }
  let servicesHeld = state.services.size;
  let backendsHeld = backendIdsInUse.size;

  const retire = (e: LbServiceEntry): void => {
    if (e.held !== undefined) {
      retiring.push(e.held);
      return;
    }
    if (e.value.slotSet === 0 || e.value.count === 0) return;
    const slots = isInline(e.value) ? [] : Array.from({ length: e.value.count }, (_, i) => i);
    retiring.push({ id: e.value.slotSet, slots, members: e.members ? [...new Set(e.slots ?? [])] : [] });
  };

  /** The backend id for an IR backend, allocating (and planning the write of) a new one if needed. */
  const backendIdFor = (b: LbBackendIr): number | undefined => {
    const k = backendKey(b.address, b.port);
    const known = backends.get(k);
    if (known !== undefined) return known.id;
    if (capacity !== undefined && backendsHeld + 1 > capacity.backends) return undefined;
    const id = newBackendId();
    backendIdsInUse.add(id);
    backendsHeld++;
    backends.set(k, { id, address: b.address, port: b.port });
    backendWrites.push([id, { address: b.address, port: b.port }]);
    return id;
  };

  const desiredSlots = (
    s: LbServiceIr,
    ids: readonly number[],
    ordered: readonly LbBackendIr[],
  ): number[] | LbReconcileError => {
    if (ids.length === 0 || s.algorithm !== 'maglev') return [...ids];
    const key = serviceKeyString(s);
    const signature = `${tableSize}:${ordered.map((b) => backendKey(b.address, b.port)).join(',')}`;
    const memo = options.memo?.get(key);
    let table: readonly number[];
    if (memo !== undefined && memo.signature === signature) {
      table = memo.slots;
    } else {
      try {
        table = maglevTable(
          ordered.map((b) => backendBytes(b.address, b.port)),
          tableSize,
        );
      } catch (err) {
        return {
          code: LbReconcileErrorCode.MaglevTable,
          message: `${s.name} ${serviceSocket(s)}: ${err instanceof Error ? err.message : String(err)}`,
        };
      }
      options.memo?.set(key, { signature, slots: table });
    }
    return table.map((i) => ids[i] as number);
  };

  ir.services.forEach((s, index) => {
    const key = serviceKeyString(s);
    const current = state.services.get(key);
    if (invalid.has(index) || services.has(key)) {
      // Last good: an invalid service keeps its entries (the errors say why); a duplicate is already handled.
      if (current !== undefined && !services.has(key)) services.set(key, current);
      return;
    }
    const keep = (error: LbReconcileError): void => {
      errors.push(error);
      if (current !== undefined) services.set(key, current);
    };
    const ordered = canonicalOrder(usableBackends(s));
    const ids: number[] = [];
    for (const b of ordered) {
      const id = backendIdFor(b);
      if (id === undefined) {
        keep({
          code: LbReconcileErrorCode.Capacity,
          message: `${s.name} ${serviceSocket(s)}: skein_backends is full (${capacity?.backends} backends)`,
        });
        return;
      }
      ids.push(id);
    }
    const slots = desiredSlots(s, ids, ordered);
    if (!Array.isArray(slots)) {
      keep(slots);
      return;
    }
    const affinity = s.sessionAffinity !== undefined;
    const wantMembers = affinity && slots.length > 0;
    // A small random set rides in the value itself: one map lookup fewer per connect().
    const inline = s.algorithm === 'random' && slots.length > 0 && slots.length <= INLINE_SLOTS;
    const serviceKey: ServiceKey = { address: s.address, port: s.port, protocol: s.protocol };
    const base = {
      id: current?.value.id ?? 0,
      tag: serviceTag(serviceKey),
      affinityTimeoutSeconds: affinity ? (s.sessionAffinity?.timeoutSeconds ?? 0) : 0,
      algorithm: s.algorithm,
      flags: (affinity ? ServiceFlag.affinity : 0) | (inline ? ServiceFlag.inline : 0),
      inlineSlots: inline ? inlineSlotsOf(slots) : inlineSlotsOf([]),
    };

    if (
      current !== undefined &&
      sameSlots(current.slots, slots) &&
      current.members === wantMembers &&
      isInline(current.value) === inline
    ) {
      const value: Service = { ...base, slotSet: current.value.slotSet, count: current.value.count };
      if (!sameValue(value, current.value)) {
        serviceWrites.push([serviceKey, value]);
        changed.add(s.name);
      }
      services.set(key, { ...current, name: s.name, value });
      return;
    }

    // A new slot set (or none, for a service without backends), then the flip to it.
    const memberCounts = new Map<number, number>();
    if (wantMembers) for (const id of slots) memberCounts.set(id, (memberCounts.get(id) ?? 0) + 1);
    if (capacity !== undefined) {
      if (current === undefined && servicesHeld + 1 > capacity.services) {
        keep({
          code: LbReconcileErrorCode.Capacity,
          message: `${s.name} ${serviceSocket(s)}: skein_services is full (${capacity.services} services)`,
        });
        return;
      }
      const newSlots = inline ? 0 : slots.length;
      if (slotsHeld + newSlots > capacity.slots || membersHeld + memberCounts.size > capacity.members) {
        keep({
          code: LbReconcileErrorCode.Capacity,
          message: `${s.name} ${serviceSocket(s)}: its ${slots.length} new slots do not fit skein_slots (${capacity.slots} entries, ${slotsHeld} in use)`,
        });
        return;
      }
    }
    let slotSet = 0;
    if (slots.length > 0) {
      slotSet = newSlotSet();
      setIdsInUse.add(slotSet);
      if (!inline) {
        slots.forEach((backendId, slot) => {
          slotWrites.push([{ slotSet, slot }, { backendId }]);
        });
        slotsHeld += slots.length;
      }
      for (const [backendId, n] of memberCounts) memberWrites.push([{ slotSet, backendId }, { slots: n }]);
      membersHeld += memberCounts.size;
    }
    let id = base.id;
    if (current === undefined) {
      id = newServiceId();
      serviceIdsInUse.add(id);
      servicesHeld++;
    } else {
      retire(current);
    }
    const value: Service = { ...base, id, slotSet, count: slots.length };
    serviceWrites.push([serviceKey, value]);
    services.set(key, { name: s.name, key: serviceKey, value, slots, members: wantMembers });
    changed.add(s.name);
  });

  // Services the IR no longer has.
  const serviceDeletes: ServiceKey[] = [];
  for (const [key, e] of state.services) {
    if (services.has(key)) continue;
    serviceDeletes.push(e.key);
    retire(e);
    changed.add(e.name);
  }

  // Phase 3: the retired sets, then the backends no live set names.
  const slotDeletes: SlotKey[] = [];
  const memberDeletes: MemberKey[] = [];
  for (const r of retiring) {
    for (const slot of r.slots) slotDeletes.push({ slotSet: r.id, slot });
    for (const backendId of r.members) memberDeletes.push({ slotSet: r.id, backendId });
  }
  const named = new Set<number>();
  for (const e of services.values()) for (const id of e.slots ?? []) named.add(id);
  const backendDeletes: number[] = [...state.strayBackends];
  for (const [k, b] of backends) {
    if (named.has(b.id)) continue;
    backendDeletes.push(b.id);
    backends.delete(k);
  }

  const maxOf = (ids: Iterable<number>, floor: number): number => {
    let m = floor - 1;
    for (const id of ids) if (id > m) m = id;
    return m >= U32_MAX ? 1 : m + 1;
  };
  const next: LbState = {
    services,
    backends,
    strayBackends: [],
    retired: [],
    nextServiceId: maxOf(
      [...services.values()].map((e) => e.value.id),
      state.nextServiceId,
    ),
    nextSlotSet: maxOf(setIdsInUse, state.nextSlotSet),
    nextBackendId: maxOf(backendIdsInUse, state.nextBackendId),
  };
  return {
    backendWrites,
    slotWrites,
    memberWrites,
    serviceWrites,
    serviceDeletes,
    slotDeletes,
    memberDeletes,
    backendDeletes,
    changed: [...changed].sort(),
    errors,
    next,
  };
}
