import { isIP } from 'node:net';
import type { Ir, IrListener, IrMatch, IrPathModifier, IrRoute, IrWeightedBackend } from './ir.js';
import { ORIGINAL_DESTINATION_BACKEND } from './names.js';

/**
 * Stable codes for IR problems. They are part of Skein's interface (logs, status, tests match on them),
 * so a code is never renamed or reused; docs/errors.md lists each one.
 */
export const IrErrorCode = {
  DuplicateName: 'SKEIN_IR_DUPLICATE_NAME',
  DuplicateBind: 'SKEIN_IR_DUPLICATE_BIND',
  InvalidAddress: 'SKEIN_IR_INVALID_ADDRESS',
  InvalidPort: 'SKEIN_IR_INVALID_PORT',
  InvalidPath: 'SKEIN_IR_INVALID_PATH',
  InvalidRegex: 'SKEIN_IR_INVALID_REGEX',
  InvalidWeight: 'SKEIN_IR_INVALID_WEIGHT',
  NoBackends: 'SKEIN_IR_NO_BACKENDS',
  UnknownBackend: 'SKEIN_IR_UNKNOWN_BACKEND',
  UnknownSecret: 'SKEIN_IR_UNKNOWN_SECRET',
  InvalidStatus: 'SKEIN_IR_INVALID_STATUS',
  InvalidHostname: 'SKEIN_IR_INVALID_HOSTNAME',
  ProtocolMismatch: 'SKEIN_IR_PROTOCOL_MISMATCH',
  InvalidTransparent: 'SKEIN_IR_INVALID_TRANSPARENT',
  InvalidOriginalDestination: 'SKEIN_IR_INVALID_ORIGINAL_DESTINATION',
} as const;
export type IrErrorCode = (typeof IrErrorCode)[keyof typeof IrErrorCode];

export interface IrError {
  readonly code: IrErrorCode;
  /** Dotted path to the offending field, e.g. `listeners[0].virtualHosts[1].routes[2].match.path`. */
  readonly path: string;
  readonly message: string;
}

/**
 * Checks an IR for everything Envoy would reject or that would route to nowhere. It returns every
 * problem it finds, not just the first, so one bad route is reported alongside the others.
 */
export function validate(ir: Ir): IrError[] {
  const errors: IrError[] = [];
  const err = (code: IrErrorCode, path: string, message: string): void => {
    errors.push({ code, path, message });
  };

  const backendNames = uniqueNames(ir.backends, 'backends', err);
  const secretNames = uniqueNames(ir.secrets, 'secrets', err);
  uniqueNames(ir.listeners, 'listeners', err);

  ir.backends.forEach((b, i) => {
    validateOriginalDestination(b, `backends[${i}]`, err);
    b.endpoints.forEach((e, j) => {
      const p = `backends[${i}].endpoints[${j}]`;
      if (isIP(e.address) === 0)
        err(IrErrorCode.InvalidAddress, `${p}.address`, `"${e.address}" is not an IP address`);
      if (!validPort(e.port))
        err(IrErrorCode.InvalidPort, `${p}.port`, `${e.port} is not a port in 1..65535`);
    });
  });

  const binds = new Map<string, string>();
  ir.listeners.forEach((l, i) => {
    const p = `listeners[${i}]`;
    validateListener(l, p, err, backendNames, secretNames);
    // UDP and TCP sockets on one address and port are distinct binds.
    const bind = `${l.address}:${l.port}${l.protocol === 'UDP' ? '/udp' : ''}`;
    const other = binds.get(bind);
    if (other !== undefined)
      err(IrErrorCode.DuplicateBind, p, `listener ${l.name} binds ${bind}, as does ${other}`);
    binds.set(bind, l.name);
  });
  return errors;
}

type Report = (code: IrErrorCode, path: string, message: string) => void;

