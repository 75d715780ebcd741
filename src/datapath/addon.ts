/**
 * The native addon over libbpf (native/), its types, and the one place that loads it. Loading is lazy:
 * nothing in Skein imports the datapath unless it is asked for, so a machine that cannot run eBPF (not
 * root, no BTF, addon not built) still runs standalone L7 mode, and the first datapath call says why it
 * cannot work in one message.
 */

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { DatapathError, DatapathErrorCode } from './errors.js';

/** The repository root: this file is src/datapath/addon.ts or dist/datapath/addon.js. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const ADDON_PATH = `${ROOT}native/build/Release/skein_bpf.node`;
/** Where scripts/build-bpf.mjs puts the compiled BPF objects. */
export const BPF_OBJECT_DIR = `${ROOT}dist/bpf`;
export const KERNEL_BTF = '/sys/kernel/btf/vmlinux';
const BUILD_HINT = 'run `node scripts/setup.mjs bpf` (installs clang, libbpf-dev and bpftool, then builds)';

// --- the addon's interface (native/src/*.cc) ------------------------------------------------------

export interface NativeMapSpec {
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  internal: boolean;
  pinPath?: string;
}

export interface NativeProgramSpec {
  name: string;
  section: string;
  type: string;
  attachType?: string;
}

export interface NativeRodataVar {
  name: string;
  offset: number;
  size: number;
}

export interface NativeMapInfo {
  name: string;
  kernelName: string;
  type: string;
  id: number;
  keySize: number;
  valueSize: number;
  /** valueSize, or for per-CPU maps the size of all CPUs' values (each rounded up to 8 bytes). */
  valueBufferSize: number;
  maxEntries: number;
  flags: number;
}

export interface NativeBatch {
  count: number;
  keys: Buffer;
  values: Buffer;
  /** Absent when the map has been read to its end. */
  cursor?: Buffer;
}

export interface NativeMap {
  info(): NativeMapInfo;
  lookup(key: Buffer): Buffer | undefined;
  update(key: Buffer, value: Buffer, flags?: number): void;
  delete(key: Buffer): boolean;
  nextKey(key?: Buffer): Buffer | undefined;
  lookupBatch(maxCount: number, cursor?: Buffer): NativeBatch;
  updateBatch(keys: Buffer, values: Buffer, flags?: number): number;
  deleteBatch(keys: Buffer): number;
  pin(path: string): void;
  close(): void;
}

export interface NativeProgramInfo {
  name: string;
  kernelName: string;
  type: string;
  id: number;
  tag: string;
  attachType?: string;
}

export interface NativeTestRunOptions {
  data: Buffer;
  repeat?: number;
  dataSizeOut?: number;
  ctx?: Buffer;
}

export interface NativeTestRunResult {
  retval: number;
  data: Buffer;
  durationNs: number;
}

export interface NativeLinkInfo {
  id: number;
  programId: number;
  description: string;
}

export interface NativeLink {
  info(): NativeLinkInfo;
  pin(path: string): void;
  /** Swaps the link's program atomically (BPF_LINK_UPDATE). */
  update(program: NativeProgram): void;
  detach(): void;
  close(): void;
}

export interface NativeProgram {
  info(): NativeProgramInfo;
  attachCgroup(cgroupPath: string, attachType?: string): NativeLink;
  /** With netnsPath, ifindex is an interface of that network namespace. */
  attachTcx(ifindex: number, direction: 'ingress' | 'egress', netnsPath?: string): NativeLink;
  /** fentry/fexit programs, at the kernel function their section names. */
  attachTracing(): NativeLink;
  /** Legacy tc (no tcx): a direct-action filter on the clsact qdisc, replacing the one of that handle/priority. */
  attachTc(ifindex: number, direction: 'ingress' | 'egress', options?: NativeTcOptions): void;
  /** raw_tp programs, at the named kernel tracepoint (`sys_enter`). */
  attachRawTracepoint(tracepoint: string): NativeLink;
  testRun(options: NativeTestRunOptions): NativeTestRunResult;
  pin(path: string): void;
  close(): void;
}

/** Which legacy tc filter: handle and priority (default 1 and 1), in a network namespace (a path). */
export interface NativeTcOptions {
  handle?: number;
  priority?: number;
  netns?: string;
}

