/**
 * The lifecycle of a BPF object, typed: open, configure (rodata, map sizes), load, then maps through
 * codecs, programs to attach or test-run, links to pin, and the flow ring buffer. A thin layer over the
 * addon (./addon.ts); every addon error comes out as a DatapathError with a stable code.
 *
 * Handles are independent of the object that made them: close the object after load and the maps,
 * programs and links opened from it keep working; a pinned link keeps its program attached after every
 * handle (and the process) is gone.
 */

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  loadAddon,
  type NativeLink,
  type NativeLinkInfo,
  type NativeMapSpec,
  type NativeObject,
  type NativeProgram,
  type NativeProgramInfo,
  type NativeProgramSpec,
  type NativeRingBuffer,
  type NativeRodataVar,
  type NativeTcOptions,
} from './addon.js';
import type { Codec } from './codec.js';
import { DatapathError, DatapathErrorCode, fromNative, native } from './errors.js';
import { PerCpuMap } from './perCpuMap.js';
import { TypedMap } from './typedMap.js';

/** Where Skein pins its maps and links unless told otherwise. */
export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/skein';

export interface OpenOptions {
  /**
   * The bpffs directory where maps declared with LIBBPF_PIN_BY_NAME are pinned on load, and found again
   * by the next load (an agent restart keeps its state). Created if missing; its parent must be on bpffs.
   * Default: /sys/fs/bpf/skein.
   */
  pinRoot?: string;
}

export class BpfObject {
  private constructor(
    private readonly obj: NativeObject,
    readonly path: string,
    readonly pinRoot: string,
  ) {}

  /** Opens (parses) an object file. Nothing reaches the kernel until load(). */
  static open(file: string, options: OpenOptions = {}): BpfObject {
    const pinRoot = options.pinRoot ?? DEFAULT_PIN_ROOT;
    const addon = loadAddon();
    const obj = native(() => new addon.BpfObject(file, { pinRoot }));
    try {
      if (obj.maps().some((m) => m.pinPath !== undefined)) ensurePinDir(pinRoot);
    } catch (err) {
      obj.close();
      throw err;
    }
    return new BpfObject(obj, file, pinRoot);
  }

  /** The maps as declared in the object (sizes from its BTF). */
  maps(): NativeMapSpec[] {
    return native(() => this.obj.maps());
  }

  programs(): NativeProgramSpec[] {
    return native(() => this.obj.programs());
  }

  /** The `const volatile` variables (name, offset, size). */
  rodata(): NativeRodataVar[] {
    return native(() => this.obj.rodata());
  }

  /** Sets a `const volatile` variable before load; the value must have the variable's exact size. */
  setRodata(name: string, value: Buffer): this {
    native(() => this.obj.setRodata(name, value));
    return this;
  }

  setMaxEntries(map: string, maxEntries: number): this {
    native(() => this.obj.setMaxEntries(map, maxEntries));
    return this;
  }

  /**
   * Creates the maps (reusing pinned ones), loads every program through the verifier. On failure the
   * DatapathError (SKEIN_BPF_LOAD_FAILED) carries errno, the program and the verifier log, and the object
   * is closed.
   */
  load(): this {
    native(() => this.obj.load());
    return this;
  }

  /** A map through codecs; fails with SKEIN_BPF_MAP_SIZE_MISMATCH if they do not fit the map. */
  map<K, V>(name: string, key: Codec<K>, value: Codec<V>): TypedMap<K, V> {
    return new TypedMap(
      native(() => this.obj.map(name)),
      key,
      value,
    );
  }

  /** A per-CPU map through codecs (one value per CPU); sizes checked like map(). */
  perCpuMap<K, V>(name: string, key: Codec<K>, value: Codec<V>): PerCpuMap<K, V> {
    return new PerCpuMap(
      native(() => this.obj.map(name)),
      key,
      value,
    );
  }

