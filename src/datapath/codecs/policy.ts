/**
 * Codecs for the policy maps: bpf/include/skein_policy.h, field for field. See there for what each map
 * means; src/datapath/policyPlan.ts computes their contents from the policy IR.
 */

import { address, type Codec, named, port, scalar, struct, u8, u32, u64 } from '../codec.js';

/** enum skein_direction, by name: the direction as the pod sees it. */
export const Direction = { ingress: 0, egress: 1 } as const;
export type Direction = keyof typeof Direction;

/** enum skein_policy_verdict, by name. Higher wins when several entries match. */
export const PolicyVerdict = { none: 0, allow: 1, redirect: 2, deny: 3 } as const;
export type PolicyVerdict = keyof typeof PolicyVerdict;

/** The C enums this file mirrors, for the BTF alignment test. */
export const PolicyEnums = [
  { cName: 'skein_direction', prefix: 'SKEIN_DIR_', values: Direction },
  { cName: 'skein_policy_verdict', prefix: 'SKEIN_POLICY_', values: PolicyVerdict },
] as const;

/** skein_endpoint.flags */
export const EndpointFlag = { ingressEnforced: 1, egressEnforced: 2 } as const;

/** Bits of the policy key after prefixlen that always match (ifindex, identity, direction), then proto, port. */
export const POLICY_PREFIX_FIXED = 72;
export const POLICY_PREFIX_PROTO = 80;
export const POLICY_PREFIX_FULL = 96;

/** skein_endpoints value (the key is the host-side ifindex, a u32). */
export interface Endpoint {
  identity: number;
  /** EndpointFlag bits. */
  flags: number;
}

/** skein_ipcache and skein_cidr_ids key: an address and how many of its 128 bits match. */
export interface IpCacheKey {
  prefixLength: number;
  address: string;
}

/** skein_ipcache value. */
export interface IpCacheEntry {
  identity: number;
  /** The host-side interface of a local endpoint with this address, else 0. */
  ifindex: number;
}

/** skein_policy key. */
export interface PolicyKey {
  /** Bits after this field that must match: 72 (any protocol), 80 (any port), up to 96. */
  prefixLength: number;
  ifindex: number;
  /** The remote identity; 0 is any remote. */
  identity: number;
  direction: Direction;
  /** IPPROTO_*, 0 with prefix 72. */
  protocol: number;
  port: number;
}

/** skein_policy value. */
export interface PolicyEntry {
  verdict: PolicyVerdict;
  /** Redirect only, else 0. */
  proxyPort: number;
}

/** skein_ct key. */
export interface CtKey {
  source: string;
  destination: string;
  sourcePort: number;
  destinationPort: number;
  ifindex: number;
  protocol: number;
  direction: Direction;
}

/** skein_ct value. */
export interface CtEntry {
  lastSeenNs: bigint;
  remoteIdentity: number;
  verdict: PolicyVerdict;
  /** SKEIN_CT_SEEN_REPLY (1), SKEIN_CT_CLOSING (2). */
  flags: number;
  proxyPort: number;
}

/** skein_policy_stats value (per CPU, one per flow event reason). */
export interface PolicyCounter {
  packets: bigint;
  bytes: bigint;
}

export const IfindexCodec: Codec<number> = scalar('Ifindex', u32);
export const IdentityCodec: Codec<number> = scalar('Identity', u32);
export const ReasonIndexCodec: Codec<number> = scalar('ReasonIndex', u32);

export const EndpointCodec = struct<Endpoint>('Endpoint', 'skein_endpoint')
  .field('identity', 'identity', u32)
  .field('flags', 'flags', u8)
  .pad('pad0', 1)
  .pad('pad1', 2, 2)
  .build();

export const IpCacheKeyCodec = struct<IpCacheKey>('IpCacheKey', 'skein_ipcache_key')
  .field('prefixLength', 'prefixlen', u32)
  .field('address', 'addr', address)
  .build();

export const IpCacheEntryCodec = struct<IpCacheEntry>('IpCacheEntry', 'skein_ipcache_entry')
  .field('identity', 'identity', u32)
  .field('ifindex', 'ifindex', u32)
  .build();

