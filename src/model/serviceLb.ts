import { isIP } from 'node:net';

/**
 * The services IR: what socket-level load-balancing (the kube-proxy replacement for ClusterIP) must do,
 * as plain data. One entry per service address (VIP), port and protocol: a dual-stack Service port is
 * two entries, one per family. `src/services/` builds it from Kubernetes Services and EndpointSlices;
 * `src/datapath/lbReconcile.ts` turns it into BPF map writes. No Kubernetes or BPF types here.
 */
export interface ServicesIr {
  readonly services: readonly LbServiceIr[];
}

export type LbProtocol = 'TCP' | 'UDP';

/** `random`: each connection picks a backend at random. `maglev`: consistent hashing of the client's flow. */
export type LbAlgorithm = 'random' | 'maglev';

/**
 * `active`: ready, takes new connections. `terminating`: shutting down but still serving; used only
 * while the service has no active backend (kube-proxy's fallback, KEP-1669).
 */
export type LbBackendState = 'active' | 'terminating';

export interface LbBackendIr {
  readonly address: string;
  readonly port: number;
  readonly state: LbBackendState;
}

/** Kubernetes `sessionAffinity: ClientIP`: a client keeps its backend until it has been idle this long. */
export interface LbSessionAffinity {
  readonly type: 'ClientIP';
  readonly timeoutSeconds: number;
}

export interface LbServiceIr {
  /** For messages: `namespace/service/port` (the Service port's name, or its number if unnamed). */
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly protocol: LbProtocol;
  readonly algorithm: LbAlgorithm;
  readonly sessionAffinity?: LbSessionAffinity;
  /** Sorted by address (numerically), then port: compareBackends. */
  readonly backends: readonly LbBackendIr[];
}

/** Kubernetes' bounds for `sessionAffinityConfig.clientIP.timeoutSeconds` (default 10800). */
export const AFFINITY_TIMEOUT_MAX_SECONDS = 86_400;
export const AFFINITY_TIMEOUT_DEFAULT_SECONDS = 10_800;
/** The most backends one service may have (one random slot set holds one slot per backend). */
export const LB_MAX_BACKENDS_PER_SERVICE = 65_535;

/**
 * Stable codes for services IR problems; docs/errors.md lists each. Translators check their input, so
 * these point at translator bugs or at IR built by hand.
 */
export const LbIrErrorCode = {
  DuplicateService: 'SKEIN_LB_DUPLICATE_SERVICE',
  InvalidAddress: 'SKEIN_LB_INVALID_ADDRESS',
  InvalidPort: 'SKEIN_LB_INVALID_PORT',
  InvalidProtocol: 'SKEIN_LB_INVALID_PROTOCOL',
  InvalidAlgorithm: 'SKEIN_LB_INVALID_ALGORITHM',
  InvalidAffinity: 'SKEIN_LB_INVALID_AFFINITY',
  InvalidState: 'SKEIN_LB_INVALID_STATE',
  FamilyMismatch: 'SKEIN_LB_FAMILY_MISMATCH',
  DuplicateBackend: 'SKEIN_LB_DUPLICATE_BACKEND',
  TooManyBackends: 'SKEIN_LB_TOO_MANY_BACKENDS',
} as const;
export type LbIrErrorCode = (typeof LbIrErrorCode)[keyof typeof LbIrErrorCode];

export interface LbIrError {
  readonly code: LbIrErrorCode;
  /** Dotted path to the field: `services[3].backends[0].port`. */
  readonly path: string;
  /** Names the service: `default/web/http 10.96.0.10:80/TCP: 70000 is not a port in 1..65535`. */
  readonly message: string;
}

const validPort = (p: number): boolean => Number.isInteger(p) && p >= 1 && p <= 65535;

/** `10.96.0.10:80/TCP`, `[fd00::10]:80/TCP`: a service's socket, as messages show it. */
export function serviceSocket(s: { address: string; port: number; protocol: string }): string {
  return `${isIP(s.address) === 6 ? `[${s.address}]` : s.address}:${s.port}/${s.protocol}`;
}

/**
 * A string that sorts addresses numerically (IPv4 before IPv6): 32 hex digits of the 16-byte form, IPv4
 * mapped. For sorting IR lists; not an address.
 */
