/**
 * The service load-balancing family (bpf/lb.bpf.c), loaded and typed: its maps through the codecs of
 * ./codecs/lb.ts, its socket programs attached to a cgroup, its flow events. What goes into the maps, and
 * in which order, is ./lbReconcile.ts's business.
 */

import { existsSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { bpfObjectPath } from './addon.js';
import {
  type BpfLink,
  BpfObject,
  type BpfProgram,
  ensurePinDir,
  openPinnedLink,
  type RingBuffer,
  unpin,
} from './bpfObject.js';
import type { Codec } from './codec.js';
import { type FlowEvent, FlowEventCodec, FlowRingBuffer } from './codecs/flow.js';
import {
  type Affinity,
  type AffinityKey,
  type Backend,
  LbCgroupPrograms,
  LbMaps,
  LbRodata,
  type LbTcProgram,
  type Member,
  type MemberKey,
  type RevNat,
  type RevNatKey,
  type Service,
  type ServiceKey,
  type Slot,
  type SlotKey,
} from './codecs/lb.js';
import type { TypedMap } from './typedMap.js';

export interface LbOptions {
  /** Where the maps are pinned and found again (see OpenOptions.pinRoot). */
  pinRoot?: string;
  /** The object file; default dist/bpf/lb.bpf.o. */
  objectPath?: string;
  /** Emit a flow event for every translation and refusal of the socket programs. */
  lbEvents?: boolean;
  /** Emit a flow event for every IP packet the tc program sees. */
  tcEvents?: boolean;
  /**
   * Map sizes other than the header's defaults (a hash map's bucket array is sized by them, so a smaller
   * map is also a denser one). A pinned map of another size is not reused: the load fails.
   */
  maxEntries?: Partial<Record<'services' | 'slots' | 'members' | 'backends' | 'affinity' | 'revnat', number>>;
}

export class LbDatapath {
  readonly services: TypedMap<ServiceKey, Service>;
  readonly slots: TypedMap<SlotKey, Slot>;
  readonly members: TypedMap<MemberKey, Member>;
  readonly backends: TypedMap<number, Backend>;
  readonly affinity: TypedMap<AffinityKey, Affinity>;
  readonly revnat: TypedMap<RevNatKey, RevNat>;

  private constructor(private readonly obj: BpfObject) {
    const opened: TypedMap<unknown, unknown>[] = [];
    try {
      const open = <K, V>(m: { name: string; key: Codec<K>; value: Codec<V> }) => {
        const map = obj.map(m.name, m.key, m.value);
        opened.push(map as TypedMap<unknown, unknown>);
        return map;
      };
      this.services = open(LbMaps.services);
      this.slots = open(LbMaps.slots);
      this.members = open(LbMaps.members);
      this.backends = open(LbMaps.backends);
      this.affinity = open(LbMaps.affinity);
      this.revnat = open(LbMaps.revnat);
    } catch (err) {
      for (const m of opened) m.close();
      throw err;
    }
  }

  /** Opens, configures and loads the family. Pinned maps found under pinRoot are reused, entries and all. */
  static load(options: LbOptions = {}): LbDatapath {
    const obj = BpfObject.open(
      options.objectPath ?? bpfObjectPath('lb'),
      options.pinRoot === undefined ? {} : { pinRoot: options.pinRoot },
    );
    try {
      obj.setRodata(LbRodata.lbEvents.name, Buffer.of(options.lbEvents === true ? 1 : 0));
      obj.setRodata(LbRodata.tcEvents.name, Buffer.of(options.tcEvents === true ? 1 : 0));
      for (const [map, n] of Object.entries(options.maxEntries ?? {})) {
        if (n !== undefined) obj.setMaxEntries(LbMaps[map as keyof typeof LbMaps].name, n);
      }
      obj.load();
      return new LbDatapath(obj);
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  program(name: (typeof LbCgroupPrograms)[number] | typeof LbTcProgram): BpfProgram {
    return this.obj.program(name);
  }

  /**
   * Attaches every socket program to a cgroup v2 directory (all processes in it and below are balanced).
   * With pinDir, each link is pinned there under its program's name, so the programs stay attached when
   * this process exits. On failure nothing stays attached.
   */
  attachCgroup(cgroupPath: string, options: { pinDir?: string } = {}): BpfLink[] {
    const links: BpfLink[] = [];
    const pins: string[] = [];
    if (options.pinDir !== undefined) ensurePinDir(options.pinDir);
    try {
      for (const name of LbCgroupPrograms) {
        const prog = this.program(name);
        try {
          links.push(prog.attachCgroup(cgroupPath));
        } finally {
          prog.close();
        }
        if (options.pinDir !== undefined) {
          const pin = path.join(options.pinDir, name);
          links[links.length - 1]?.pin(pin);
          pins.push(pin);
        }
      }
      return links;
    } catch (err) {
      for (const l of links) l.close(); // unpinned now (below), so closing detaches
      for (const p of pins) unpinQuietly(p);
      throw err;
    }
  }

  /**
   * Keeps every socket program attached to `cgroupPath` through a link pinned in `pinDir` (one per
   * program): an existing pin has its program swapped for this object's atomically (BPF_LINK_UPDATE), so
   * an agent restart never leaves a connect() unbalanced and never attaches twice; a missing one is
   * attached and pinned. Links pinned for another cgroup (other directories under the parent of
   * `pinDir`) are detached: the configured cgroup changed.
   */
  syncCgroupLinks(
    cgroupPath: string,
    pinDir: string,
  ): { attached: number; updated: number; detached: number } {
    const counts = { attached: 0, updated: 0, detached: 0 };
    ensurePinDir(path.dirname(pinDir));
    ensurePinDir(pinDir);
    for (const name of LbCgroupPrograms) {
      const pin = path.join(pinDir, name);
      const prog = this.program(name);
      try {
        const id = prog.info().id;
        const existing = existsSync(pin) ? openPinnedLink(pin) : undefined;
        if (existing !== undefined) {
          try {
            if (existing.info().programId !== id) {
              existing.update(prog);
              counts.updated++;
            }
            continue;
          } catch {
            // A link whose cgroup went away cannot be updated: attach anew below.
            unpin(pin);
          } finally {
            existing.close();
          }
        }
        const link = prog.attachCgroup(cgroupPath);
        try {
          link.pin(pin);
        } finally {
          link.close();
        }
        counts.attached++;
      } finally {
        prog.close();
      }
    }
    for (const other of readdirSync(path.dirname(pinDir))) {
      const dir = path.join(path.dirname(pinDir), other);
      if (dir === pinDir) continue;
      counts.detached += detachCgroupLinks(dir).length;
    }
    return counts;
  }

  /** The flow events of every family (the ring buffer is shared, pinned by name). */
  flows(): RingBuffer<FlowEvent> {
    return this.obj.ringBuffer(FlowRingBuffer, FlowEventCodec);
  }

  /** Closes the maps and the object; attached (pinned) programs and pinned maps stay. */
  close(): void {
    for (const m of [this.services, this.slots, this.members, this.backends, this.affinity, this.revnat])
      m.close();
    this.obj.close();
  }
}

/** The directory of the pinned cgroup links under a pin root. */
export const LB_LINK_DIR = 'skein_lb_links';

/**
 * Where the cgroup links for one cgroup are pinned: `<pinRoot>/skein_lb_links/cg<inode>`, the cgroup
 * directory's inode being its cgroup id, so a changed cgroup root is seen as another directory.
 */
export function cgroupLinkDir(pinRoot: string, cgroupPath: string): string {
  return path.join(pinRoot, LB_LINK_DIR, `cg${statSync(cgroupPath).ino}`);
}

/** Detaches and unpins every link pinned in `dir`, then removes it; the names of the links it removed. */
export function detachCgroupLinks(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const pin = path.join(dir, name);
    try {
      const link = openPinnedLink(pin);
      try {
        link.detach();
      } catch {
        // Its cgroup is gone: the pin is all that is left.
      } finally {
        link.close();
      }
    } finally {
      if (unpin(pin)) removed.push(name);
    }
  }
  rmdirSync(dir);
  return removed;
}

function unpinQuietly(p: string): void {
  try {
    unpin(p);
  } catch {
    // Cleaning up after a failure: the first error is the one to report.
  }
}