/** The original-destination backend has one name, no endpoints and no TLS (it is not a pool). */
function validateOriginalDestination(b: Ir['backends'][number], p: string, err: Report): void {
  const od = b.originalDestination;
  if (od === undefined) {
    if (b.name === ORIGINAL_DESTINATION_BACKEND)
      err(
        IrErrorCode.InvalidOriginalDestination,
        `${p}.originalDestination`,
        `"${b.name}" is reserved for the original-destination backend`,
      );
    return;
  }
  if (b.name !== ORIGINAL_DESTINATION_BACKEND)
    err(
      IrErrorCode.InvalidOriginalDestination,
      `${p}.name`,
      `an original-destination backend is named "${ORIGINAL_DESTINATION_BACKEND}", not "${b.name}"`,
    );
  if (b.endpoints.length > 0)
    err(
      IrErrorCode.InvalidOriginalDestination,
      `${p}.endpoints`,
      'an original-destination backend has no endpoints: each connection names its own',
    );
  if (b.tls !== undefined)
    err(
      IrErrorCode.InvalidOriginalDestination,
      `${p}.tls`,
      'an original-destination backend does not originate TLS',
    );
  if (b.protocol !== 'http1')
    err(
      IrErrorCode.InvalidOriginalDestination,
      `${p}.protocol`,
      `an original-destination backend speaks http1, not ${b.protocol}`,
    );
  const mark = od.upstreamMark;
  if (mark !== undefined && !(Number.isInteger(mark) && mark > 0 && mark <= 0xffff_ffff))
    err(
      IrErrorCode.InvalidOriginalDestination,
      `${p}.originalDestination.upstreamMark`,
      `${mark} is not a mark in 1..2^32-1`,
    );
}

function uniqueNames(items: readonly { name: string }[], path: string, err: Report): Set<string> {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (seen.has(item.name))
      err(IrErrorCode.DuplicateName, `${path}[${i}].name`, `"${item.name}" appears twice`);
    seen.add(item.name);
  });
  return seen;
}

function validateListener(
  l: IrListener,
  p: string,
  err: Report,
  backends: Set<string>,
  secrets: Set<string>,
): void {
  if (isIP(l.address) === 0)
    err(IrErrorCode.InvalidAddress, `${p}.address`, `"${l.address}" is not an IP address`);
  if (!validPort(l.port)) err(IrErrorCode.InvalidPort, `${p}.port`, `${l.port} is not a port in 1..65535`);
  if (l.transparent === true) {
    if (l.protocol !== 'HTTP')
      err(
        IrErrorCode.InvalidTransparent,
        `${p}.protocol`,
        `a transparent listener is HTTP, not ${l.protocol}`,
      );
    // Envoy reads an accepted connection's local address (the original destination) only from a
    // listener on the wildcard address; for one bound to an address it reports that address.
    if (l.address !== '0.0.0.0' && l.address !== '::')
      err(
        IrErrorCode.InvalidTransparent,
        `${p}.address`,
        `a transparent listener binds 0.0.0.0 or ::, not ${l.address}`,
      );
  }
  // Forwarding to the original destination from an ordinary listener would send each request back to
  // the listener itself.
  const usesOriginal = (list: readonly IrWeightedBackend[] | undefined): boolean =>
    list?.some((b) => b.backend === ORIGINAL_DESTINATION_BACKEND) === true;
  if (l.transparent !== true) {
    l.virtualHosts.forEach((vh, j) => {
      vh.routes.forEach((r, k) => {
        if (
          (r.action.kind === 'forward' && usesOriginal(r.action.backends)) ||
          r.mirrors?.some((m) => m.backend === ORIGINAL_DESTINATION_BACKEND) === true
        )
          err(
            IrErrorCode.InvalidOriginalDestination,
            `${p}.virtualHosts[${j}].routes[${k}].action`,
            `only a transparent listener's routes can send to ${ORIGINAL_DESTINATION_BACKEND}`,
          );
      });
    });
    l.l4Routes?.forEach((r, j) => {
      if (usesOriginal(r.backends))
        err(
          IrErrorCode.InvalidOriginalDestination,
          `${p}.l4Routes[${j}].backends`,
          `only a transparent listener's routes can send to ${ORIGINAL_DESTINATION_BACKEND}`,
        );
    });
  }
  const http = l.protocol === 'HTTP' || l.protocol === 'HTTPS';
  // The shape a protocol needs: HTTP(S) routes requests, the others route connections.
  if (!http && l.virtualHosts.length > 0) {
    err(
      IrErrorCode.ProtocolMismatch,
      `${p}.virtualHosts`,
      `a ${l.protocol} listener routes connections, not requests`,
    );
  }
  if (http && (l.l4Routes?.length ?? 0) > 0) {
    err(
      IrErrorCode.ProtocolMismatch,
      `${p}.l4Routes`,
      `an ${l.protocol} listener routes requests, not connections`,
    );
  }
  const needsTls = l.protocol === 'HTTPS' || l.protocol === 'TLS';
  if (needsTls && l.tls === undefined)
    err(IrErrorCode.ProtocolMismatch, `${p}.tls`, `a ${l.protocol} listener needs tls`);
  if (!needsTls && l.tls !== undefined) {
    err(IrErrorCode.ProtocolMismatch, `${p}.tls`, `a ${l.protocol} listener does not terminate TLS`);
  }
  if (l.tls !== undefined) {
    if (l.tls.mode === 'Passthrough' && (l.protocol !== 'TLS' || l.tls.certificates.length > 0)) {
      err(
        IrErrorCode.ProtocolMismatch,
        `${p}.tls.mode`,
        'Passthrough is for TLS listeners and takes no certificates',
      );
    }
    if (l.tls.mode === 'Terminate' && l.tls.certificates.length === 0) {
      err(
        IrErrorCode.UnknownSecret,
        `${p}.tls.certificates`,
        'terminating TLS needs at least one certificate',
      );
    }
    l.tls.certificates.forEach((c, j) => {
      c.hostnames.forEach((h, k) => {
        if (!validHostname(h)) {
          err(
            IrErrorCode.InvalidHostname,
            `${p}.tls.certificates[${j}].hostnames[${k}]`,
            `"${h}" is not a hostname`,
          );
        }
      });
      if (c.secretNames.length === 0) {
        err(
          IrErrorCode.UnknownSecret,
          `${p}.tls.certificates[${j}].secretNames`,
          'a certificate set needs a secret',
        );
      }
      c.secretNames.forEach((s, k) => {
        if (!secrets.has(s)) {
          err(
            IrErrorCode.UnknownSecret,
            `${p}.tls.certificates[${j}].secretNames[${k}]`,
            `no secret named "${s}"`,
          );
        }
      });
    });
  }
  l.virtualHosts.forEach((vh, j) => {
    const vp = `${p}.virtualHosts[${j}]`;
    vh.hostnames.forEach((h, k) => {
      if (!validHostname(h))
        err(IrErrorCode.InvalidHostname, `${vp}.hostnames[${k}]`, `"${h}" is not a hostname`);
    });
    vh.routes.forEach((r, k) => {
      validateRoute(r, `${vp}.routes[${k}]`, err, backends);
    });
  });
  l.l4Routes?.forEach((r, j) => {
    const rp = `${p}.l4Routes[${j}]`;
    r.hostnames.forEach((h, k) => {
      if (!validHostname(h))
        err(IrErrorCode.InvalidHostname, `${rp}.hostnames[${k}]`, `"${h}" is not a hostname`);
    });
    if (l.protocol !== 'TLS' && r.hostnames.length > 0) {
      err(
        IrErrorCode.ProtocolMismatch,
        `${rp}.hostnames`,
        `a ${l.protocol} listener cannot route by server name`,
      );
    }
    validateWeighted(r.backends, `${rp}.backends`, err, backends, false);
  });
}