export function addressSortKey(address: string): string {
  if (isIP(address) === 4) {
    return `00000000000000000000ffff${address
      .split('.')
      .map((o) => Number(o).toString(16).padStart(2, '0'))
      .join('')}`;
  }
  let text = address.split('%')[0] ?? '';
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const o = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${(((o[0] ?? 0) << 8) | (o[1] ?? 0)).toString(16)}:${(((o[2] ?? 0) << 8) | (o[3] ?? 0)).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const groups = (g: string): string[] => (g === '' ? [] : g.split(':'));
  const before = groups(head);
  const after = rest === undefined ? [] : groups(rest);
  const all = [...before, ...new Array<string>(8 - before.length - after.length).fill('0'), ...after];
  return all.map((g) => g.padStart(4, '0').toLowerCase()).join('');
}

/** Orders backends by address (numerically), then port: the order of LbServiceIr.backends. */
export function compareBackends(
  a: { address: string; port: number },
  b: { address: string; port: number },
): number {
  const ka = addressSortKey(a.address);
  const kb = addressSortKey(b.address);
  return ka < kb ? -1 : ka > kb ? 1 : a.port - b.port;
}

/** The key a service is known by in the datapath: one per VIP, port and protocol. */
export function serviceKeyString(s: { address: string; port: number; protocol: string }): string {
  return `${s.address}|${s.port}|${s.protocol}`;
}

/**
 * Every problem of the IR, not just the first. A service with a problem is one the datapath should not
 * program (`invalidServices` says which); the others are fine on their own.
 */
export function validateServices(ir: ServicesIr): LbIrError[] {
  const errors: LbIrError[] = [];
  const seen = new Map<string, number>();
  ir.services.forEach((s, i) => {
    const p = `services[${i}]`;
    const err = (code: LbIrErrorCode, field: string, message: string): void => {
      errors.push({
        code,
        path: field === '' ? p : `${p}.${field}`,
        message: `${s.name} ${serviceSocket(s)}: ${message}`,
      });
    };
    const family = isIP(s.address);
    if (family === 0) err(LbIrErrorCode.InvalidAddress, 'address', `"${s.address}" is not an IP address`);
    if (!validPort(s.port)) err(LbIrErrorCode.InvalidPort, 'port', `${s.port} is not a port in 1..65535`);
    if (s.protocol !== 'TCP' && s.protocol !== 'UDP')
      err(LbIrErrorCode.InvalidProtocol, 'protocol', `"${String(s.protocol)}" is not TCP or UDP`);
    if (s.algorithm !== 'random' && s.algorithm !== 'maglev')
      err(LbIrErrorCode.InvalidAlgorithm, 'algorithm', `"${String(s.algorithm)}" is not random or maglev`);
    const a = s.sessionAffinity;
    if (a !== undefined) {
      if (a.type !== 'ClientIP')
        err(LbIrErrorCode.InvalidAffinity, 'sessionAffinity.type', `"${String(a.type)}" is not ClientIP`);
      if (
        !Number.isInteger(a.timeoutSeconds) ||
        a.timeoutSeconds < 1 ||
        a.timeoutSeconds > AFFINITY_TIMEOUT_MAX_SECONDS
      )
        err(
          LbIrErrorCode.InvalidAffinity,
          'sessionAffinity.timeoutSeconds',
          `${a.timeoutSeconds} is not a whole number of seconds in 1..${AFFINITY_TIMEOUT_MAX_SECONDS}`,
        );
    }
    const key = serviceKeyString(s);
    const first = seen.get(key);
    if (first !== undefined)
      err(LbIrErrorCode.DuplicateService, '', `services[${first}] has the same address, port and protocol`);
    else seen.set(key, i);
    if (s.backends.length > LB_MAX_BACKENDS_PER_SERVICE)
      err(
        LbIrErrorCode.TooManyBackends,
        'backends',
        `${s.backends.length} backends; the datapath holds at most ${LB_MAX_BACKENDS_PER_SERVICE}`,
      );
    const backends = new Map<string, number>();
    s.backends.forEach((b, j) => {
      const bp = `backends[${j}]`;
      const bf = isIP(b.address);
      if (bf === 0) err(LbIrErrorCode.InvalidAddress, `${bp}.address`, `"${b.address}" is not an IP address`);
      else if (family !== 0 && bf !== family)
        err(
          LbIrErrorCode.FamilyMismatch,
          `${bp}.address`,
          `backend ${b.address} is IPv${bf} and the service address IPv${family}`,
        );
      if (!validPort(b.port))
        err(LbIrErrorCode.InvalidPort, `${bp}.port`, `${b.port} is not a port in 1..65535`);
      if (b.state !== 'active' && b.state !== 'terminating')
        err(LbIrErrorCode.InvalidState, `${bp}.state`, `"${String(b.state)}" is not active or terminating`);
      const bk = `${b.address}|${b.port}`;
      const dup = backends.get(bk);
      if (dup !== undefined)
        err(LbIrErrorCode.DuplicateBackend, bp, `backends[${dup}] has the same address and port`);
      else backends.set(bk, j);
    });
  });
  return errors;
}

/** The indexes of the services that have at least one error (from validateServices). */
export function invalidServices(errors: readonly LbIrError[]): Set<number> {
  const out = new Set<number>();
  for (const e of errors) {
    const m = /^services\[(\d+)\]/.exec(e.path);
    if (m?.[1] !== undefined) out.add(Number(m[1]));
  }
  return out;
}

/**
 * The backends new connections may go to: the active ones; if there are none, the terminating ones
 * (kube-proxy's rule: a service whose every endpoint is shutting down keeps serving on them rather than
 * refusing). Order as in the IR.
 */
export function usableBackends(s: LbServiceIr): readonly LbBackendIr[] {
  const active = s.backends.filter((b) => b.state === 'active');
  return active.length > 0 ? active : s.backends.filter((b) => b.state === 'terminating');
}
