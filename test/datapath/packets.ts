/** Crafted packets for BPF_PROG_TEST_RUN: Ethernet + IPv4/IPv6 + TCP/UDP/SCTP/ICMP headers. */

import { encodeAddress } from '../../src/datapath/codec.js';

export const TCP = 6;
export const UDP = 17;
export const SCTP = 132;
export const ICMP = 1;
export const ICMPV6 = 58;
export const SYN = 0x02;
export const ACK = 0x10;
export const FIN = 0x01;

export function ethernet(type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  Buffer.from([2, 0, 0, 0, 0, 2]).copy(h, 0);
  Buffer.from([2, 0, 0, 0, 0, 1]).copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

export function ipv4(
  proto: number,
  src: string,
  dst: string,
  l4: Buffer,
  opts: { fragOffset?: number } = {},
) {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + l4.length, 2);
  h.writeUInt16BE(opts.fragOffset ?? 0, 6);
  h[8] = 64;
  h[9] = proto;
  encodeAddress(src).copy(h, 12, 12, 16);
  encodeAddress(dst).copy(h, 16, 12, 16);
  return ethernet(0x0800, Buffer.concat([h, l4]));
}

export function ipv6(nextHeader: number, src: string, dst: string, l4: Buffer): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(l4.length, 4);
  h[6] = nextHeader;
  h[7] = 64;
  encodeAddress(src).copy(h, 8);
  encodeAddress(dst).copy(h, 24);
  return ethernet(0x86dd, Buffer.concat([h, l4]));
}

/** A 20-byte TCP header. */
export function tcp(sport: number, dport: number, flags: number): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b[12] = 5 << 4;
  b[13] = flags;
  return b;
}

/** An 8-byte UDP header (SCTP's common header starts the same way). */
export function ports(sport: number, dport: number, size = 8): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  return b;
}

export function icmp(type: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = type;
  return b;
}

/** A `struct __sk_buff` for the test run's context (192 bytes): only mark and ifindex set. */
export function skbContext(opts: { mark?: number; ifindex?: number } = {}): Buffer {
  const ctx = Buffer.alloc(192);
  ctx.writeUInt32LE(opts.mark ?? 0, 8);
  ctx.writeUInt32LE(opts.ifindex ?? 0, 40);
  return ctx;
}
