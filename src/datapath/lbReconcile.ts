/**
 * Keeps the load-balancing maps equal to the services IR, writing only what changed. The plan is pure
 * (./lbPlan.ts); this module reads the maps once (so an agent restart on pinned maps rewrites nothing),
 * makes the plan's writes in its three phases, and waits for an RCU grace period between the flip and
 * the deletion of what the flip replaced.
 */

import { type ServicesIr, serviceKeyString, serviceSocket } from '../model/serviceLb.js';
import { waitForBpfReaders } from './bpfObject.js';
import { ServiceFlag } from './codecs/lb.js';
import { DatapathError } from './errors.js';
import type { LbDatapath } from './lb.js';
import {
  backendKey,
  type LbBackendEntry,
  type LbCapacity,
  type LbPlan,
  type LbReconcileError,
  LbReconcileErrorCode,
  type LbRetiredSet,
  type LbServiceEntry,
  type LbState,
  plan,
} from './lbPlan.js';
import type { TypedMap } from './typedMap.js';

export interface LbReconcilerOptions {
  /** Slots of every Maglev table (a prime); see maglev.ts. */
  readonly maglevTableSize?: number;
  /** Waits for BPF readers to be gone (default: an RCU grace period, waitForBpfReaders). */
  readonly waitForReaders?: () => Promise<void>;
}

/** Entries written (inserted or replaced) and deleted, per map. */
export interface LbWriteCounts {
  readonly services: number;
  readonly slots: number;
  readonly members: number;
  readonly backends: number;
}

export interface LbReconcileReport {
  readonly written: LbWriteCounts;
  readonly deleted: LbWriteCounts;
  /** Names of the services whose entries changed, sorted. */
  readonly changed: readonly string[];
  /** IR problems (SKEIN_LB_*) and what did not fit; those services keep what they had. */
  readonly errors: readonly LbReconcileError[];
  /** Whether the reconcile waited for a grace period (only when it deleted something a flip replaced). */
  readonly waited: boolean;
  /**
   * process.hrtime.bigint() (CLOCK_MONOTONIC, the clock BPF programs read) right after the flips: every
   * connect() that starts later sees the new backends. Undefined if the reconcile failed before.
   */
  readonly flippedAt: bigint | undefined;
}

/** Errnos of a delete whose key is not there (deleteMany stops at the first). */
const ENOENT = 2;

export class LbReconciler {
  private state: LbState | undefined;
  private readonly memo = new Map<
    string,
    { readonly signature: string; readonly slots: readonly number[] }
  >();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly capacity: LbCapacity;

  constructor(
    private readonly lb: LbDatapath,
    private readonly options: LbReconcilerOptions = {},
  ) {
    this.capacity = {
      services: lb.services.info.maxEntries,
      slots: lb.slots.info.maxEntries,
      members: lb.members.info.maxEntries,
      backends: lb.backends.info.maxEntries,
    };
  }

