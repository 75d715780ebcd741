import { isIP } from 'node:net';
import {
  FIRST_CIDR_IDENTITY,
  FIRST_LABEL_IDENTITY,
  IDENTITY_LIMIT,
  type PolicyDirection,
  type PolicyIr,
  type PolicyPort,
  type PolicyRule,
  ReservedIdentity,
} from './policy.js';
import { parsePrefix } from './prefix.js';

/**
 * Stable codes for policy IR problems (docs/errors.md lists each). Translators check their input first, so
 * these point at translator bugs, or at an IR written by hand (tests, the L7 redirect input).
 */
export const PolicyErrorCode = {
  DuplicateIdentity: 'SKEIN_POLICY_DUPLICATE_IDENTITY',
  InvalidIdentity: 'SKEIN_POLICY_INVALID_IDENTITY',
  UnknownIdentity: 'SKEIN_POLICY_UNKNOWN_IDENTITY',
  InvalidPrefix: 'SKEIN_POLICY_INVALID_PREFIX',
  DuplicatePrefix: 'SKEIN_POLICY_DUPLICATE_PREFIX',
  InvalidAddress: 'SKEIN_POLICY_INVALID_ADDRESS',
  DuplicateEndpoint: 'SKEIN_POLICY_DUPLICATE_ENDPOINT',
  InvalidInterface: 'SKEIN_POLICY_INVALID_INTERFACE',
  InvalidPort: 'SKEIN_POLICY_INVALID_PORT',
  InvalidPeers: 'SKEIN_POLICY_INVALID_PEERS',
  RulesNotEnforced: 'SKEIN_POLICY_RULES_NOT_ENFORCED',
  InvalidRedirect: 'SKEIN_POLICY_INVALID_REDIRECT',
  RedirectConflict: 'SKEIN_POLICY_REDIRECT_CONFLICT',
} as const;
export type PolicyErrorCode = (typeof PolicyErrorCode)[keyof typeof PolicyErrorCode];

export interface PolicyError {
  readonly code: PolicyErrorCode;
  /** Dotted path to the offending field: `endpoints[0].ingress.rules[1].ports[0].endPort`. */
  readonly path: string;
  readonly message: string;
}

type Report = (code: PolicyErrorCode, path: string, message: string) => void;

/** Linux interface names: 1 to 15 bytes, no '/', ':' or whitespace, not '.' or '..'. */
const IFNAME = /^[^/:\s]{1,15}$/;

/**
 * Checks a policy IR for everything the datapath could not enforce as written. Returns every problem, not
 * only the first.
 */