function validateRoute(r: IrRoute, p: string, err: Report, backends: Set<string>): void {
  validateMatch(r.match, `${p}.match`, err);
  const a = r.action;
  switch (a.kind) {
    case 'directResponse':
      if (!Number.isInteger(a.status) || a.status < 200 || a.status > 599) {
        err(IrErrorCode.InvalidStatus, `${p}.action.status`, `${a.status} is not an HTTP status in 200..599`);
      }
      break;
    case 'redirect':
      if (![301, 302, 303, 307, 308].includes(a.statusCode)) {
        err(IrErrorCode.InvalidStatus, `${p}.action.statusCode`, `${a.statusCode} is not a redirect status`);
      }
      if (a.port !== undefined && !validPort(a.port)) {
        err(IrErrorCode.InvalidPort, `${p}.action.port`, `${a.port} is not a port in 1..65535`);
      }
      if (a.hostname !== undefined && !validHostname(a.hostname)) {
        err(IrErrorCode.InvalidHostname, `${p}.action.hostname`, `"${a.hostname}" is not a hostname`);
      }
      validatePathModifier(a.path, r, `${p}.action.path`, err);
      break;
    case 'forward':
      if (a.backends.length === 0)
        err(IrErrorCode.NoBackends, `${p}.action.backends`, 'a forward action needs a backend');
      validateWeighted(a.backends, `${p}.action.backends`, err, backends, (a.invalidBackendWeight ?? 0) > 0);
      break;
  }
  if (r.rewrite !== undefined) {
    if (a.kind !== 'forward')
      err(IrErrorCode.ProtocolMismatch, `${p}.rewrite`, 'only forwarded requests are rewritten');
    if (r.rewrite.hostname !== undefined && !validHostname(r.rewrite.hostname)) {
      err(IrErrorCode.InvalidHostname, `${p}.rewrite.hostname`, `"${r.rewrite.hostname}" is not a hostname`);
    }
    validatePathModifier(r.rewrite.path, r, `${p}.rewrite.path`, err);
  }
  r.mirrors?.forEach((m, i) => {
    if (!backends.has(m.backend)) {
      err(IrErrorCode.UnknownBackend, `${p}.mirrors[${i}].backend`, `no backend named "${m.backend}"`);
    }
    if (m.percent !== undefined && !(m.percent >= 0 && m.percent <= 100)) {
      err(
        IrErrorCode.InvalidWeight,
        `${p}.mirrors[${i}].percent`,
        `${m.percent} is not a percentage in 0..100`,
      );
    }
  });
  if (r.retry !== undefined) {
    if (!Number.isInteger(r.retry.attempts) || r.retry.attempts < 0) {
      err(
        IrErrorCode.InvalidWeight,
        `${p}.retry.attempts`,
        `${r.retry.attempts} is not a non-negative integer`,
      );
    }
    if (r.retry.backoffMs !== undefined && !(Number.isFinite(r.retry.backoffMs) && r.retry.backoffMs >= 0)) {
      err(IrErrorCode.InvalidWeight, `${p}.retry.backoffMs`, `${r.retry.backoffMs} is not a duration in ms`);
    }
    r.retry.statusCodes.forEach((c, i) => {
      if (!Number.isInteger(c) || c < 400 || c > 599) {
        err(
          IrErrorCode.InvalidStatus,
          `${p}.retry.statusCodes[${i}]`,
          `${c} is not an error status in 400..599`,
        );
      }
    });
  }
}