  /** A ring buffer map, each record decoded with `record`. */
  ringBuffer<T>(name: string, record: Codec<T>): RingBuffer<T> {
    const addon = loadAddon();
    const map = native(() => this.obj.map(name));
    try {
      return new RingBuffer(
        native(() => new addon.BpfRingBuffer(map)),
        record,
        name,
      );
    } finally {
      map.close(); // the ring buffer holds its own fd
    }
  }

  program(name: string): BpfProgram {
    return new BpfProgram(native(() => this.obj.program(name)));
  }

  /** Frees the object; handles opened from it stay usable. Idempotent. */
  close(): void {
    this.obj.close();
  }
}

/** Makes sure `dir` can hold pins: it, or its parent, is on a BPF filesystem. */
export function ensurePinDir(dir: string): void {
  const addon = loadAddon();
  const parent = path.dirname(dir);
  if (native(() => addon.isBpffs(dir))) return;
  if (native(() => addon.isBpffs(parent))) {
    mkdirSync(dir, { recursive: true });
    return;
  }
  throw new DatapathError(
    DatapathErrorCode.NoBpffs,
    `cannot pin BPF maps under ${dir}: neither it nor ${parent} is on a BPF filesystem (mount -t bpf bpf ${parent === '/sys/fs' ? dir : parent})`,
  );
}

export interface TestRunOptions {
  /** Runs the program this many times (durationNs is the average). */
  repeat?: number;
  /** Room for the packet after the program (default: the input's size + 256). */
  dataSizeOut?: number;
  /** The program's context (`struct __sk_buff` for tc), where the program type allows one. */
  ctx?: Buffer;
}

export interface TestRunResult {
  /** What the program returned (TC_ACT_UNSPEC is -1). */
  retval: number;
  /** The packet as the program left it. */
  data: Buffer;
  durationNs: number;
}

export class BpfProgram {
  constructor(private readonly prog: NativeProgram) {}

  info(): NativeProgramInfo {
    return native(() => this.prog.info());
  }

  /**
   * Attaches to a cgroup v2 directory at the program's own hook (its section), or at `attachType`
   * (`cgroup/connect4` or libbpf's `cgroup_inet4_connect`). Returns the link: closing it detaches,
   * pinning it keeps the program attached.
   */
  attachCgroup(cgroupPath: string, attachType?: string): BpfLink {
    return new BpfLink(native(() => this.prog.attachCgroup(cgroupPath, attachType)));
  }

  /**
   * Attaches a tc program with tcx (Linux 6.6+) on an interface of this network namespace, or of the one
   * at `netns` (a /run/netns/NAME path): interface indexes are per namespace.
   */
  attachTcx(ifindex: number, direction: 'ingress' | 'egress', netns?: string): BpfLink {
    return new BpfLink(
      native(() =>
        netns === undefined
          ? this.prog.attachTcx(ifindex, direction)
          : this.prog.attachTcx(ifindex, direction, netns),
      ),
    );
  }

  /**
   * Attaches a tc program the legacy way (kernels without tcx): a direct-action filter on the interface's
   * clsact qdisc, replacing the filter of the same handle and priority atomically. It stays until
   * detachTc(); there is no link.
   */
  attachTc(ifindex: number, direction: 'ingress' | 'egress', options: NativeTcOptions = {}): void {
    native(() => this.prog.attachTc(ifindex, direction, options));
  }

  /** Attaches an fentry/fexit program at the kernel function its section names. */
  attachTracing(): BpfLink {
    return new BpfLink(native(() => this.prog.attachTracing()));
  }

  /** Attaches a raw tracepoint program at the kernel tracepoint `tracepoint` (`sys_enter`). */
  attachRawTracepoint(tracepoint: string): BpfLink {
    return new BpfLink(native(() => this.prog.attachRawTracepoint(tracepoint)));
  }

  /** The addon's handle, for another handle's call (BpfLink.update). */
  get nativeProgram(): NativeProgram {
    return this.prog;
  }

  /** Runs the program once on `data` in the kernel (BPF_PROG_TEST_RUN); tc and XDP programs allow it. */
  testRun(data: Buffer, options: TestRunOptions = {}): TestRunResult {
    return native(() => this.prog.testRun({ data, ...options }));
  }

