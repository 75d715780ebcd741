/**
 * The policy IR as the contents of the policy maps (bpf/include/skein_policy.h). Pure: the same IR and
 * interface indexes give the same entries, in the same order. src/datapath/policy.ts writes the
 * difference between two plans to the kernel.
 *
 * Two steps need care:
 * - Port ranges become the aligned prefixes that cover them exactly (1000-1999 is 1000/13 + 1008/12 …),
 *   because skein_policy is an LPM trie over protocol and port.
 * - Overlapping entries are flattened: each entry stores the highest verdict of every entry of its
 *   (endpoint, identity, direction) that covers it, since a lookup returns only the longest match. An
 *   entry that would say what its nearest cover says is left out.
 */

import type { PolicyIr, PolicyPort, PolicyRule } from '../model/policy.js';
import { parsePrefix } from '../model/prefix.js';
import {
  type Direction,
  type Endpoint,
  EndpointFlag,
  type IpCacheEntry,
  type IpCacheKey,
  POLICY_PREFIX_FIXED,
  type PolicyEntry,
  type PolicyKey,
  type PolicyVerdict,
} from './codecs/policy.js';

/** IPPROTO_* of the protocols the IR names. */
export const PROTOCOL_NUMBER = { TCP: 6, UDP: 17, SCTP: 132 } as const;

export interface PolicyPlan {
  readonly endpoints: readonly (readonly [number, Endpoint])[];
  readonly ipcache: readonly (readonly [IpCacheKey, IpCacheEntry])[];
  readonly cidrs: readonly (readonly [IpCacheKey, number])[];
  readonly policy: readonly (readonly [PolicyKey, PolicyEntry])[];
  /** The interfaces to attach to: ifindex → endpoint name. */
  readonly interfaces: ReadonlyMap<number, string>;
  /** Endpoints whose interface has no index (not there yet): left out of the plan. */
  readonly missing: readonly string[];
}

/** `10.0.0.0/8` → the LPM key (IPv4 is mapped: 96 + 8 bits). */
export function lpmKey(prefix: string): IpCacheKey {
  const p = parsePrefix(prefix);
  if (p === undefined)
    throw new RangeError(`Cannot use ${JSON.stringify(prefix)} as a prefix: it is not a CIDR`);
  return { prefixLength: p.family === 4 ? 96 + p.bits : p.bits, address: p.address };
}

/** The aligned blocks [port, port + 2^(16 - bits)) that cover lo..hi exactly, in order. */
export function portRangePrefixes(lo: number, hi: number): { port: number; bits: number }[] {
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 0 || hi > 65535 || lo > hi) {
    throw new RangeError(`Cannot cover ports ${lo}..${hi}: it must be a range within 0..65535`);
  }
  const out: { port: number; bits: number }[] = [];
  let port = lo;
  // At most 32 blocks: each step at least doubles the alignment or halves what is left.
  for (let i = 0; i < 64 && port <= hi; i++) {
    let size = 1;
    while (size < 65536 && port % (size * 2) === 0 && port + size * 2 - 1 <= hi) size *= 2;
    out.push({ port, bits: 16 - Math.log2(size) });
    port += size;
  }
  return out;
}

/** The (protocol, port) part of policy keys for one rule's ports. */
function portKeys(ports: readonly PolicyPort[]): { prefixLength: number; protocol: number; port: number }[] {
  if (ports.length === 0) return [{ prefixLength: POLICY_PREFIX_FIXED, protocol: 0, port: 0 }];
  return ports.flatMap((p) => {
    const protocol = PROTOCOL_NUMBER[p.protocol];
    if (p.port === undefined) return [{ prefixLength: POLICY_PREFIX_FIXED + 8, protocol, port: 0 }];
    return portRangePrefixes(p.port, p.endPort ?? p.port).map((b) => ({
      prefixLength: POLICY_PREFIX_FIXED + 8 + b.bits,
      protocol,
      port: b.port,
    }));
  });
}

const RANK: Readonly<Record<PolicyRule['verdict'], number>> = { allow: 1, redirect: 2, deny: 3 };

interface Candidate {
  readonly bits: number; // after the fixed 72: 0..24
  readonly value: number; // proto << 16 | port
  rank: number;
  proxyPort: number;
}

function covers(outer: Candidate, inner: Candidate): boolean {
  if (outer.bits > inner.bits) return false;
  const shift = 24 - outer.bits;
  return Math.floor(outer.value / 2 ** shift) === Math.floor(inner.value / 2 ** shift);
}

/** Higher rank wins; between two redirects, the lower proxy port (the validator reports such conflicts). */
function better(a: { rank: number; proxyPort: number }, b: { rank: number; proxyPort: number }): boolean {
  return a.rank > b.rank || (a.rank === b.rank && a.rank === RANK.redirect && a.proxyPort < b.proxyPort);
}

