/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service load-balancing: the maps bpf/lb.bpf.c reads and the control plane writes. Mirrored by
 * src/datapath/codecs/lb.ts (checked against BTF by test/datapath/btfAlignment.test.ts).
 *
 *   skein_services  (hash)      {VIP, port, proto}              -> {version, count, tag, id, algorithm, affinity,
 *                                                                   up to 8 slots inline}
 *   skein_slots     (hash)      {slot set, slot 0..count-1}     -> {backend id}
 *   skein_members   (hash)      {slot set, backend id}          -> {slots it holds}   (affinity services only)
 *   skein_backends  (hash)      {backend id}                    -> {address, port}
 *   skein_affinity  (LRU hash)  {netns, client address, svc id} -> {backend id, last use}
 *   skein_sock_revnat (socket storage)  per connected socket   -> {backend, port, VIP, port}
 *   skein_revnat    (LRU hash)  {socket cookie, backend, port}  -> {VIP, port}       (unconnected UDP)
 *
 * connect()/sendmsg() to a VIP picks a slot of the service's live slot set (random % count, or for
 * Maglev the flow hash % count), and rewrites the destination to that slot's backend; the translation is
 * remembered so that recvmsg() and getpeername() show the VIP again: for a connect(), in the socket's own
 * storage (freed with the socket, so nothing accumulates and nothing is evicted while the socket lives);
 * for an unconnected UDP sendmsg(), which may reach another backend with each datagram, in skein_revnat.
 *
 * Atomic backend updates (src/datapath/lbReconcile.ts): a slot set is written once, complete, under a
 * fresh id and never changed; the service value then flips to it in one map update, and the program reads
 * the (slot_set, count, tag) word in one 8-byte load. A random service of at most 8 backends carries its
 * slots inline in the value instead (one lookup fewer per connect), and the flip replaces them with it.
 * Old slot sets are deleted only after an RCU grace period (every program that could have read the old
 * value has returned). A connect() therefore sees the old set or the new one, whole, never a mix; and once
 * the flip returns, no new connection picks a backend that only the old set had.
 *
 * The tag: hash map elements are recycled at once (typesafe-by-RCU), so a program holding a value while
 * the element is freed and reused may read another service's value. Every value carries 16 bits of a hash
 * of its own key in the word; a value whose tag is not its key's is looked up again.
 *
 * The maps are pinned by name (LIBBPF_PIN_BY_NAME) under the loader's pin root, so an agent restart
 * reuses them and keeps every service working.
 */
#ifndef SKEIN_LB_H
#define SKEIN_LB_H

#include "skein_common.h"

#define SKEIN_LB_MAX_SERVICES 262144
/* Live slot sets plus the ones an update writes before the old ones go. No prealloc: memory as used. */
#define SKEIN_LB_MAX_SLOTS 1048576
#define SKEIN_LB_MAX_MEMBERS 262144
#define SKEIN_LB_MAX_BACKENDS 65536
#define SKEIN_LB_MAX_AFFINITY 65536
#define SKEIN_LB_MAX_REVNAT 65536

/* Seed of the Maglev flow hash (MurmurHash3 x86_32 over struct skein_lb_flow as 32-bit words). */
#define SKEIN_LB_HASH_SEED 0x736b6e31
/* Seed of a service value's tag (MurmurHash3 x86_32 over struct skein_lb_svc_key, low 16 bits). */
#define SKEIN_LB_TAG_SEED 0x74616731
/* Slots a value holds inline (a power of two: the program masks the index with it). */
#define SKEIN_LB_INLINE_SLOTS 8

/* How a service picks a slot. */
enum skein_lb_algorithm {
	SKEIN_LB_ALGORITHM_RANDOM = 0, /* bpf_get_prandom_u32() % count */
	SKEIN_LB_ALGORITHM_MAGLEV = 1, /* flow hash % count over a Maglev lookup table */
};

/* skein_lb_svc.flags */
enum skein_lb_svc_flag {
	SKEIN_LB_SVC_FLAG_AFFINITY = 1, /* ClientIP session affinity (skein_affinity, skein_members) */
	SKEIN_LB_SVC_FLAG_INLINE = 2,   /* the slots are inline_slots[], not in skein_slots */
};

/* 20 bytes. port in network byte order; proto is IPPROTO_TCP or IPPROTO_UDP. */
struct skein_lb_svc_key {
	struct skein_addr addr;
	__u16 port;
	__u8 proto;
	__u8 pad0;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_svc_key) == 20, "skein_lb_svc_key is 20 bytes");

/*
 * 56 bytes. slot_set, count and tag come first and are read together in one 8-byte load, so the struct
 * is 8-byte aligned (hash map values are; the attribute tells the compiler, which would otherwise split
 * the load in two). count = 0 refuses connections (no backends).
 */