export function validatePolicy(ir: PolicyIr): PolicyError[] {
  const errors: PolicyError[] = [];
  const err: Report = (code, path, message) => {
    errors.push({ code, path, message });
  };

  const ids = new Set<number>();
  const labelSets = new Map<string, number>();
  ir.identities.forEach((identity, i) => {
    const p = `identities[${i}]`;
    if (ids.has(identity.id))
      err(PolicyErrorCode.DuplicateIdentity, `${p}.id`, `${identity.id} appears twice`);
    ids.add(identity.id);
    const range = identityRange(identity);
    if (!Number.isInteger(identity.id) || identity.id < range[0] || identity.id >= range[1]) {
      err(
        PolicyErrorCode.InvalidIdentity,
        `${p}.id`,
        `${identity.id} is not a ${identity.kind} identity (${range[0]}..${range[1] - 1})`,
      );
    }
    let key: string;
    if (identity.kind === 'cidr') {
      if (parsePrefix(identity.cidr)?.canonical !== identity.cidr) {
        err(PolicyErrorCode.InvalidPrefix, `${p}.cidr`, `"${identity.cidr}" is not a canonical CIDR`);
      }
      key = `cidr ${identity.cidr}`;
    } else if (identity.kind === 'labels') {
      key = JSON.stringify([identity.namespace, identity.podLabels, identity.namespaceLabels]);
    } else {
      key = `reserved ${identity.name}`;
    }
    const other = labelSets.get(key);
    if (other !== undefined) {
      err(
        PolicyErrorCode.DuplicateIdentity,
        p,
        `identities ${other} and ${identity.id} stand for the same peer`,
      );
    }
    labelSets.set(key, identity.id);
  });

  const prefixes = new Set<string>();
  const addressIdentity = new Map<string, number>();
  ir.ipcache.forEach((e, i) => {
    const p = `ipcache[${i}]`;
    const prefix = parsePrefix(e.prefix);
    if (prefix?.canonical !== e.prefix) {
      err(PolicyErrorCode.InvalidPrefix, `${p}.prefix`, `"${e.prefix}" is not a canonical CIDR`);
    }
    if (prefixes.has(e.prefix))
      err(PolicyErrorCode.DuplicatePrefix, `${p}.prefix`, `${e.prefix} appears twice`);
    prefixes.add(e.prefix);
    if (!ids.has(e.identity)) {
      err(PolicyErrorCode.UnknownIdentity, `${p}.identity`, `identity ${e.identity} is not in identities`);
    }
    const cidr = ir.identities.find((x) => x.id === e.identity);
    if (cidr?.kind === 'cidr') {
      err(
        PolicyErrorCode.InvalidIdentity,
        `${p}.identity`,
        'CIDR identities come from their prefix, not the ipcache',
      );
    }
    if (prefix !== undefined && prefix.bits === prefix.maxBits)
      addressIdentity.set(prefix.address, e.identity);
  });

  const names = new Set<string>();
  const interfaces = new Set<string>();
  ir.endpoints.forEach((ep, i) => {
    const p = `endpoints[${i}]`;
    if (names.has(ep.name)) err(PolicyErrorCode.DuplicateEndpoint, `${p}.name`, `"${ep.name}" appears twice`);
    names.add(ep.name);
    if (!IFNAME.test(ep.interface) || ep.interface === '.' || ep.interface === '..') {
      err(
        PolicyErrorCode.InvalidInterface,
        `${p}.interface`,
        `"${ep.interface}" is not a Linux interface name`,
      );
    } else if (interfaces.has(ep.interface)) {
      err(
        PolicyErrorCode.DuplicateEndpoint,
        `${p}.interface`,
        `interface ${ep.interface} has another endpoint`,
      );
    }
    interfaces.add(ep.interface);
    if (!ids.has(ep.identity)) {
      err(PolicyErrorCode.UnknownIdentity, `${p}.identity`, `identity ${ep.identity} is not in identities`);
    }
    if (ep.addresses.length === 0)
      err(PolicyErrorCode.InvalidAddress, `${p}.addresses`, 'an endpoint needs an address');
    ep.addresses.forEach((a, j) => {
      if (isIP(a) === 0) {
        err(PolicyErrorCode.InvalidAddress, `${p}.addresses[${j}]`, `"${a}" is not an IP address`);
        return;
      }
      const canonical = parsePrefix(a)?.address;
      if (canonical === undefined || addressIdentity.get(canonical) !== ep.identity) {
        err(
          PolicyErrorCode.InvalidAddress,
          `${p}.addresses[${j}]`,
          `${a} needs an ipcache entry with the endpoint's identity ${ep.identity}`,
        );
      }
    });
    validateDirection(ep.ingress, `${p}.ingress`, ids, err);
    validateDirection(ep.egress, `${p}.egress`, ids, err);
  });
  return errors;
}

function identityRange(identity: PolicyIr['identities'][number]): [number, number] {
  switch (identity.kind) {
    case 'labels':
      return [FIRST_LABEL_IDENTITY, FIRST_CIDR_IDENTITY];
    case 'cidr':
      return [FIRST_CIDR_IDENTITY, IDENTITY_LIMIT];
    case 'reserved': {
      const id = ReservedIdentity[identity.name];
      return [id, id + 1];
    }
  }
}

