/**
 * The policy family (bpf/policy.bpf.c), loaded, attached and kept in step with the policy IR.
 *
 * - load() opens the object with its maps pinned by name under the pin root: after an agent restart it
 *   finds them with their entries (connection tracking included), and reads the entries back into
 *   in-memory mirrors, so that reconcile() can diff without reading the kernel again.
 * - reconcile(ir, ifindexes) writes only what changed (src/datapath/mapDiff.ts), in an order that never
 *   enforces a direction before its rules are there, then attaches the two programs to each endpoint's
 *   interface with tcx, pinning each link: an existing pinned link is switched to this process's program
 *   atomically (BPF_LINK_UPDATE), so a restart never leaves an interface without a program. Without tcx
 *   (Linux < 6.6) they are legacy tc filters of our handle and priority, replaced in place.
 * - cleanupPolicy() detaches and unpins everything the family made.
 */

import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import type { PolicyIr } from '../model/policy.js';
import { validatePolicy } from '../model/validatePolicy.js';
import { bpfObjectPath } from './addon.js';
import {
  type BpfLink,
  BpfObject,
  type BpfProgram,
  detachTc,
  ensurePinDir,
  openPinnedLink,
  openPinnedMap,
  queryTc,
  type RingBuffer,
  unpin,
} from './bpfObject.js';
import type { Codec } from './codec.js';
import { type FlowEvent, FlowEventCodec, FlowRingBuffer, Reason } from './codecs/flow.js';
import {
  type CtEntry,
  type CtKey,
  type Endpoint,
  type IpCacheEntry,
  type IpCacheKey,
  type PolicyCounter,
  type PolicyEntry,
  type PolicyKey,
  PolicyMaps,
  PolicyPrograms,
  PolicyRodata,
} from './codecs/policy.js';
import { DatapathError, DatapathErrorCode } from './errors.js';
import { diffMaps, type EncodedEntry, encodeEntries } from './mapDiff.js';
import type { PerCpuMap } from './perCpuMap.js';
import { type PolicyPlan, planPolicy } from './policyPlan.js';
import type { TypedMap } from './typedMap.js';

export type FlowEventLevel = 'none' | 'drops' | 'flows' | 'packets';
const FLOW_EVENT_LEVEL: Readonly<Record<FlowEventLevel, number>> = {
  none: 0,
  drops: 1,
  flows: 2,
  packets: 3,
};

export interface PolicyDatapathOptions {
  /** Where the maps and links are pinned and found again. Default /sys/fs/bpf/skein. */
  readonly pinRoot?: string;
  /** The object file; default dist/bpf/policy.bpf.o. */
  readonly objectPath?: string;
  /** The network namespace (a path) of the pod interfaces; default this process's. */
  readonly netns?: string;
  /** Which flow events to emit. Default 'flows' (drops and the first packet of each flow). */
  readonly flowEvents?: FlowEventLevel;
  /** Connection tracking timeouts in seconds. */
  readonly ctTimeouts?: { readonly tcp?: number; readonly other?: number; readonly closing?: number };
  /**
   * tcx links (Linux 6.6+, pinned, chained beside other programs), legacy tc filters, or 'auto' (default):
   * tcx, and legacy tc when the kernel refuses tcx.
   */
  readonly attachMode?: 'auto' | 'tcx' | 'tc';
  /** skb->mark bits for the proxy: mask, set on redirected packets, set by the proxy on its upstreams. */
  readonly marks?: { readonly mask?: number; readonly toProxy?: number; readonly fromProxy?: number };
}

/** The default marks (rodata defaults of bpf/policy.bpf.c). */
export const DEFAULT_MARKS = { mask: 0x0000_f000, toProxy: 0x0000_a000, fromProxy: 0x0000_b000 } as const;

/** The legacy tc filter the family owns on each interface (a handle and priority unlikely to be a CNI's). */
export const POLICY_TC_FILTER = { handle: 0x5e1, priority: 1000 } as const;

/** Errnos of a kernel without tcx: EINVAL (unknown attach type), EOPNOTSUPP, ENOTSUPP. */
const NO_TCX = new Set([22, 95, 524]);

