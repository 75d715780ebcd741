/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service load-balancing: the maps bpf/lb.bpf.c reads and the control plane writes. Mirrored by
 * src/datapath/codecs/lb.ts (checked against BTF by test/datapath/btfAlignment.test.ts).
 *
 *   skein_services  (hash)      {VIP, port, proto}             -> {service id, backend count}
 *   skein_slots     (hash)      {service id, slot 0..count-1}  -> {backend id}
 *   skein_backends  (hash)      {backend id}                   -> {address, port}
 *   skein_revnat    (LRU hash)  {socket cookie, backend, port} -> {VIP, port}
 *
 * connect()/sendmsg() to a VIP picks slot = random % count and rewrites the destination to that
 * backend; the translation is remembered per socket in skein_revnat so that recvmsg() and getpeername()
 * show the VIP again. Changing a service's backends without breaking connections (see
 * src/datapath/lb.ts): grow = write the new slots, then raise count; shrink = lower count, then delete
 * the slots beyond it. A connect() that races an update then always finds a slot and a backend.
 *
 * The four maps are pinned by name (LIBBPF_PIN_BY_NAME) under the loader's pin root, so an agent restart
 * reuses them and keeps every service working.
 */
#ifndef SKEIN_LB_H
#define SKEIN_LB_H

#include "skein_common.h"

#define SKEIN_LB_MAX_SERVICES 16384
#define SKEIN_LB_MAX_SLOTS 131072
#define SKEIN_LB_MAX_BACKENDS 65536
#define SKEIN_LB_MAX_REVNAT 65536

/* 20 bytes. port in network byte order; proto is IPPROTO_TCP or IPPROTO_UDP. */
struct skein_lb_svc_key {
	struct skein_addr addr;
	__u16 port;
	__u8 proto;
	__u8 pad0;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_svc_key) == 20, "skein_lb_svc_key is 20 bytes");

/* 8 bytes. id names the service in skein_slots; count = 0 refuses connections (no backends). */
struct skein_lb_svc {
	__u32 id;
	__u16 count;
	__u16 flags; /* reserved, 0 */
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_svc) == 8, "skein_lb_svc is 8 bytes");

/* 8 bytes. */
struct skein_lb_slot_key {
	__u32 svc_id;
	__u32 slot;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_slot_key) == 8, "skein_lb_slot_key is 8 bytes");

/* 4 bytes. */
struct skein_lb_slot {
	__u32 backend_id;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_slot) == 4, "skein_lb_slot is 4 bytes");

/* skein_backends is keyed by the backend id, a plain __u32. The value, 20 bytes: */
struct skein_lb_backend {
	struct skein_addr addr;
	__u16 port; /* network byte order */
	__u16 flags; /* reserved, 0 */
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_backend) == 20, "skein_lb_backend is 20 bytes");

/* 32 bytes: the socket, and the backend address it was sent to. */
struct skein_lb_revnat_key {
	__u64 cookie;
	struct skein_addr addr;
	__u16 port;
	__u16 pad0;
	__u32 pad1;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_revnat_key) == 32, "skein_lb_revnat_key is 32 bytes");

/* 20 bytes: the service address and port to show instead. */
struct skein_lb_revnat {
	struct skein_addr addr;
	__u16 port;
	__u16 pad0;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_lb_revnat) == 20, "skein_lb_revnat is 20 bytes");

#endif /* SKEIN_LB_H */