  pin(pinPath: string): void {
    native(() => this.prog.pin(pinPath));
  }

  close(): void {
    this.prog.close();
  }
}

export class BpfLink {
  constructor(private readonly link: NativeLink) {}

  info(): NativeLinkInfo {
    return native(() => this.link.info());
  }

  /** Pins the link: the program stays attached after this process exits, until unpin(). */
  pin(pinPath: string): void {
    native(() => this.link.pin(pinPath));
  }

  /** Swaps in another program atomically (BPF_LINK_UPDATE): every packet sees the old or the new one. */
  update(program: BpfProgram): void {
    native(() => this.link.update(program.nativeProgram));
  }

  /** Detaches now, pinned or not. */
  detach(): void {
    native(() => this.link.detach());
  }

  /** Closes this handle: detaches unless the link is pinned (or held elsewhere). */
  close(): void {
    this.link.close();
  }
}

export class RingBuffer<T> {
  constructor(
    private readonly rb: NativeRingBuffer,
    readonly record: Codec<T>,
    readonly name: string,
  ) {}

  /** Every record there now, without waiting. */
  consume(): T[] {
    return native(() => this.rb.consume()).map((b) => this.decode(b));
  }

  /** Waits up to timeoutMs (off the event loop) for records; [] on timeout. */
  async poll(timeoutMs: number): Promise<T[]> {
    const records = await native(() => this.rb.poll(timeoutMs)).catch((err: unknown) => {
      throw fromNative(err);
    });
    return records.map((b) => this.decode(b));
  }

  close(): void {
    this.rb.close();
  }

  private decode(bytes: Buffer): T {
    if (bytes.length !== this.record.size) {
      throw new DatapathError(
        DatapathErrorCode.RecordSizeMismatch,
        `a record of ring buffer ${this.name} has ${bytes.length} bytes, codec ${this.record.name} decodes ${this.record.size}`,
      );
    }
    return this.record.decode(bytes);
  }
}

/** Opens a pinned map through codecs (sizes checked like BpfObject.map). */
export function openPinnedMap<K, V>(pinPath: string, key: Codec<K>, value: Codec<V>): TypedMap<K, V> {
  const addon = loadAddon();
  return new TypedMap(
    native(() => addon.openPinnedMap(pinPath)),
    key,
    value,
  );
}

export function openPinnedLink(pinPath: string): BpfLink {
  const addon = loadAddon();
  return new BpfLink(native(() => addon.openPinnedLink(pinPath)));
}

/** A pinned program; its attach type is not known from a pin, so attachCgroup needs one. */
export function openPinnedProgram(pinPath: string): BpfProgram {
  const addon = loadAddon();
  return new BpfProgram(native(() => addon.openPinnedProgram(pinPath)));
}

/**
 * Resolves once every BPF program run that started before the call has ended (an RCU grace period:
 * programs run inside RCU read-side sections). A map value replaced before the call is then no longer
 * read by anyone, so what only it pointed at can be deleted.
 */
export async function waitForBpfReaders(): Promise<void> {
  const addon = loadAddon();
  await native(() => addon.synchronizeRcu()).catch((err: unknown) => {
    throw fromNative(err);
  });
}

/** Removes a legacy tc filter (see BpfProgram.attachTc); false if there was none. */
export function detachTc(
  ifindex: number,
  direction: 'ingress' | 'egress',
  options: NativeTcOptions = {},
): boolean {
  const addon = loadAddon();
  return native(() => addon.detachTc(ifindex, direction, options));
}

/** The id of the program a legacy tc filter runs, 0 if there is none. */
export function queryTc(
  ifindex: number,
  direction: 'ingress' | 'egress',
  options: NativeTcOptions = {},
): number {
  const addon = loadAddon();
  return native(() => addon.queryTc(ifindex, direction, options));
}

/** Removes a pin (only on bpffs); false if there was none. The last pin of an unused link detaches it. */
export function unpin(pinPath: string): boolean {
  const addon = loadAddon();
  return native(() => addon.unpin(pinPath));
}
