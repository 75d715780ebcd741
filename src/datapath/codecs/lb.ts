/**
 * Codecs for the service load-balancing maps: bpf/include/skein_lb.h, field for field. See there for
 * what each map means and how updates are ordered.
 */

import {
  address,
  type Codec,
  type FieldType,
  named,
  port,
  scalar,
  struct,
  u8,
  u16,
  u32,
  u64,
} from '../codec.js';

/** IPPROTO_* of the protocols a service can have. */
export const Protocol = { TCP: 6, UDP: 17 } as const;
export type Protocol = keyof typeof Protocol;

/** enum skein_lb_algorithm, by name. */
export const Algorithm = { random: 0, maglev: 1 } as const;
export type Algorithm = keyof typeof Algorithm;

/** enum skein_lb_svc_flag: bits of Service.flags. */
export const ServiceFlag = { affinity: 1, inline: 2 } as const;

/** SKEIN_LB_INLINE_SLOTS: the slots a service value holds inline. */
export const INLINE_SLOTS = 8;

/** The C enums the tables above mirror, with the prefix their constants share. */
export const LbEnums = [
  { cName: 'skein_lb_algorithm', prefix: 'SKEIN_LB_ALGORITHM_', values: Algorithm },
  { cName: 'skein_lb_svc_flag', prefix: 'SKEIN_LB_SVC_FLAG_', values: ServiceFlag },
] as const;

/** SKEIN_LB_HASH_SEED: the seed of the Maglev flow hash. */
export const LB_HASH_SEED = 0x736b6e31;
/** SKEIN_LB_TAG_SEED: the seed of a service value's tag. */
export const LB_TAG_SEED = 0x74616731;

/** skein_services key: a service address (VIP), port and protocol. */
export interface ServiceKey {
  address: string;
  port: number;
  protocol: Protocol;
}

/** skein_services value. */
export interface Service {
  /** This version of the backends (0: none); names its slots in skein_slots (unless inline) and members. */
  slotSet: number;
  /** How many slots (0..count-1) the live set has; 0 refuses connections. */
  count: number;
  /** lbHash.serviceTag of the value's own key. */
  tag: number;
  /** Stable for the service's lifetime; names it in skein_affinity. */
  id: number;
  /** With the affinity flag: idle seconds before a client picks again. */
  affinityTimeoutSeconds: number;
  algorithm: Algorithm;
  /** ServiceFlag bits. */
  flags: number;
  /** With ServiceFlag.inline: INLINE_SLOTS backend ids, slot i at index i % count. */
  inlineSlots: number[];
}

/** skein_slots key. */
export interface SlotKey {
  slotSet: number;
  slot: number;
}

/** skein_slots value. */
export interface Slot {
  backendId: number;
}

/** skein_members key: is this backend in this slot set? */
export interface MemberKey {
  slotSet: number;
  backendId: number;
}

/** skein_members value. */
export interface Member {
  /** How many slots of the set name the backend. */
  slots: number;
}

/** skein_backends value (the key is the backend id, a u32). */
export interface Backend {
  address: string;
  port: number;
}

/** skein_affinity key: one client (its network namespace and bound address) of one service. */
export interface AffinityKey {
  netnsCookie: bigint;
  /** The socket's bound source address; `::` when unbound. */
  address: string;
  serviceId: number;
}

/** skein_affinity value. */
export interface Affinity {
  backendId: number;
  /** CLOCK_MONOTONIC nanoseconds of the client's last connection. */
  lastNs: bigint;
}

/** struct skein_lb_flow: what the Maglev hash reads (see lbHash.ts). */
export interface LbFlow {
  /** The bound source address; for an unbound client its netns cookie fills the first 8 bytes instead. */
  client: string;
  vip: string;
  vport: number;
  sport: number;
  protocol: Protocol;
  /** 1: client is an address, 0: a netns cookie. */
  bound: number;
}

/** skein_sock_revnat value (socket storage): a connected socket's backend and the service it stands for. */
export interface SockRevNat {
  backend: string;
  backendPort: number;
  vip: string;
  vipPort: number;
}

/** skein_revnat key: a socket (its cookie) and the backend it was sent to. */
export interface RevNatKey {
  cookie: bigint;
  address: string;
  port: number;
}

/** skein_revnat value: the service address to show for that backend. */
export interface RevNat {
  address: string;
  port: number;
}

export const ServiceKeyCodec = struct<ServiceKey>('ServiceKey', 'skein_lb_svc_key')
  .field('address', 'addr', address)
  .field('port', 'port', port)
  .field('protocol', 'proto', named(u8, Protocol))
  .pad('pad0', 1)
  .build();

/** `__u32 inline_slots[SKEIN_LB_INLINE_SLOTS]`. */
const inlineSlotsField: FieldType<number[]> = {
  size: 4 * INLINE_SLOTS,
  align: 4,
  write: (b, o, v) => {
    if (v.length > INLINE_SLOTS)
      throw new RangeError(`Cannot encode ${v.length} inline slots: at most ${INLINE_SLOTS}`);
    for (let i = 0; i < INLINE_SLOTS; i++) u32.write(b, o + 4 * i, v[i] ?? 0);
  },
  read: (b, o) => Array.from({ length: INLINE_SLOTS }, (_, i) => u32.read(b, o + 4 * i)),
};