export interface NativeObject {
  maps(): NativeMapSpec[];
  programs(): NativeProgramSpec[];
  rodata(): NativeRodataVar[];
  setRodata(name: string, value: Buffer): void;
  setMaxEntries(map: string, maxEntries: number): void;
  load(): void;
  map(name: string): NativeMap;
  program(name: string): NativeProgram;
  close(): void;
}

export interface NativeRingBuffer {
  consume(): Buffer[];
  poll(timeoutMs: number): Promise<Buffer[]>;
  close(): void;
}

export interface NativeAddon {
  BpfObject: new (path: string, options?: { pinRoot?: string }) => NativeObject;
  BpfRingBuffer: new (map: NativeMap) => NativeRingBuffer;
  openPinnedMap(path: string): NativeMap;
  openPinnedProgram(path: string): NativeProgram;
  openPinnedLink(path: string): NativeLink;
  unpin(path: string): boolean;
  isBpffs(path: string): boolean;
  libbpfVersion(): string;
  /** Removes a legacy tc filter; false if there was none (or no such interface). */
  detachTc(ifindex: number, direction: 'ingress' | 'egress', options?: NativeTcOptions): boolean;
  /** The id of the program a legacy tc filter runs, 0 if none. */
  queryTc(ifindex: number, direction: 'ingress' | 'egress', options?: NativeTcOptions): number;
  /** Resolves after an RCU grace period (membarrier MEMBARRIER_CMD_GLOBAL), on a worker thread. */
  synchronizeRcu(): Promise<void>;
}

// --- can this machine run it? ----------------------------------------------------------------------

export type Support = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** CAP_SYS_ADMIN (21) or CAP_BPF (39) in the effective set: what loading programs and attaching needs. */
function hasBpfCapabilities(): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m?.[1] === undefined) return false;
    const caps = BigInt(`0x${m[1]}`);
    return (caps & (1n << 21n)) !== 0n || (caps & (1n << 39n)) !== 0n;
  } catch {
    return false;
  }
}

/**
 * Whether this machine can load Skein's BPF programs at all: Linux, root (or CAP_BPF/CAP_SYS_ADMIN) and
 * a kernel with BTF. Whether the addon is built is a separate question (loadAddon answers it).
 */
export function checkSupport(): Support {
  if (process.platform !== 'linux')
    return { ok: false, reason: `it runs on Linux only (this is ${process.platform})` };
  if (!existsSync(KERNEL_BTF)) {
    return {
      ok: false,
      reason: `the kernel has no BTF (${KERNEL_BTF} is missing; it needs CONFIG_DEBUG_INFO_BTF)`,
    };
  }
  if (!hasBpfCapabilities()) return { ok: false, reason: 'it needs root (or CAP_BPF and CAP_NET_ADMIN)' };
  return { ok: true };
}

/** Throws SKEIN_BPF_UNAVAILABLE, in one sentence, unless checkSupport() is ok. */
export function requireSupport(): void {
  const support = checkSupport();
  if (!support.ok) {
    throw new DatapathError(
      DatapathErrorCode.Unavailable,
      `the eBPF datapath cannot run on this machine: ${support.reason}. Skein works without it (standalone L7 mode).`,
    );
  }
}

let addon: NativeAddon | undefined;

/**
 * Loads the addon once. Throws SKEIN_BPF_UNAVAILABLE if this machine cannot run the datapath and
 * SKEIN_BPF_NOT_BUILT if the addon is missing or does not load; both in one sentence a user can act on.
 */
export function loadAddon(): NativeAddon {
  if (addon !== undefined) return addon;
  requireSupport();
  if (!existsSync(ADDON_PATH)) {
    throw new DatapathError(
      DatapathErrorCode.NotBuilt,
      `the eBPF datapath addon is not built (${ADDON_PATH}): ${BUILD_HINT}`,
    );
  }
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new DatapathError(
      DatapathErrorCode.NotBuilt,
      `the eBPF datapath addon ${ADDON_PATH} does not load (${why}): ${BUILD_HINT}`,
      {},
      { cause: err },
    );
  }
  return addon;
}

/** The path of a compiled BPF object (`lb` -> dist/bpf/lb.bpf.o), checked to exist. */
export function bpfObjectPath(name: string): string {
  const file = `${BPF_OBJECT_DIR}/${name}.bpf.o`;
  if (!existsSync(file)) {
    requireSupport(); // on a machine that cannot run it, that is the news, not the missing build
    throw new DatapathError(DatapathErrorCode.NotBuilt, `the BPF object ${file} is not built: ${BUILD_HINT}`);
  }
  return file;
}
