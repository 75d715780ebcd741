/**
 * Flow events from the `skein_flows` ring buffer: bpf/include/skein_flow.h, field for field. The enum
 * values are checked against the object's BTF by test/datapath/btfAlignment.test.ts.
 */

import { address, named, port, struct, u8, u32, u64 } from '../codec.js';

/** enum skein_verdict, by name. */
export const Verdict = { pass: 0, translated: 1, drop: 2, redirect: 3 } as const;
export type Verdict = keyof typeof Verdict;

/** enum skein_reason, by name. */
export const Reason = {
  none: 0,
  lbBackend: 1,
  lbNoBackends: 2,
  lbSlotMissing: 3,
  lbBackendMissing: 4,
  lbFamilyMismatch: 5,
  lbReverse: 6,
  parseTruncated: 7,
  parseFragment: 8,
  parseIpv6Ext: 9,
  parseMalformed: 10,
  // The policy family (bpf/policy.bpf.c) numbers from 32.
  policyAllowed: 32,
  policyNotEnforced: 33,
  policyDenied: 34,
  policyDenyRule: 35,
  policyRedirect: 36,
  ctEstablished: 37,
  ctReply: 38,
  proxyUnavailable: 39,
  proxyUnreachable: 40,
  fromProxy: 41,
  proxyAssignFailed: 42,
} as const;
export type Reason = keyof typeof Reason;

/** enum skein_hook, by name. */
export const Hook = {
  none: 0,
  connect4: 1,
  connect6: 2,
  sendmsg4: 3,
  sendmsg6: 4,
  recvmsg4: 5,
  recvmsg6: 6,
  getpeername4: 7,
  getpeername6: 8,
  tc: 9,
  /** tc ingress of a pod's host-side interface: what the pod sends. */
  policyEgress: 16,
  /** tc egress of it (or the local sender's check of the receiver's ingress): what the pod receives. */
  policyIngress: 17,
} as const;
export type Hook = keyof typeof Hook;

/** The C enum each table mirrors, with the prefix its constants share (SKEIN_VERDICT_PASS -> pass). */
export const FlowEnums = [
  { cName: 'skein_verdict', prefix: 'SKEIN_VERDICT_', values: Verdict },
  { cName: 'skein_reason', prefix: 'SKEIN_REASON_', values: Reason },
  { cName: 'skein_hook', prefix: 'SKEIN_HOOK_', values: Hook },
] as const;

export interface FlowEvent {
  /** CLOCK_MONOTONIC nanoseconds. */
  timestampNs: bigint;
  /** The socket cookie, 0n if none. */
  cookie: bigint;
  source: string;
  /** After translation: the backend. */
  destination: string;
  /** Before translation: the service (equal to destination when nothing was translated). */
  originalDestination: string;
  sourcePort: number;
  /** For a redirect (policy), the proxy port; originalDestinationPort is the one the packet carries. */
  destinationPort: number;
  originalDestinationPort: number;
  /** IPPROTO_* (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6). */
  protocol: number;
  verdict: Verdict;
  reason: Reason;
  hook: Hook;
  /** The interface a tc program saw the packet on, 0 for socket hooks. */
  ifindex: number;
  sourceIdentity: number;
  destinationIdentity: number;
}

export const FlowEventCodec = struct<FlowEvent>('FlowEvent', 'skein_flow_event')
  .field('timestampNs', 'timestamp_ns', u64)
  .field('cookie', 'cookie', u64)
  .field('source', 'saddr', address)
  .field('destination', 'daddr', address)
  .field('originalDestination', 'orig_daddr', address)
  .field('sourcePort', 'sport', port)
  .field('destinationPort', 'dport', port)
  .field('originalDestinationPort', 'orig_dport', port)
  .field('protocol', 'proto', u8)
  .field('verdict', 'verdict', named(u8, Verdict))
  .field('reason', 'reason', named(u8, Reason))
  .field('hook', 'hook', named(u8, Hook))
  .pad('pad0', 2, 2)
  .field('ifindex', 'ifindex', u32)
  .field('sourceIdentity', 'src_identity', u32)
  .field('destinationIdentity', 'dst_identity', u32)
  .build();

/** The ring buffer flow events arrive on (pinned by name: every program family shares it). */
export const FlowRingBuffer = 'skein_flows';
