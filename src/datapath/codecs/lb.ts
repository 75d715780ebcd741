/**
 * Codecs for the service load-balancing maps: bpf/include/skein_lb.h, field for field. See there for
 * what each map means and how updates are ordered.
 */

import { address, type Codec, named, port, scalar, struct, u8, u16, u32, u64 } from '../codec.js';

/** IPPROTO_* of the protocols a service can have. */
export const Protocol = { TCP: 6, UDP: 17 } as const;
export type Protocol = keyof typeof Protocol;

/** skein_services key: a service address (VIP), port and protocol. */
export interface ServiceKey {
  address: string;
  port: number;
  protocol: Protocol;
}

/** skein_services value. */
export interface Service {
  /** Names the service in skein_slots. */
  id: number;
  /** How many slots (0..count-1) hold a backend; 0 refuses connections. */
  count: number;
}

/** skein_slots key. */
export interface SlotKey {
  serviceId: number;
  slot: number;
}

/** skein_slots value. */
export interface Slot {
  backendId: number;
}

/** skein_backends value (the key is the backend id, a u32). */
export interface Backend {
  address: string;
  port: number;
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

export const ServiceCodec = struct<Service>('Service', 'skein_lb_svc')
  .field('id', 'id', u32)
  .field('count', 'count', u16)
  .pad('flags', 2, 2)
  .build();

export const SlotKeyCodec = struct<SlotKey>('SlotKey', 'skein_lb_slot_key')
  .field('serviceId', 'svc_id', u32)
  .field('slot', 'slot', u32)
  .build();

export const SlotCodec = struct<Slot>('Slot', 'skein_lb_slot').field('backendId', 'backend_id', u32).build();

export const BackendIdCodec: Codec<number> = scalar('BackendId', u32);

export const BackendCodec = struct<Backend>('Backend', 'skein_lb_backend')
  .field('address', 'addr', address)
  .field('port', 'port', port)
  .pad('flags', 2, 2)
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
  backends: { name: 'skein_backends', key: BackendIdCodec, value: BackendCodec },
  revnat: { name: 'skein_revnat', key: RevNatKeyCodec, value: RevNatCodec },
} as const;

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