/** Flattens one (endpoint, identity, direction) group; see the module comment. */
export function flatten(candidates: readonly Candidate[]): Candidate[] {
  const merged = new Map<string, Candidate>();
  for (const c of candidates) {
    const k = `${c.bits}/${c.value}`;
    const seen = merged.get(k);
    if (seen === undefined) merged.set(k, { ...c });
    else if (better(c, seen)) {
      seen.rank = c.rank;
      seen.proxyPort = c.proxyPort;
    }
  }
  const list = [...merged.values()].sort((a, b) => a.bits - b.bits || a.value - b.value);
  const effective = list.map((e) => {
    const best = { rank: e.rank, proxyPort: e.proxyPort };
    for (const c of list) {
      if (c !== e && covers(c, e) && better(c, best)) {
        best.rank = c.rank;
        best.proxyPort = c.proxyPort;
      }
    }
    return { ...e, ...best };
  });
  const kept: Candidate[] = [];
  for (const e of effective) {
    let nearest: Candidate | undefined;
    for (const k of kept) if (covers(k, e) && (nearest === undefined || k.bits > nearest.bits)) nearest = k;
    if (nearest !== undefined && nearest.rank === e.rank && nearest.proxyPort === e.proxyPort) continue;
    kept.push(e);
  }
  return kept;
}

const VERDICT_BY_RANK: Readonly<Record<number, PolicyVerdict>> = { 1: 'allow', 2: 'redirect', 3: 'deny' };

/** The maps' contents for `ir`, with `ifindexes` (interface name → index) from the node. */
export function planPolicy(ir: PolicyIr, ifindexes: ReadonlyMap<string, number>): PolicyPlan {
  const endpoints: [number, Endpoint][] = [];
  const interfaces = new Map<number, string>();
  const missing: string[] = [];
  const localIfindex = new Map<string, number>();
  const policy: [PolicyKey, PolicyEntry][] = [];

  for (const ep of ir.endpoints) {
    const ifindex = ifindexes.get(ep.interface);
    if (ifindex === undefined) {
      missing.push(ep.name);
      continue;
    }
    interfaces.set(ifindex, ep.name);
    for (const a of ep.addresses) {
      const p = parsePrefix(a);
      if (p !== undefined) localIfindex.set(p.canonical, ifindex);
    }
    const flags =
      (ep.ingress.enforced ? EndpointFlag.ingressEnforced : 0) |
      (ep.egress.enforced ? EndpointFlag.egressEnforced : 0);
    endpoints.push([ifindex, { identity: ep.identity, flags }]);
    for (const [direction, d] of [
      ['ingress', ep.ingress],
      ['egress', ep.egress],
    ] as const) {
      if (!d.enforced) continue;
      policy.push(...directionEntries(ifindex, direction, d.rules));
    }
  }

  const ipcache = ir.ipcache.map(
    (e) =>
      [
        lpmKey(e.prefix),
        { identity: e.identity, ifindex: localIfindex.get(parsePrefix(e.prefix)?.canonical ?? '') ?? 0 },
      ] as const,
  );

  const cidrs: (readonly [IpCacheKey, number])[] = [];
  const cidrKeys = new Set<string>();
  let v6CoversMapped = false;
  const mapped = parsePrefix('::ffff:0:0/96');
  for (const identity of ir.identities) {
    if (identity.kind !== 'cidr') continue;
    const key = lpmKey(identity.cidr);
    cidrs.push([key, identity.id]);
    cidrKeys.add(`${key.prefixLength} ${key.address}`);
    const p = parsePrefix(identity.cidr);
    if (
      p?.family === 6 &&
      mapped !== undefined &&
      p.bits <= 96 &&
      parsePrefix(`${mapped.address}/${p.bits}`)?.address === p.address
    ) {
      v6CoversMapped = true;
    }
  }
  // An IPv6 prefix short enough to cover ::ffff:0:0/96 would give IPv4 addresses its identity: the
  // mapped range gets "no CIDR identity" unless an IPv4 0.0.0.0/0 (the same key) already speaks for it.
  if (v6CoversMapped && !cidrKeys.has('96 0.0.0.0'))
    cidrs.push([{ prefixLength: 96, address: '0.0.0.0' }, 0]);

  endpoints.sort((a, b) => a[0] - b[0]);
  return { endpoints, ipcache, cidrs, policy, interfaces, missing };
}

function directionEntries(
  ifindex: number,
  direction: Direction,
  rules: readonly PolicyRule[],
): [PolicyKey, PolicyEntry][] {
  const groups = new Map<number, Candidate[]>();
  for (const r of rules) {
    const identities = r.peers === 'any' ? [0] : r.peers;
    const keys = portKeys(r.ports);
    for (const identity of identities) {
      const list = groups.get(identity) ?? [];
      for (const k of keys) {
        list.push({
          bits: k.prefixLength - POLICY_PREFIX_FIXED,
          value: k.protocol * 65536 + k.port,
          rank: RANK[r.verdict],
          proxyPort: r.verdict === 'redirect' ? (r.proxyPort ?? 0) : 0,
        });
      }
      groups.set(identity, list);
    }
  }
  const out: [PolicyKey, PolicyEntry][] = [];
  for (const identity of [...groups.keys()].sort((a, b) => a - b)) {
    for (const c of flatten(groups.get(identity) ?? [])) {
      out.push([
        {
          prefixLength: POLICY_PREFIX_FIXED + c.bits,
          ifindex,
          identity,
          direction,
          protocol: Math.floor(c.value / 65536),
          port: c.value % 65536,
        },
        { verdict: VERDICT_BY_RANK[c.rank] ?? 'none', proxyPort: c.proxyPort },
      ]);
    }
  }
  return out;
}