  /**
   * Makes the maps match `ir`. Calls run one after another. A map write the kernel refuses stops the
   * reconcile (the report's errors say which); what was written stays consistent (a half-made slot set is
   * never pointed at), and the next call re-reads the maps.
   */
  reconcile(ir: ServicesIr): Promise<LbReconcileReport> {
    const run = this.queue.then(() => this.run(ir));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** What the reconciler believes the maps hold (read from them on first use). */
  current(): LbState {
    this.state ??= readLbState(this.lb);
    return this.state;
  }

  private async run(ir: ServicesIr): Promise<LbReconcileReport> {
    const p = plan(this.current(), ir, {
      capacity: this.capacity,
      memo: this.memo,
      ...(this.options.maglevTableSize === undefined
        ? {}
        : { maglevTableSize: this.options.maglevTableSize }),
    });
    const written = { services: 0, slots: 0, members: 0, backends: 0 };
    const deleted = { services: 0, slots: 0, members: 0, backends: 0 };
    const errors = [...p.errors];
    let waited = false;
    let flippedAt: bigint | undefined;
    try {
      // Phase 1: everything a new service value will point at.
      written.backends += setAll(this.lb.backends, p.backendWrites);
      written.slots += setAll(this.lb.slots, p.slotWrites);
      written.members += setAll(this.lb.members, p.memberWrites);
      // Phase 2: the flips (each value is replaced whole) and the removals.
      written.services += setAll(this.lb.services, p.serviceWrites);
      deleted.services += deleteAll(this.lb.services, p.serviceDeletes);
      flippedAt = process.hrtime.bigint();
      // Phase 3: what only the replaced values named, once no program can still be reading them.
      // (A backend is deleted only when a set that named it is, so this waits whenever it must.)
      if (hasPhase3(p)) {
        await (this.options.waitForReaders ?? waitForBpfReaders)();
        waited = true;
        deleted.slots += deleteAll(this.lb.slots, p.slotDeletes);
        deleted.members += deleteAll(this.lb.members, p.memberDeletes);
        deleted.backends += deleteAll(this.lb.backends, p.backendDeletes);
      }
      this.state = p.next;
    } catch (err) {
      // Which writes landed is no longer known here: read the maps again next time.
      this.state = undefined;
      this.memo.clear();
      errors.push({
        code: LbReconcileErrorCode.MapWriteFailed,
        message: err instanceof Error ? err.message : String(err),
      });
    }
    return { written, deleted, changed: p.changed, errors, waited, flippedAt };
  }
}

function hasPhase3(p: LbPlan): boolean {
  return p.slotDeletes.length > 0 || p.memberDeletes.length > 0 || p.backendDeletes.length > 0;
}

/** Batches of at most this many entries per syscall: bounded buffers, and the kernel yields between them. */
const BATCH = 16_384;

function setAll<K, V>(map: TypedMap<K, V>, entries: readonly (readonly [K, V])[]): number {
  let n = 0;
  for (let i = 0; i < entries.length; i += BATCH) n += map.setMany(entries.slice(i, i + BATCH));
  return n;
}

/** Deletes every key; keys already gone are skipped (the count is of those actually deleted). */
function deleteAll<K>(map: TypedMap<K, unknown>, keys: readonly K[]): number {
  let n = 0;
  for (let i = 0; i < keys.length; i += BATCH) {
    const chunk = keys.slice(i, i + BATCH);
    try {
      n += map.deleteMany(chunk);
    } catch (err) {
      if (!(err instanceof DatapathError) || err.errno !== ENOENT) throw err;
      // Some key was already gone (deleteMany stops there): finish one by one.
      for (const k of chunk) if (map.delete(k)) n++;
    }
  }
  return n;
}

/**
 * Reads what the maps hold into an LbState: services with their live slot sets, backends by address,
 * and as retired every slot set no service points at (left by a crash between a flip and its cleanup).
 * A live set with a missing slot is marked incomplete, so the next plan replaces it.
 */
export function readLbState(lb: LbDatapath): LbState {
  const sets = new Map<number, Map<number, number>>();
  for (const [k, v] of lb.slots.entries()) {
    const set = sets.get(k.slotSet) ?? new Map<number, number>();
    set.set(k.slot, v.backendId);
    sets.set(k.slotSet, set);
  }
  const members = new Map<number, number[]>();
  for (const [k] of lb.members.entries()) {
    const list = members.get(k.slotSet) ?? [];
    list.push(k.backendId);
    members.set(k.slotSet, list);
  }
  const backends = new Map<string, LbBackendEntry>();
  const stray: number[] = [];
  let maxBackend = 0;
  for (const [id, b] of lb.backends.entries().sort((x, y) => x[0] - y[0])) {
    maxBackend = Math.max(maxBackend, id);
    const k = backendKey(b.address, b.port);
    if (backends.has(k)) stray.push(id);
    else backends.set(k, { id, address: b.address, port: b.port });
  }
  const services = new Map<string, LbServiceEntry>();
  // Sets whose slots (in skein_slots) and whose members a live value names; anything else is retired.
  const liveSlots = new Set<number>();
  const liveMembers = new Set<number>();
  let maxService = 0;
  let maxSet = 0;
  for (const [key, value] of lb.services.entries()) {
    maxService = Math.max(maxService, value.id);
    maxSet = Math.max(maxSet, value.slotSet);
    liveMembers.add(value.slotSet);
    const inline = (value.flags & ServiceFlag.inline) !== 0;
    const setMembers = members.get(value.slotSet) ?? [];
    let entry: LbServiceEntry;
    if (inline) {
      entry = {
        name: serviceSocket(key),
        key,
        value,
        slots: value.inlineSlots.slice(0, value.count),
        members: setMembers.length > 0,
      };
    } else {
      liveSlots.add(value.slotSet);
      const set = sets.get(value.slotSet) ?? new Map<number, number>();
      const slots: number[] = [];
      for (let i = 0; i < value.count; i++) {
        const id = set.get(i);
        if (id === undefined) break;
        slots.push(id);
      }
      const complete = slots.length === value.count && set.size === value.count;
      entry = {
        name: serviceSocket(key),
        key,
        value,
        slots: complete ? slots : undefined,
        members: setMembers.length > 0,
        ...(complete
          ? {}
          : {
              held: { id: value.slotSet, slots: [...set.keys()], members: setMembers } satisfies LbRetiredSet,
            }),
      };
    }
    services.set(serviceKeyString(key), entry);
  }
  const retired: LbRetiredSet[] = [];
  for (const id of new Set([...sets.keys(), ...members.keys()])) {
    maxSet = Math.max(maxSet, id);
    const slots = liveSlots.has(id) ? [] : [...(sets.get(id)?.keys() ?? [])];
    const orphanMembers = liveMembers.has(id) ? [] : (members.get(id) ?? []);
    if (slots.length > 0 || orphanMembers.length > 0) retired.push({ id, slots, members: orphanMembers });
  }
  return {
    services,
    backends,
    strayBackends: stray,
    retired,
    nextServiceId: maxService + 1,
    nextSlotSet: maxSet + 1,
    nextBackendId: maxBackend + 1,
  };
}