/** The directory (under the pin root) where the family pins its links, one per interface and program. */
export const POLICY_LINK_DIR = 'skein_policy_links';

export interface MapCounts {
  endpoints: number;
  ipcache: number;
  cidrs: number;
  policy: number;
}

export interface ReconcileResult {
  /** Entries written (new or changed), per map. */
  readonly written: MapCounts;
  readonly deleted: MapCounts;
  /** Links attached now, switched to this process's programs, and detached. */
  readonly attached: number;
  readonly updated: number;
  readonly detached: number;
  /** Endpoints whose interface does not exist (yet): not enforced until it does. */
  readonly missing: readonly string[];
}

export class PolicyReconcileError extends Error {
  readonly code = 'SKEIN_POLICY_IR_REJECTED';
  constructor(readonly errors: ReturnType<typeof validatePolicy>) {
    super(
      `SKEIN_POLICY_IR_REJECTED: the policy IR does not validate, the maps keep the last good one: ${errors
        .slice(0, 5)
        .map((e) => `${e.code} ${e.path}: ${e.message}`)
        .join('; ')}`,
    );
    this.name = 'PolicyReconcileError';
  }
}

type Mirror<K, V> = Map<string, EncodedEntry<K, V>>;

export class PolicyDatapath {
  readonly endpoints: TypedMap<number, Endpoint>;
  readonly ipcache: TypedMap<IpCacheKey, IpCacheEntry>;
  readonly cidrs: TypedMap<IpCacheKey, number>;
  readonly policy: TypedMap<PolicyKey, PolicyEntry>;
  readonly ct: TypedMap<CtKey, CtEntry>;
  readonly stats: PerCpuMap<number, PolicyCounter>;
  readonly fromEndpoint: BpfProgram;
  readonly toEndpoint: BpfProgram;
  private readonly linkDir: string;
  private mode: 'tcx' | 'tc' | undefined;
  private readonly mirrors: {
    endpoints: Mirror<number, Endpoint>;
    ipcache: Mirror<IpCacheKey, IpCacheEntry>;
    cidrs: Mirror<IpCacheKey, number>;
    policy: Mirror<PolicyKey, PolicyEntry>;
  };

  private constructor(
    private readonly obj: BpfObject,
    readonly options: PolicyDatapathOptions,
  ) {
    const opened: { close(): void }[] = [];
    try {
      const open = <K, V>(m: { name: string; key: Codec<K>; value: Codec<V> }): TypedMap<K, V> => {
        const map = obj.map(m.name, m.key, m.value);
        opened.push(map);
        return map;
      };
      this.endpoints = open(PolicyMaps.endpoints);
      this.ipcache = open(PolicyMaps.ipcache);
      this.cidrs = open(PolicyMaps.cidrs);
      this.policy = open(PolicyMaps.policy);
      this.ct = open(PolicyMaps.ct);
      this.stats = obj.perCpuMap(PolicyMaps.stats.name, PolicyMaps.stats.key, PolicyMaps.stats.value);
      opened.push(this.stats);
      this.fromEndpoint = obj.program(PolicyPrograms.fromEndpoint.name);
      opened.push(this.fromEndpoint);
      this.toEndpoint = obj.program(PolicyPrograms.toEndpoint.name);
      opened.push(this.toEndpoint);
      // What the maps hold now (after a restart: what the last agent wrote) is where diffs start.
      this.mirrors = {
        endpoints: mirror(this.endpoints),
        ipcache: mirror(this.ipcache),
        cidrs: mirror(this.cidrs),
        policy: mirror(this.policy),
      };
    } catch (err) {
      for (const m of opened) m.close();
      throw err;
    }
    this.linkDir = path.join(obj.pinRoot, POLICY_LINK_DIR);
    if (options.attachMode === 'tc' || options.attachMode === 'tcx') this.mode = options.attachMode;
  }

