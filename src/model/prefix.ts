/**
 * IP prefixes (CIDRs) as the policy IR uses them: parsed into bytes, written canonically (host bits
 * zero, RFC 5952 IPv6), compared for containment. Pure; no dependency beyond node:net's isIP.
 */

import { isIP } from 'node:net';

export interface Prefix {
  readonly family: 4 | 6;
  /** 4 or 16 bytes, host bits zeroed. */
  readonly bytes: Uint8Array;
  readonly bits: number;
  /** 32 or 128. */
  readonly maxBits: number;
  /** The network address, canonical (`10.0.0.0`, `2001:db8::`). */
  readonly address: string;
  /** `10.0.0.0/16`, `2001:db8::/64`, `10.0.0.5/32`. */
  readonly canonical: string;
}

function ipv4Bytes(text: string): Uint8Array {
  return Uint8Array.from(text.split('.').map(Number));
}

function ipv6Bytes(text: string): Uint8Array {
  const out = new Uint8Array(16);
  let s = text;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  let tail: Uint8Array | undefined;
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    tail = ipv4Bytes(s.slice(lastColon + 1));
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const [head = '', rest] = s.split('::');
  const groups = (g: string): number[] => (g === '' ? [] : g.split(':').map((x) => Number.parseInt(x, 16)));
  const before = groups(head);
  const after = rest === undefined ? [] : groups(rest);
  const all = [...before, ...new Array<number>(8 - before.length - after.length).fill(0), ...after];
  all.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (tail !== undefined) out.set(tail, 12);
  return out;
}

/** RFC 5952: lower case, the longest run (2+) of zero groups as `::`. */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(((bytes[i * 2] ?? 0) << 8) | (bytes[i * 2 + 1] ?? 0));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/**
 * Parses `address/bits` or a bare address (a host prefix). Host bits set below the prefix are cleared
 * in `canonical` (so `10.0.0.1/8` parses, and its canonical form `10.0.0.0/8` differs from the input).
 * Undefined for anything that is not an IP prefix.
 */
export function parsePrefix(text: string): Prefix | undefined {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(addr);
  if (family !== 4 && family !== 6) return undefined;
  const maxBits = family === 4 ? 32 : 128;
  let bits = maxBits;
  if (slash >= 0) {
    const b = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(b)) return undefined;
    bits = Number(b);
    if (bits > maxBits) return undefined;
  }
  const bytes = family === 4 ? ipv4Bytes(addr) : ipv6Bytes(addr);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    bytes[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  const address = formatAddress(bytes);
  return { family, bytes, bits, maxBits, address, canonical: `${address}/${bits}` };
}

/** Whether `inner` lies inside `outer` (same family, at least as long, same leading bits). */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  if (outer.family !== inner.family || inner.bits < outer.bits) return false;
  for (let i = 0; i < outer.bits; i++) {
    const byte = i >> 3;
    const mask = 0x80 >> (i & 7);
    if (((outer.bytes[byte] ?? 0) & mask) !== ((inner.bytes[byte] ?? 0) & mask)) return false;
  }
  return true;
}

/** Orders prefixes: IPv4 first, then by address bytes, then shorter first. */
export function comparePrefixes(a: Prefix, b: Prefix): number {
  if (a.family !== b.family) return a.family - b.family;
  for (let i = 0; i < a.bytes.length; i++) {
    const d = (a.bytes[i] ?? 0) - (b.bytes[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.bits - b.bits;
}