export const PolicyKeyCodec = struct<PolicyKey>('PolicyKey', 'skein_policy_key')
  .field('prefixLength', 'prefixlen', u32)
  .field('ifindex', 'ifindex', u32)
  .field('identity', 'identity', u32)
  .field('direction', 'direction', named(u8, Direction))
  .field('protocol', 'proto', u8)
  .field('port', 'dport', port)
  .build();

export const PolicyEntryCodec = struct<PolicyEntry>('PolicyEntry', 'skein_policy_entry')
  .field('verdict', 'verdict', named(u8, PolicyVerdict))
  .pad('pad0', 1)
  .field('proxyPort', 'proxy_port', port)
  .build();

export const CtKeyCodec = struct<CtKey>('CtKey', 'skein_ct_key')
  .field('source', 'saddr', address)
  .field('destination', 'daddr', address)
  .field('sourcePort', 'sport', port)
  .field('destinationPort', 'dport', port)
  .field('ifindex', 'ifindex', u32)
  .field('protocol', 'proto', u8)
  .field('direction', 'direction', named(u8, Direction))
  .pad('pad0', 2, 2)
  .build();

export const CtEntryCodec = struct<CtEntry>('CtEntry', 'skein_ct_entry')
  .field('lastSeenNs', 'last_seen_ns', u64)
  .field('remoteIdentity', 'remote_identity', u32)
  .field('verdict', 'verdict', named(u8, PolicyVerdict))
  .field('flags', 'flags', u8)
  .field('proxyPort', 'proxy_port', port)
  .build();

export const PolicyCounterCodec = struct<PolicyCounter>('PolicyCounter', 'skein_policy_counter')
  .field('packets', 'packets', u64)
  .field('bytes', 'bytes', u64)
  .build();

/** The maps of bpf/policy.bpf.c with their codecs (skein_policy_stats is per CPU). */
export const PolicyMaps = {
  endpoints: { name: 'skein_endpoints', key: IfindexCodec, value: EndpointCodec },
  ipcache: { name: 'skein_ipcache', key: IpCacheKeyCodec, value: IpCacheEntryCodec },
  cidrs: { name: 'skein_cidr_ids', key: IpCacheKeyCodec, value: IdentityCodec },
  policy: { name: 'skein_policy', key: PolicyKeyCodec, value: PolicyEntryCodec },
  ct: { name: 'skein_ct', key: CtKeyCodec, value: CtEntryCodec },
  stats: { name: 'skein_policy_stats', key: ReasonIndexCodec, value: PolicyCounterCodec },
} as const;

/** The `const volatile` configuration of bpf/policy.bpf.c, with each variable's size in bytes. */
export const PolicyRodata = {
  /** u8: 0 no flow events, 1 drops, 2 drops and new flows, 3 every packet. */
  flowEvents: { name: 'cfg_flow_events', size: 1 },
  ctTcpTimeoutS: { name: 'cfg_ct_tcp_timeout_s', size: 4 },
  ctOtherTimeoutS: { name: 'cfg_ct_other_timeout_s', size: 4 },
  ctClosingTimeoutS: { name: 'cfg_ct_closing_timeout_s', size: 4 },
  markMask: { name: 'cfg_mark_mask', size: 4 },
  markToProxy: { name: 'cfg_mark_to_proxy', size: 4 },
  markFromProxy: { name: 'cfg_mark_from_proxy', size: 4 },
} as const;

/** The tc programs of bpf/policy.bpf.c and where each attaches on a pod's host-side interface. */
export const PolicyPrograms = {
  /** What the pod sends (its egress): tc ingress of the host side. */
  fromEndpoint: { name: 'skein_policy_from_endpoint', attach: 'ingress' },
  /** What the pod receives (its ingress): tc egress of the host side. */
  toEndpoint: { name: 'skein_policy_to_endpoint', attach: 'egress' },
} as const;

/** The size of skein_policy_stats: one slot per flow event reason below it. */
export const POLICY_STATS_SLOTS = 64;
