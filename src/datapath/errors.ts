/**
 * Stable codes for the eBPF datapath. The native addon (native/src/addon.h) throws the codes marked
 * "addon"; the TypeScript wrapper re-throws them as DatapathError with the same code and details.
 */
export const DatapathErrorCode = {
  /** This machine cannot load BPF programs (not Linux, not root, no kernel BTF). Skein runs without the datapath. */
  Unavailable: 'SKEIN_BPF_UNAVAILABLE',
  /** The addon or a BPF object file is not built (`node scripts/setup.mjs bpf` builds them), or does not load. */
  NotBuilt: 'SKEIN_BPF_NOT_BUILT',
  /** A pin directory is not on a BPF filesystem. */
  NoBpffs: 'SKEIN_BPF_NO_BPFFS',
  /** The cgroup the socket load-balancing programs attach to is not a cgroup v2 directory. */
  NoCgroup2: 'SKEIN_BPF_NO_CGROUP2',
  /** A map's key or value size (from the kernel) differs from what the codec encodes. */
  MapSizeMismatch: 'SKEIN_BPF_MAP_SIZE_MISMATCH',
  /** A map is not of the type the caller needs (a ring buffer opened as a hash map, say). */
  MapTypeMismatch: 'SKEIN_BPF_MAP_TYPE_MISMATCH',
  /** A ring buffer record is not the size its codec decodes. */
  RecordSizeMismatch: 'SKEIN_BPF_RECORD_SIZE_MISMATCH',
  /** addon: an argument of the wrong type or size. */
  InvalidArgument: 'SKEIN_BPF_INVALID_ARGUMENT',
  /** addon: a call at the wrong time (rodata after load, a map before load). */
  InvalidState: 'SKEIN_BPF_INVALID_STATE',
  /** addon: a handle used after close(). */
  Closed: 'SKEIN_BPF_CLOSED',
  /** addon: the object file does not open (missing, not BPF ELF). */
  OpenFailed: 'SKEIN_BPF_OPEN_FAILED',
  /** addon: no map or program of that name in the object. */
  NotFound: 'SKEIN_BPF_NOT_FOUND',
  /** addon: no `const volatile` variable of that name. */
  RodataUnknownVar: 'SKEIN_BPF_RODATA_UNKNOWN_VAR',
  /** addon: a rodata value of the wrong size. */
  RodataSizeMismatch: 'SKEIN_BPF_RODATA_SIZE_MISMATCH',
  /** addon: loading failed; `program`, `verifierLog`, `libbpfLog` and `errno` say why. */
  LoadFailed: 'SKEIN_BPF_LOAD_FAILED',
  /** addon: attaching (or detaching) a program failed. */
  AttachFailed: 'SKEIN_BPF_ATTACH_FAILED',
  /** addon: a map lookup, update, delete or batch failed (other than "not found"). */
  MapOpFailed: 'SKEIN_BPF_MAP_OP_FAILED',
  /** addon: pinning, opening a pin or unpinning failed. */
  PinFailed: 'SKEIN_BPF_PIN_FAILED',
  /** addon: the ring buffer could not be opened or read. */
  RingBufferFailed: 'SKEIN_BPF_RINGBUF_FAILED',
  /** addon: BPF_PROG_TEST_RUN failed. */
  TestRunFailed: 'SKEIN_BPF_TEST_RUN_FAILED',
} as const;
export type DatapathErrorCode = (typeof DatapathErrorCode)[keyof typeof DatapathErrorCode];

const codes = new Set<string>(Object.values(DatapathErrorCode));

export interface DatapathErrorDetails {
  /** The kernel's (or libbpf's) error number, positive. */
  errno?: number;
  /** The program a load failure is about. */
  program?: string;
  /** The verifier's log for that program. */
  verifierLog?: string;
  /** What libbpf printed during the failed call. */
  libbpfLog?: string;
}

export class DatapathError extends Error {
  readonly code: DatapathErrorCode;
  readonly errno: number | undefined;
  readonly program: string | undefined;
  readonly verifierLog: string | undefined;
  readonly libbpfLog: string | undefined;

  constructor(
    code: DatapathErrorCode,
    message: string,
    details: DatapathErrorDetails = {},
    options?: ErrorOptions,
  ) {
    super(message.startsWith(`${code}:`) ? message : `${code}: ${message}`, options);
    this.name = 'DatapathError';
    this.code = code;
    this.errno = details.errno;
    this.program = details.program;
    this.verifierLog = details.verifierLog;
    this.libbpfLog = details.libbpfLog;
  }
}

function stringProp(o: object, key: string): string | undefined {
  const v: unknown = Reflect.get(o, key);
  return typeof v === 'string' ? v : undefined;
}

/**
 * Turns an error thrown by the addon into a DatapathError (same code, message and details); anything
 * else is returned as it is.
 */
export function fromNative(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof DatapathError) return err;
  const code = stringProp(err, 'code');
  if (code === undefined || !codes.has(code)) return err;
  const errno: unknown = Reflect.get(err, 'errno');
  const details: DatapathErrorDetails = {};
  if (typeof errno === 'number') details.errno = errno;
  const program = stringProp(err, 'program');
  if (program !== undefined) details.program = program;
  const verifierLog = stringProp(err, 'verifierLog');
  if (verifierLog !== undefined) details.verifierLog = verifierLog;
  const libbpfLog = stringProp(err, 'libbpfLog');
  if (libbpfLog !== undefined) details.libbpfLog = libbpfLog;
  return new DatapathError(code as DatapathErrorCode, err.message, details);
}

/** Runs a call into the addon, re-throwing its errors as DatapathError. */
export function native<T>(call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw fromNative(err);
  }
}
