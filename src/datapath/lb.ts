/**
 * The service load-balancing family (bpf/lb.bpf.c), loaded and typed: its maps through the codecs of
 * ./codecs/lb.ts, its socket programs attached to a cgroup, its flow events. What goes into the maps, and
 * in which order, is ./lbReconcile.ts's business.
 */

import path from 'node:path';
import { bpfObjectPath } from './addon.js';
import {
  type BpfLink,
  BpfObject,
  type BpfProgram,
  ensurePinDir,
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

function unpinQuietly(p: string): void {
  try {
    unpin(p);
  } catch {
    // Cleaning up after a failure: the first error is the one to report.
  }
}