  /** Opens, configures and loads the family; pinned maps under the pin root are reused, entries and all. */
  static load(options: PolicyDatapathOptions = {}): PolicyDatapath {
    const obj = BpfObject.open(
      options.objectPath ?? bpfObjectPath('policy'),
      options.pinRoot === undefined ? {} : { pinRoot: options.pinRoot },
    );
    try {
      const u32 = (n: number): Buffer => {
        const b = Buffer.alloc(4);
        b.writeUInt32LE(n);
        return b;
      };
      const marks = { ...DEFAULT_MARKS, ...options.marks };
      obj.setRodata(PolicyRodata.flowEvents.name, Buffer.of(FLOW_EVENT_LEVEL[options.flowEvents ?? 'flows']));
      if (options.ctTimeouts?.tcp !== undefined)
        obj.setRodata(PolicyRodata.ctTcpTimeoutS.name, u32(options.ctTimeouts.tcp));
      if (options.ctTimeouts?.other !== undefined)
        obj.setRodata(PolicyRodata.ctOtherTimeoutS.name, u32(options.ctTimeouts.other));
      if (options.ctTimeouts?.closing !== undefined)
        obj.setRodata(PolicyRodata.ctClosingTimeoutS.name, u32(options.ctTimeouts.closing));
      obj.setRodata(PolicyRodata.markMask.name, u32(marks.mask));
      obj.setRodata(PolicyRodata.markToProxy.name, u32(marks.toProxy));
      obj.setRodata(PolicyRodata.markFromProxy.name, u32(marks.fromProxy));
      obj.load();
      return new PolicyDatapath(obj, options);
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /**
   * Makes the maps say what `ir` says and attaches to every endpoint's interface (`ifindexes`: interface
   * name → index, in the options' namespace). Throws PolicyReconcileError, writing nothing, for an IR
   * that does not validate.
   */
  reconcile(ir: PolicyIr, ifindexes: ReadonlyMap<string, number>): ReconcileResult {
    const errors = validatePolicy(ir);
    if (errors.length > 0) throw new PolicyReconcileError(errors);
    const plan = planPolicy(ir, ifindexes);
    const before = [...this.mirrors.endpoints.values()].map((e) => e.key);
    const wanted = {
      endpoints: encodeEntries(plan.endpoints, PolicyMaps.endpoints.key, PolicyMaps.endpoints.value),
      ipcache: encodeEntries(plan.ipcache, PolicyMaps.ipcache.key, PolicyMaps.ipcache.value),
      cidrs: encodeEntries(plan.cidrs, PolicyMaps.cidrs.key, PolicyMaps.cidrs.value),
      policy: encodeEntries(plan.policy, PolicyMaps.policy.key, PolicyMaps.policy.value),
    };
    const d = {
      endpoints: diffMaps(this.mirrors.endpoints, wanted.endpoints),
      ipcache: diffMaps(this.mirrors.ipcache, wanted.ipcache),
      cidrs: diffMaps(this.mirrors.cidrs, wanted.cidrs),
      policy: diffMaps(this.mirrors.policy, wanted.policy),
    };
    // Additions before the endpoint entries that enforce them; removals after the endpoint entries that
    // stop enforcing them. In between, traffic sees the old rules or the new ones.
    upsert(this.ipcache, this.mirrors.ipcache, d.ipcache.upserts);
    upsert(this.cidrs, this.mirrors.cidrs, d.cidrs.upserts);
    upsert(this.policy, this.mirrors.policy, d.policy.upserts);
    upsert(this.endpoints, this.mirrors.endpoints, d.endpoints.upserts);
    remove(this.endpoints, this.mirrors.endpoints, d.endpoints.deletes);
    remove(this.policy, this.mirrors.policy, d.policy.deletes);
    remove(this.cidrs, this.mirrors.cidrs, d.cidrs.deletes);
    remove(this.ipcache, this.mirrors.ipcache, d.ipcache.deletes);
    const links = this.syncLinks(plan, before);
    return {
      written: {
        endpoints: d.endpoints.upserts.length,
        ipcache: d.ipcache.upserts.length,
        cidrs: d.cidrs.upserts.length,
        policy: d.policy.upserts.length,
      },
      deleted: {
        endpoints: d.endpoints.deletes.length,
        ipcache: d.ipcache.deletes.length,
        cidrs: d.cidrs.deletes.length,
        policy: d.policy.deletes.length,
      },
      ...links,
      missing: plan.missing,
    };
  }

  /** The pin of one interface's link for one program (bpffs refuses '.' in names). */
  linkPin(ifindex: number, program: string): string {
    return path.join(this.linkDir, `${program}_${ifindex}`);
  }

  /** How the programs are attached: tcx links (pinned), or legacy tc filters where the kernel has no tcx. */
  get attachMode(): 'tcx' | 'tc' | undefined {
    return this.mode;
  }

  private syncLinks(
    plan: PolicyPlan,
    before: readonly number[],
  ): { attached: number; updated: number; detached: number } {
    const counts = { attached: 0, updated: 0, detached: 0 };
    const wanted = new Set<string>();
    for (const ifindex of plan.interfaces.keys()) {
      for (const [prog, spec] of [
        [this.fromEndpoint, PolicyPrograms.fromEndpoint],
        [this.toEndpoint, PolicyPrograms.toEndpoint],
      ] as const) {
        wanted.add(path.basename(this.linkPin(ifindex, spec.name)));
        if (this.mode !== 'tc' && this.attachTcxLink(ifindex, prog, spec, counts)) continue;
        // Legacy tc: the filter of our handle and priority is replaced in place, atomically.
        const id = queryTc(ifindex, spec.attach, this.tcOptions());
        if (id === prog.info().id) continue;
        prog.attachTc(ifindex, spec.attach, this.tcOptions());
        if (id === 0) counts.attached++;
        else counts.updated++;
      }
    }
    if (this.mode === 'tc') {
      for (const ifindex of before) {
        if (plan.interfaces.has(ifindex)) continue;
        for (const spec of Object.values(PolicyPrograms)) detachTc(ifindex, spec.attach, this.tcOptions());
        counts.detached += 2;
      }
    }
    for (const name of pinnedLinks(this.linkDir)) {
      if (wanted.has(name)) continue;
      detachPinned(path.join(this.linkDir, name));
      counts.detached++;
    }
    return counts;
  }

  private tcOptions(): { handle: number; priority: number; netns?: string } {
    return {
      ...POLICY_TC_FILTER,
      ...(this.options.netns === undefined ? {} : { netns: this.options.netns }),
    };
  }

  /**
   * The tcx way: keeps (or swaps the program of) the pinned link, or attaches and pins one. False when
   * the kernel has no tcx and the mode allows falling back to legacy tc (the mode then stays 'tc').
   */
  private attachTcxLink(
    ifindex: number,
    prog: BpfProgram,
    spec: (typeof PolicyPrograms)[keyof typeof PolicyPrograms],
    counts: { attached: number; updated: number },
  ): boolean {
    ensurePinDir(this.linkDir);
    const pin = this.linkPin(ifindex, spec.name);
    const existing = tryOpenLink(pin);
    if (existing !== undefined) {
      try {
        if (existing.info().programId !== prog.info().id) {
          existing.update(prog);
          counts.updated++;
        }
        return true;
      } catch {
        // A link whose interface went away cannot be updated: replace it.
        unpin(pin);
      } finally {
        existing.close();
      }
    }
    let link: BpfLink;
    try {
      link = prog.attachTcx(ifindex, spec.attach, this.options.netns);
    } catch (err) {
      const noTcx = err instanceof DatapathError && err.errno !== undefined && NO_TCX.has(err.errno);
      if (!noTcx || this.mode === 'tcx' || this.options.attachMode === 'tcx') throw err;
      this.mode = 'tc';
      return false;
    }
    this.mode = 'tcx';
    try {
      link.pin(pin);
    } finally {
      link.close();
    }
    counts.attached++;
    return true;
  }

  /** The flow events of every family (the ring buffer is shared, pinned by name). */
  flows(): RingBuffer<FlowEvent> {
    return this.obj.ringBuffer(FlowRingBuffer, FlowEventCodec);
  }

  /** Packets and bytes per reason, summed over CPUs; reasons never counted are left out. */
  counters(): Map<Reason, { packets: bigint; bytes: bigint }> {
    const out = new Map<Reason, { packets: bigint; bytes: bigint }>();
    for (const [name, slot] of Object.entries(Reason) as [Reason, number][]) {
      const perCpu = this.stats.get(slot) ?? [];
      const total = perCpu.reduce((a, c) => ({ packets: a.packets + c.packets, bytes: a.bytes + c.bytes }), {
        packets: 0n,
        bytes: 0n,
      });
      if (total.packets > 0n) out.set(name, total);
    }
    return out;
  }

  /** Closes this process's handles; attached programs (pinned links) and pinned maps stay. */
  close(): void {
    for (const m of [this.endpoints, this.ipcache, this.cidrs, this.policy, this.ct, this.stats]) m.close();
    this.fromEndpoint.close();
    this.toEndpoint.close();
    this.obj.close();
  }
}

/** The pinned maps of the family; skein_flows is shared with the other families. */
export const POLICY_PINNED_MAPS = Object.values(PolicyMaps).map((m) => m.name);

export interface CleanupResult {
  readonly detached: number;
  readonly unpinned: readonly string[];
}

/**
 * Removes everything the policy family made under the pin root: detaches and unpins its links, unpins its
 * maps (and, with `includeShared`, the skein_flows ring buffer every family shares). Safe to run twice.
 */
export function cleanupPolicy(
  options: { pinRoot?: string; netns?: string; includeShared?: boolean } = {},
): CleanupResult {
  const root = options.pinRoot ?? '/sys/fs/bpf/skein';
  if (!existsSync(root)) return { detached: 0, unpinned: [] };
  const linkDir = path.join(root, POLICY_LINK_DIR);
  let detached = 0;
  // Legacy tc filters have no pin: the endpoints map names the interfaces they can be on.
  const endpointsPin = path.join(root, PolicyMaps.endpoints.name);
  if (existsSync(endpointsPin)) {
    const endpoints = openPinnedMap(endpointsPin, PolicyMaps.endpoints.key, PolicyMaps.endpoints.value);
    try {
      const tc = { ...POLICY_TC_FILTER, ...(options.netns === undefined ? {} : { netns: options.netns }) };
      for (const ifindex of endpoints.keys()) {
        for (const spec of Object.values(PolicyPrograms)) if (detachTc(ifindex, spec.attach, tc)) detached++;
      }
    } finally {
      endpoints.close();
    }
  }
  for (const name of pinnedLinks(linkDir)) {
    detachPinned(path.join(linkDir, name));
    detached++;
  }
  const unpinned: string[] = [];
  for (const name of [...POLICY_PINNED_MAPS, ...(options.includeShared === true ? [FlowRingBuffer] : [])]) {
    if (unpin(path.join(root, name))) unpinned.push(name);
  }
  if (existsSync(linkDir) && pinnedLinks(linkDir).length === 0) rmdirSync(linkDir);
  return { detached, unpinned };
}

function mirror<K, V>(map: TypedMap<K, V>): Mirror<K, V> {
  return encodeEntries(map.entries(), map.key, map.value);
}

function upsert<K, V>(map: TypedMap<K, V>, m: Mirror<K, V>, entries: readonly EncodedEntry<K, V>[]): void {
  for (const e of entries) {
    map.set(e.key, e.value);
    m.set(e.k, e);
  }
}

function remove<K, V>(map: TypedMap<K, V>, m: Mirror<K, V>, entries: readonly EncodedEntry<K, V>[]): void {
  for (const e of entries) {
    map.delete(e.key);
    m.delete(e.k);
  }
}

function pinnedLinks(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

function tryOpenLink(pin: string): BpfLink | undefined {
  try {
    return openPinnedLink(pin);
  } catch (err) {
    if (err instanceof DatapathError && err.code === DatapathErrorCode.PinFailed && err.errno === 2)
      return undefined;
    throw err;
  }
}

/** Detaches a pinned link (if its interface still exists) and removes the pin. */
function detachPinned(pin: string): void {
  const link = tryOpenLink(pin);
  if (link !== undefined) {
    try {
      link.detach();
    } catch {
      // Already detached (its interface is gone): removing the pin is all that is left.
    } finally {
      link.close();
    }
  }
  unpin(pin);
}