function validateDirection(d: PolicyDirection, p: string, ids: Set<number>, err: Report): void {
  if (!d.enforced && d.rules.length > 0) {
    err(
      PolicyErrorCode.RulesNotEnforced,
      `${p}.rules`,
      'a direction no policy selects allows everything: it has no rules',
    );
  }
  d.rules.forEach((r, i) => {
    validateRule(r, `${p}.rules[${i}]`, ids, err);
  });
  // Two redirects that can match one flow must agree on the proxy port: the datapath keeps one.
  const redirects = d.rules.map((r, i) => ({ r, i })).filter(({ r }) => r.verdict === 'redirect');
  for (let a = 0; a < redirects.length; a++) {
    for (let b = a + 1; b < redirects.length; b++) {
      const x = redirects[a];
      const y = redirects[b];
      if (x === undefined || y === undefined || x.r.proxyPort === y.r.proxyPort) continue;
      if (peersOverlap(x.r, y.r) && portsOverlap(x.r.ports, y.r.ports)) {
        err(
          PolicyErrorCode.RedirectConflict,
          `${p}.rules[${y.i}].proxyPort`,
          `rules ${x.i} and ${y.i} redirect the same traffic to proxy ports ${x.r.proxyPort} and ${y.r.proxyPort}`,
        );
      }
    }
  }
}

function validateRule(r: PolicyRule, p: string, ids: Set<number>, err: Report): void {
  if (r.peers !== 'any') {
    const peers = r.peers;
    const sorted = peers.every((id, i) => i === 0 || (peers[i - 1] ?? 0) < id);
    if (peers.length === 0 || !sorted) {
      err(
        PolicyErrorCode.InvalidPeers,
        `${p}.peers`,
        "must be 'any' or a non-empty, sorted list without repeats",
      );
    }
    peers.forEach((id, j) => {
      if (!ids.has(id))
        err(PolicyErrorCode.UnknownIdentity, `${p}.peers[${j}]`, `identity ${id} is not in identities`);
    });
  }
  r.ports.forEach((port, j) => {
    validatePort(port, `${p}.ports[${j}]`, err);
  });
  if (r.verdict === 'redirect') {
    if (r.proxyPort === undefined || !validPort(r.proxyPort)) {
      err(PolicyErrorCode.InvalidRedirect, `${p}.proxyPort`, 'a redirect needs a proxy port in 1..65535');
    }
    if (r.ports.length === 0 || r.ports.some((x) => x.protocol !== 'TCP')) {
      err(
        PolicyErrorCode.InvalidRedirect,
        `${p}.ports`,
        'only TCP ports can be redirected to the proxy: list them',
      );
    }
  } else if (r.proxyPort !== undefined) {
    err(PolicyErrorCode.InvalidRedirect, `${p}.proxyPort`, `a ${r.verdict} rule has no proxy port`);
  }
}

function validatePort(port: PolicyPort, p: string, err: Report): void {
  if (port.port !== undefined && !validPort(port.port)) {
    err(PolicyErrorCode.InvalidPort, `${p}.port`, `${port.port} is not a port in 1..65535`);
  }
  if (port.endPort !== undefined) {
    if (port.port === undefined) err(PolicyErrorCode.InvalidPort, `${p}.endPort`, 'endPort needs port');
    else if (!validPort(port.endPort) || port.endPort < port.port) {
      err(
        PolicyErrorCode.InvalidPort,
        `${p}.endPort`,
        `${port.endPort} is not a port in ${port.port}..65535`,
      );
    }
  }
}

function validPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

function peersOverlap(a: PolicyRule, b: PolicyRule): boolean {
  if (a.peers === 'any' || b.peers === 'any') return true;
  const bs = new Set(b.peers);
  return a.peers.some((id) => bs.has(id));
}

function portsOverlap(a: readonly PolicyPort[], b: readonly PolicyPort[]): boolean {
  if (a.length === 0 || b.length === 0) return true;
  const range = (x: PolicyPort): [number, number] =>
    x.port === undefined ? [1, 65535] : [x.port, x.endPort ?? x.port];
  return a.some((x) =>
    b.some((y) => {
      if (x.protocol !== y.protocol) return false;
      const [x0, x1] = range(x);
      const [y0, y1] = range(y);
      return x0 <= y1 && y0 <= x1;
    }),
  );
}