export const ServiceCodec = struct<Service>('Service', 'skein_lb_svc')
  .field('slotSet', 'slot_set', u32)
  .field('count', 'count', u16)
  .field('tag', 'tag', u16)
  .field('id', 'id', u32)
  .field('affinityTimeoutSeconds', 'affinity_timeout_s', u32)
  .field('algorithm', 'algorithm', named(u8, Algorithm))
  .field('flags', 'flags', u8)
  .pad('pad0', 2, 2)
  .pad('pad1', 4, 4)
  .field('inlineSlots', 'inline_slots', inlineSlotsField)
  .build();

export const SlotKeyCodec = struct<SlotKey>('SlotKey', 'skein_lb_slot_key')
  .field('slotSet', 'slot_set', u32)
  .field('slot', 'slot', u32)
  .build();

export const SlotCodec = struct<Slot>('Slot', 'skein_lb_slot').field('backendId', 'backend_id', u32).build();

export const MemberKeyCodec = struct<MemberKey>('MemberKey', 'skein_lb_member_key')
  .field('slotSet', 'slot_set', u32)
  .field('backendId', 'backend_id', u32)
  .build();

export const MemberCodec = struct<Member>('Member', 'skein_lb_member').field('slots', 'slots', u32).build();

export const BackendIdCodec: Codec<number> = scalar('BackendId', u32);

export const BackendCodec = struct<Backend>('Backend', 'skein_lb_backend')
  .field('address', 'addr', address)
  .field('port', 'port', port)
  .pad('flags', 2, 2)
  .build();

export const AffinityKeyCodec = struct<AffinityKey>('AffinityKey', 'skein_lb_affinity_key')
  .field('netnsCookie', 'netns_cookie', u64)
  .field('address', 'addr', address)
  .field('serviceId', 'svc_id', u32)
  .pad('pad0', 4, 4)
  .build();

export const AffinityCodec = struct<Affinity>('Affinity', 'skein_lb_affinity')
  .field('backendId', 'backend_id', u32)
  .pad('pad0', 4, 4)
  .field('lastNs', 'last_ns', u64)
  .build();

export const LbFlowCodec = struct<LbFlow>('LbFlow', 'skein_lb_flow')
  .field('client', 'client', address)
  .field('vip', 'vip', address)
  .field('vport', 'vport', port)
  .field('sport', 'sport', port)
  .field('protocol', 'proto', named(u8, Protocol))
  .field('bound', 'bound', u8)
  .pad('pad0', 2, 2)
  .build();

export const SockRevNatCodec = struct<SockRevNat>('SockRevNat', 'skein_lb_sock')
  .field('backend', 'backend', address)
  .field('backendPort', 'backend_port', port)
  .pad('pad0', 2, 2)
  .field('vip', 'vip', address)
  .field('vipPort', 'vip_port', port)
  .pad('pad1', 2, 2)
  .build();

export const RevNatKeyCodec = struct<RevNatKey>('RevNatKey', 'skein_lb_revnat_key')
  .field('cookie', 'cookie', u64)
  .field('address', 'addr', address)
  .field('port', 'port', port)
  .pad('pad0', 2, 2)
  .pad('pad1', 4, 4)
  .build();

export const RevNatCodec = struct<RevNat>('RevNat', 'skein_lb_revnat')
  .field('address', 'addr', address)
  .field('port', 'port', port)
  .pad('pad0', 2, 2)
  .build();

/** The maps of bpf/lb.bpf.c with their codecs. */
export const LbMaps = {
  services: { name: 'skein_services', key: ServiceKeyCodec, value: ServiceCodec },
  slots: { name: 'skein_slots', key: SlotKeyCodec, value: SlotCodec },
  members: { name: 'skein_members', key: MemberKeyCodec, value: MemberCodec },
  backends: { name: 'skein_backends', key: BackendIdCodec, value: BackendCodec },
  affinity: { name: 'skein_affinity', key: AffinityKeyCodec, value: AffinityCodec },
  revnat: { name: 'skein_revnat', key: RevNatKeyCodec, value: RevNatCodec },
} as const;

/**
 * Structs not opened through LbMaps, with their codecs (checked against BTF like the others): the Maglev
 * hash input, which lives only on the stack, and the socket-storage value of skein_sock_revnat (socket
 * storage is read through sockets, not keys, so there is no TypedMap for it).
 */
export const LbExtraStructs = [LbFlowCodec, SockRevNatCodec] as const;

/** The `const volatile` configuration of bpf/lb.bpf.c, with each variable's size in bytes. */
export const LbRodata = {
  /** u8: report every translation and refusal of the socket programs as a flow event. */
  lbEvents: { name: 'cfg_lb_events', size: 1 },
  /** u8: report every IP packet skein_tc_flow sees as a flow event. */
  tcEvents: { name: 'cfg_tc_events', size: 1 },
} as const;

/** The socket programs of bpf/lb.bpf.c, each attached to a cgroup at its own hook. */
export const LbCgroupPrograms = [
  'skein_connect4',
  'skein_connect6',
  'skein_sendmsg4',
  'skein_sendmsg6',
  'skein_recvmsg4',
  'skein_recvmsg6',
  'skein_getpeername4',
  'skein_getpeername6',
] as const;
export type LbCgroupProgram = (typeof LbCgroupPrograms)[number];

/** The tc classifier of bpf/lb.bpf.c. */
export const LbTcProgram = 'skein_tc_flow';