function validateWeighted(
  list: readonly IrWeightedBackend[],
  p: string,
  err: Report,
  backends: Set<string>,
  hasInvalidShare: boolean,
): void {
  list.forEach((b, i) => {
    const bp = `${p}[${i}]`;
    if (!backends.has(b.backend))
      err(IrErrorCode.UnknownBackend, `${bp}.backend`, `no backend named "${b.backend}"`);
    if (!Number.isInteger(b.weight) || b.weight < 0) {
      err(IrErrorCode.InvalidWeight, `${bp}.weight`, `${b.weight} is not a non-negative integer`);
    }
  });
  // All-zero weights would make Envoy reject the weighted cluster; translators send a 500 instead.
  if (list.length > 0 && !hasInvalidShare && list.every((b) => b.weight === 0)) {
    err(IrErrorCode.InvalidWeight, p, 'every weight is 0; use a direct response instead');
  }
}

/** ReplacePrefixMatch only makes sense after a PathPrefix match: it replaces what that match matched. */
function validatePathModifier(m: IrPathModifier | undefined, r: IrRoute, p: string, err: Report): void {
  if (m === undefined) return;
  if (!m.value.startsWith('/'))
    err(IrErrorCode.InvalidPath, `${p}.value`, `"${m.value}" does not start with "/"`);
  if (m.kind === 'ReplacePrefixMatch' && r.match.path.kind !== 'PathPrefix') {
    err(IrErrorCode.InvalidPath, `${p}.kind`, 'ReplacePrefixMatch needs a PathPrefix match');
  }
}

function validateMatch(m: IrMatch, p: string, err: Report): void {
  if (m.path.kind === 'RegularExpression') {
    if (!validRegex(m.path.value))
      err(IrErrorCode.InvalidRegex, `${p}.path.value`, `"${m.path.value}" does not compile`);
  } else if (!m.path.value.startsWith('/')) {
    err(IrErrorCode.InvalidPath, `${p}.path.value`, `"${m.path.value}" does not start with "/"`);
  }
  for (const [field, list] of [
    ['headers', m.headers],
    ['queryParams', m.queryParams],
  ] as const) {
    list?.forEach((h, i) => {
      if (h.kind === 'RegularExpression' && !validRegex(h.value)) {
        err(IrErrorCode.InvalidRegex, `${p}.${field}[${i}].value`, `"${h.value}" does not compile`);
      }
    });
  }
}

export function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

const HOSTNAME = /^(\*\.)?([a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function validHostname(h: string): boolean {
  return h === '*' || (h.length <= 253 && HOSTNAME.test(h));
}

/**
 * Envoy compiles regexes with RE2. JavaScript's engine is a close enough first check: it catches the
 * syntax errors users make; RE2-only rejections (backreferences, lookaround) are caught here too.
 */
export function validRegex(source: string): boolean {
  if (/\\[1-9]|\(\?[=!<]/.test(source)) return false;
  try {
    new RegExp(source, 'u');
    return true;
  } catch {
    return false;
  }
}
