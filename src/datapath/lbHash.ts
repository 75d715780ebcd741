/**
 * The hashes of service load-balancing. MurmurHash3 (x86, 32-bit) is implemented from its published
 * definition: it is small, fast in BPF (ten multiply-rotate rounds for a flow) and mixes well enough for
 * a lookup table index. The BPF program (bpf/lb.bpf.c, murmur3_words) hashes struct skein_lb_flow with it,
 * and flowHash() here gives the same number, so tests can predict which backend the kernel picks.
 */

import os from 'node:os';
import { encodeAddress } from './codec.js';
import {
  LB_HASH_SEED,
  LB_TAG_SEED,
  type LbFlow,
  LbFlowCodec,
  type Protocol,
  type ServiceKey,
  ServiceKeyCodec,
} from './codecs/lb.js';

const LE = os.endianness() === 'LE';

const rotl = (x: number, r: number): number => ((x << r) | (x >>> (32 - r))) >>> 0;

/**
 * MurmurHash3 x86_32 of `bytes`. Blocks are read in host byte order, as the BPF program loads them
 * (the reference reads them little-endian; on a little-endian host the two agree).
 */
export function murmur3(bytes: Uint8Array, seed = 0): number {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const blocks = buf.length >>> 2;
  let h = seed >>> 0;
  for (let i = 0; i < blocks; i++) {
    let k = LE ? buf.readUInt32LE(i * 4) : buf.readUInt32BE(i * 4);
    k = Math.imul(k, 0xcc9e2d51);
    k = rotl(k, 15);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = rotl(h, 13);
    h = (Math.imul(h, 5) + 0xe6546b64) >>> 0;
  }
  const tail = buf.length & 3;
  if (tail > 0) {
    let k = 0;
    const at = blocks * 4;
    if (tail >= 3) k ^= (buf[at + 2] ?? 0) << 16;
    if (tail >= 2) k ^= (buf[at + 1] ?? 0) << 8;
    k ^= buf[at] ?? 0;
    k = Math.imul(k, 0xcc9e2d51);
    k = rotl(k, 15);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= buf.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Who connects, as the socket layer knows it before the kernel picks a source (see skein_lb.h). */
export type LbClient =
  /** A socket bound to an address (and maybe a port; 0 if not). */
  | { readonly address: string; readonly port: number }
  /** An unbound socket: the client is its network namespace. */
  | { readonly netnsCookie: bigint; readonly port?: number };

/** The bytes of struct skein_lb_flow for a client connecting to a service. */
export function flowBytes(
  client: LbClient,
  service: { address: string; port: number; protocol: Protocol },
): Buffer {
  const bound = 'address' in client;
  const flow: LbFlow = {
    client: bound ? client.address : '::',
    vip: service.address,
    vport: service.port,
    sport: client.port ?? 0,
    protocol: service.protocol,
    bound: bound ? 1 : 0,
  };
  const bytes = LbFlowCodec.encode(flow);
  if (!bound) {
    // The cookie as two host-order words, the low one first (addr[0] = (u32)cookie, addr[1] = cookie >> 32).
    const lo = Number(client.netnsCookie & 0xffff_ffffn);
    const hi = Number(client.netnsCookie >> 32n);
    if (LE) {
      bytes.writeUInt32LE(lo, 0);
      bytes.writeUInt32LE(hi, 4);
    } else {
      bytes.writeUInt32BE(lo, 0);
      bytes.writeUInt32BE(hi, 4);
    }
  }
  return bytes;
}

/** The flow hash the BPF program computes for Maglev services. */
export function flowHash(
  client: LbClient,
  service: { address: string; port: number; protocol: Protocol },
): number {
  return murmur3(flowBytes(client, service), LB_HASH_SEED);
}

/** A service value's tag: 16 bits of the hash of its key, which the program checks (skein_lb.h). */
export function serviceTag(key: ServiceKey): number {
  return murmur3(ServiceKeyCodec.encode(key), LB_TAG_SEED) & 0xffff;
}

/** The bytes a backend is known by in the Maglev permutation: its 16-byte address, then its port. */
export function backendBytes(address: string, port: number): Buffer {
  const out = Buffer.alloc(18);
  encodeAddress(address).copy(out, 0);
  out.writeUInt16BE(port, 16);
  return out;
}