struct __attribute__((aligned(8))) skein_lb_svc {
	__u32 slot_set;           /* this version of the backends (0: none); names its skein_slots, skein_members */
	__u16 count;              /* its slots are 0..count-1 */
	__u16 tag;                /* SKEIN_LB_TAG_SEED hash of this value's own key */
	__u32 id;                 /* stable for the service's lifetime: names it in skein_affinity */
	__u32 affinity_timeout_s; /* with SKEIN_LB_SVC_FLAG_AFFINITY: idle seconds before a client re-picks */
	__u8 algorithm;           /* enum skein_lb_algorithm */
	__u8 flags;               /* enum skein_lb_svc_flag */
	__u16 pad0;
	__u32 pad1;
	__u32 inline_slots[SKEIN_LB_INLINE_SLOTS]; /* with SKEIN_LB_SVC_FLAG_INLINE: backend ids, slot i at i % count */
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_svc) == 56, "skein_lb_svc is 56 bytes");

/* 8 bytes. */
struct skein_lb_slot_key {
	__u32 slot_set;
	__u32 slot;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_slot_key) == 8, "skein_lb_slot_key is 8 bytes");

/* 4 bytes. */
struct skein_lb_slot {
	__u32 backend_id;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_slot) == 4, "skein_lb_slot is 4 bytes");

/* 8 bytes: is this backend in this slot set? (An affinity entry is honoured only if it still is.) */
struct skein_lb_member_key {
	__u32 slot_set;
	__u32 backend_id;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_member_key) == 8, "skein_lb_member_key is 8 bytes");

/* 4 bytes. */
struct skein_lb_member {
	__u32 slots; /* how many slots of the set name the backend (at least 1) */
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_member) == 4, "skein_lb_member is 4 bytes");

/* skein_backends is keyed by the backend id, a plain __u32. The value, 20 bytes: */
struct skein_lb_backend {
	struct skein_addr addr;
	__u16 port; /* network byte order */
	__u16 flags; /* reserved, 0 */
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_backend) == 20, "skein_lb_backend is 20 bytes");

/*
 * 32 bytes: one client of one service. At connect() the kernel has not chosen a source address yet, so
 * the client is its network namespace (a pod) plus the address its socket is bound to (zero when unbound,
 * which a connect() to a ClusterIP almost always is).
 */
struct skein_lb_affinity_key {
	__u64 netns_cookie;
	struct skein_addr addr;
	__u32 svc_id;
	__u32 pad0;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_affinity_key) == 32, "skein_lb_affinity_key is 32 bytes");

/* 16 bytes. */
struct skein_lb_affinity {
	__u32 backend_id;
	__u32 pad0;
	__u64 last_ns; /* bpf_ktime_get_ns() of the client's last connection: CLOCK_MONOTONIC */
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_affinity) == 16, "skein_lb_affinity is 16 bytes");

/*
 * 40 bytes: the flow as the socket knows it, hashed for Maglev (never stored in a map). The source port
 * of a TCP connect() is chosen only after the program runs, so the client is its bound address and port
 * when it has them (UDP sockets are bound before sendmsg), else its network namespace: then every
 * connection of a pod to the service hashes alike. src/datapath/lbHash.ts computes the same hash.
 */
struct skein_lb_flow {
	struct skein_addr client; /* bound source address; unbound: the netns cookie in addr[0..1], zeros */
	struct skein_addr vip;
	__u16 vport;              /* network byte order */
	__u16 sport;              /* network byte order; 0 when unbound */
	__u8 proto;
	__u8 bound;               /* 1: client is an address; 0: client is a netns cookie */
	__u16 pad0;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_flow) == 40, "skein_lb_flow is 40 bytes");

/* 32 bytes: the socket, and the backend address it was sent to. */
struct skein_lb_revnat_key {
	__u64 cookie;
	struct skein_addr addr;
	__u16 port;
	__u16 pad0;
	__u32 pad1;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_revnat_key) == 32, "skein_lb_revnat_key is 32 bytes");

/* 40 bytes: a connected socket's translation, in its socket storage. */
struct skein_lb_sock {
	struct skein_addr backend;
	__u16 backend_port; /* network byte order */
	__u16 pad0;
	struct skein_addr vip;
	__u16 vip_port; /* network byte order */
	__u16 pad1;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_sock) == 40, "skein_lb_sock is 40 bytes");

/* 20 bytes: the service address and port to show instead. */
struct skein_lb_revnat {
	struct skein_addr addr;
	__u16 port;
	__u16 pad0;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_revnat) == 20, "skein_lb_revnat is 20 bytes");

#endif /* SKEIN_LB_H */
