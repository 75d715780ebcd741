// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Service load-balancing at the socket (the first program family of the datapath).
 *
 * Attached to a cgroup v2 directory, these programs rewrite connect() and sendmsg() to a service address
 * (VIP) into a connect()/sendmsg() to one of its backends, before the packet exists: no NAT, no conntrack
 * entry, nothing to undo on the wire. recvmsg() and getpeername() translate the backend back into the
 * VIP, so the application only ever sees the address it used. Maps: bpf/include/skein_lb.h.
 *
 * skein_tc_flow is a tc classifier that parses each packet (bpf/include/skein_parse.h) and, when
 * enabled, reports it as a flow event; the policy family will decide verdicts at the same place.
 *
 * Configuration is rodata, set by the loader before load (the verifier then drops disabled branches).
 */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "skein_common.h"
#include "skein_flow.h"
#include "skein_lb.h"
#include "skein_parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Report every translation and refusal of the socket programs as a flow event. */
const volatile __u8 cfg_lb_events = 0;
/* Report every IP packet skein_tc_flow sees as a flow event. */
const volatile __u8 cfg_tc_events = 0;

/*
 * skein_services, skein_slots and skein_members are written by user space only. BPF_F_NO_PREALLOC: memory
 * as used (the slot map must hold every live slot set plus those an update writes before the old ones go).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKEIN_LB_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct skein_lb_svc_key);
	__type(value, struct skein_lb_svc);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKEIN_LB_MAX_SLOTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct skein_lb_slot_key);
	__type(value, struct skein_lb_slot);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKEIN_LB_MAX_MEMBERS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct skein_lb_member_key);
	__type(value, struct skein_lb_member);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_members SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKEIN_LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct skein_lb_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_backends SEC(".maps");

/* Written by the programs: the client's backend and when it last connected. Old clients fall out (LRU). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SKEIN_LB_MAX_AFFINITY);
	__type(key, struct skein_lb_affinity_key);
	__type(value, struct skein_lb_affinity);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_affinity SEC(".maps");

/* A connected socket's translation, freed with the socket. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct skein_lb_sock);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_sock_revnat SEC(".maps");

/* Unconnected UDP: each datagram may go to another backend, so per (socket, backend). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SKEIN_LB_MAX_REVNAT);
	__type(key, struct skein_lb_revnat_key);
	__type(value, struct skein_lb_revnat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_revnat SEC(".maps");

/* Flow events (struct skein_flow_event), shared by every family: pinned by name. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_flows SEC(".maps");

/*
 * BTF anchors. The flow event and the enums live only on the stack and in the ring buffer, and BTF
 * carries only the types of globals and maps; this never-loaded section puts them in the object's BTF
 * for test/datapath/btfAlignment.test.ts. libbpf ignores sections it does not know.
 */
struct skein_btf_anchors {
	struct skein_flow_event flow_event;
	enum skein_verdict verdict;
	enum skein_reason reason;
	enum skein_hook hook;
	struct skein_lb_flow lb_flow;
	struct skein_lb_sock lb_sock;
	enum skein_lb_algorithm lb_algorithm;
	enum skein_lb_svc_flag lb_svc_flag;
};
struct skein_btf_anchors skein_btf_anchors SEC(".skein.btf");

struct flow_tuple {
	const struct skein_addr *saddr;
	const struct skein_addr *daddr;
	const struct skein_addr *orig_daddr;
	__u16 sport;
	__u16 dport;
	__u16 orig_dport;
	__u8 proto;
};

static __always_inline void flow_emit(const struct flow_tuple *t, __u64 cookie, __u32 ifindex, __u8 hook,
				      __u8 verdict, __u8 reason)
{
	struct skein_flow_event *e = bpf_ringbuf_reserve(&skein_flows, sizeof(*e), 0);

	if (!e)
		return; /* full: the reader is behind; losing an event beats stalling a connect() */
	__builtin_memset(e, 0, sizeof(*e));
	e->timestamp_ns = bpf_ktime_get_ns();
	e->cookie = cookie;
	if (t->saddr)
		e->saddr = *t->saddr;
	e->daddr = *t->daddr;
	e->orig_daddr = *t->orig_daddr;
	e->sport = t->sport;
	e->dport = t->dport;
	e->orig_dport = t->orig_dport;
	e->proto = t->proto;
	e->verdict = verdict;
	e->reason = reason;
	e->hook = hook;
	e->ifindex = ifindex;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline __u32 rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

/*
 * MurmurHash3 x86_32 over n 32-bit words of `data` (as loaded: host byte order). Each word is copied out
 * with memcpy: the structs hashed are written through narrower fields, and reading them through a
 * __u32 pointer would break strict aliasing (the compiler may then hash stale stack bytes).
 */
static __always_inline __u32 murmur3_words(const void *data, int n, __u32 seed)
{
	__u32 h = seed;

#pragma unroll
	for (int i = 0; i < n; i++) {
		__u32 k;

		__builtin_memcpy(&k, (const char *)data + 4 * i, sizeof(k));
		k *= 0xcc9e2d51;
		k = rotl32(k, 15) * 0x1b873593;
		h ^= k;
		h = rotl32(h, 13) * 5 + 0xe6546b64;
	}
	h ^= (__u32)n * 4;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* Who is connecting, as far as the socket knows before the kernel picks a source (skein_lb.h). */
struct lb_client {
	struct skein_addr addr; /* bound source address, or zero */
	__u64 netns;            /* netns cookie */
	__u16 sport;            /* bound source port, network byte order, or 0 */
	__u8 bound;             /* addr is set */
};

static __always_inline void lb_client(struct bpf_sock_addr *ctx, int ipv4, struct lb_client *c)
{
	struct bpf_sock *sk = ctx->sk;

	c->netns = bpf_get_netns_cookie(ctx);
	c->sport = bpf_htons((__u16)sk->src_port);
	if (ipv4) {
		if (sk->src_ip4) {
			skein_addr_set_v4(&c->addr, sk->src_ip4);
			c->bound = 1;
		}
		return;
	}
	c->addr.addr[0] = sk->src_ip6[0];
	c->addr.addr[1] = sk->src_ip6[1];
	c->addr.addr[2] = sk->src_ip6[2];
	c->addr.addr[3] = sk->src_ip6[3];
	c->bound = (c->addr.addr[0] | c->addr.addr[1] | c->addr.addr[2] | c->addr.addr[3]) != 0;
}

static __always_inline __u32 lb_flow_hash(const struct lb_client *c, const struct skein_lb_svc_key *key)
{
	struct skein_lb_flow f = {};

	if (c->bound) {
		f.client = c->addr;
		f.bound = 1;
	} else {
		f.client.addr[0] = (__u32)c->netns;
		f.client.addr[1] = (__u32)(c->netns >> 32);
	}
	f.vip = key->addr;
	f.vport = key->port;
	f.sport = c->sport;
	f.proto = key->proto;
	return murmur3_words(&f, sizeof(f) / 4, SKEIN_LB_HASH_SEED);
}

/*
 * The backend the client's affinity entry names, if the entry is fresh and the backend is still in the
 * live slot set (a removed backend gets no new connections, affinity or not); NULL otherwise. Refreshes
 * the entry's last use.
 */
static __always_inline const struct skein_lb_backend *lb_affine(const struct skein_lb_affinity_key *akey,
								 __u32 slot_set, __u64 timeout_ns, __u64 now)
{
	struct skein_lb_member_key mkey = { .slot_set = slot_set };
	const struct skein_lb_backend *be;
	struct skein_lb_affinity *aff;

	aff = bpf_map_lookup_elem(&skein_affinity, akey);
	if (!aff || now - aff->last_ns >= timeout_ns)
		return NULL;
	mkey.backend_id = aff->backend_id;
	if (!bpf_map_lookup_elem(&skein_members, &mkey))
		return NULL;
	be = bpf_map_lookup_elem(&skein_backends, &mkey.backend_id);
	if (be)
		aff->last_ns = now;
	return be;
}

/* A service value as one read of it saw it (see lb_read_service). */
struct svc_view {
	__u32 slot_set;
	__u32 count;
	__u32 id;
	__u32 affinity_timeout_s;
	__u8 algorithm;
	__u8 flags;
	__u32 inline_slots[SKEIN_LB_INLINE_SLOTS];
};

union svc_word {
	__u64 word;
	struct {
		__u32 slot_set;
		__u16 count;
		__u16 tag;
	};
};

/*
 * Reads the service of `key` into *v: 1, 0 if there is none, -1 if its element kept changing under the
 * read. The (slot_set, count, tag) word is one load, so its three parts come from one update; a word whose
 * tag is not the key's, or that changed while the rest was copied, belongs to a recycled element (another
 * key's value now): look the key up again.
 */
static __always_inline int lb_read_service(const struct skein_lb_svc_key *key, struct svc_view *v)
{
	__u16 tag = (__u16)murmur3_words(key, sizeof(*key) / 4, SKEIN_LB_TAG_SEED);
	const struct skein_lb_svc *svc;
	union svc_word w, again;

	for (int attempt = 0; attempt < 2; attempt++) {
		svc = bpf_map_lookup_elem(&skein_services, key);
		if (!svc)
			return 0;
		w.word = *(volatile const __u64 *)svc;
		if (w.tag != tag)
			continue;
		v->slot_set = w.slot_set;
		v->count = w.count;
		v->id = svc->id;
		v->affinity_timeout_s = svc->affinity_timeout_s;
		v->algorithm = svc->algorithm;
		v->flags = svc->flags;
		if (v->flags & SKEIN_LB_SVC_FLAG_INLINE)
			__builtin_memcpy(v->inline_slots, (const void *)svc->inline_slots, sizeof(v->inline_slots));
		again.word = *(volatile const __u64 *)svc;
		if (again.word == w.word)
			return 1;
	}
	return -1;
}

/*
 * Looks the destination up as a service and picks a backend. Returns SKEIN_REASON_NONE for a destination
 * that is not a service, SKEIN_REASON_LB_BACKEND with *out set, or why no backend could be used.
 */
static __always_inline __u8 lb_pick(struct bpf_sock_addr *ctx, const struct skein_lb_svc_key *key, int ipv4,
				    const struct skein_lb_backend **out)
{
	struct skein_lb_affinity_key akey = {};
	struct skein_lb_slot_key slot_key = {};
	struct lb_client client = {};
	struct svc_view v = {};
	struct skein_lb_slot *slot;
	__u64 now = 0, timeout_ns = 0;
	__u32 backend_id;
	int found;

	found = lb_read_service(key, &v);
	if (found == 0)
		return SKEIN_REASON_NONE;
	if (found < 0)
		return SKEIN_REASON_LB_SLOT_MISSING;
	if (v.count == 0)
		return SKEIN_REASON_LB_NO_BACKENDS;
	if ((v.flags & SKEIN_LB_SVC_FLAG_AFFINITY) || v.algorithm == SKEIN_LB_ALGORITHM_MAGLEV)
		lb_client(ctx, ipv4, &client);
	if (v.flags & SKEIN_LB_SVC_FLAG_AFFINITY) {
		akey.netns_cookie = client.netns;
		akey.addr = client.addr;
		akey.svc_id = v.id;
		now = bpf_ktime_get_ns();
		timeout_ns = (__u64)v.affinity_timeout_s * 1000000000ULL;
		*out = lb_affine(&akey, v.slot_set, timeout_ns, now);
		if (*out)
			return SKEIN_REASON_LB_BACKEND;
	}
	if (v.algorithm == SKEIN_LB_ALGORITHM_MAGLEV)
		slot_key.slot = lb_flow_hash(&client, key) % v.count;
	else
		slot_key.slot = bpf_get_prandom_u32() % v.count;
	if (v.flags & SKEIN_LB_SVC_FLAG_INLINE) {
		backend_id = v.inline_slots[slot_key.slot & (SKEIN_LB_INLINE_SLOTS - 1)];
	} else {
		slot_key.slot_set = v.slot_set;
		slot = bpf_map_lookup_elem(&skein_slots, &slot_key);
		if (!slot)
			return SKEIN_REASON_LB_SLOT_MISSING;
		backend_id = slot->backend_id;
	}
	*out = bpf_map_lookup_elem(&skein_backends, &backend_id);
	if (!*out)
		return SKEIN_REASON_LB_BACKEND_MISSING;
	if (v.flags & SKEIN_LB_SVC_FLAG_AFFINITY) {
		struct skein_lb_affinity val = { .backend_id = backend_id, .last_ns = now };

		bpf_map_update_elem(&skein_affinity, &akey, &val, BPF_ANY);
	}
	return SKEIN_REASON_LB_BACKEND;
}

/*
 * Remembers, for this socket, that the backend stands for the service (recvmsg, getpeername): in the
 * socket's storage after a connect(), in skein_revnat after an unconnected sendmsg().
 */
static __always_inline void lb_remember(struct bpf_sock_addr *ctx, __u64 cookie, const struct skein_lb_backend *be,
					const struct skein_lb_svc_key *svc, int connect)
{
	struct skein_lb_revnat_key key = {};
	struct skein_lb_revnat val = {};
	struct skein_lb_sock *s;

	if (connect) {
		s = bpf_sk_storage_get(&skein_sock_revnat, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (s) {
			s->backend = be->addr;
			s->backend_port = be->port;
			s->vip = svc->addr;
			s->vip_port = svc->port;
			return;
		}
	}
	key.cookie = cookie;
	key.addr = be->addr;
	key.port = be->port;
	val.addr = svc->addr;
	val.port = svc->port;
	bpf_map_update_elem(&skein_revnat, &key, &val, BPF_ANY);
}

/*
 * The forward translation, shared by the IPv4 and IPv6 hooks: key holds the destination. Returns the
 * hook's verdict and, through *be, the backend to rewrite to (NULL: leave the destination alone).
 */
static __always_inline int lb_forward_at(struct bpf_sock_addr *ctx, const struct skein_lb_svc_key *key,
					 const struct skein_lb_backend **be, int ipv4, __u8 hook, int connect)
{
	struct flow_tuple t = { .daddr = &key->addr, .orig_daddr = &key->addr };
	__u64 cookie;
	__u8 reason;

	*be = NULL;
	reason = lb_pick(ctx, key, ipv4, be);
	if (reason == SKEIN_REASON_NONE)
		return SKEIN_SOCK_ALLOW;
	if (reason == SKEIN_REASON_LB_BACKEND && ipv4 && !skein_addr_is_v4(&(*be)->addr))
		reason = SKEIN_REASON_LB_FAMILY_MISMATCH;
	/* The cookie names the socket in flow events and in skein_revnat; a plain connect() needs neither. */
	cookie = cfg_lb_events || !connect ? bpf_get_socket_cookie(ctx) : 0;
	t.dport = key->port;
	t.orig_dport = key->port;
	t.proto = key->proto;
	if (reason != SKEIN_REASON_LB_BACKEND) {
		*be = NULL;
		if (cfg_lb_events)
			flow_emit(&t, cookie, 0, hook, SKEIN_VERDICT_DROP, reason);
		return SKEIN_SOCK_REJECT;
	}
	lb_remember(ctx, cookie, *be, key, connect);
	if (cfg_lb_events) {
		t.daddr = &(*be)->addr;
		t.dport = (*be)->port;
		flow_emit(&t, cookie, 0, hook, SKEIN_VERDICT_TRANSLATED, reason);
	}
	return SKEIN_SOCK_ALLOW;
}

static __always_inline int lb_forward(struct bpf_sock_addr *ctx, const struct skein_lb_svc_key *key,
				      const struct skein_lb_backend **be, int ipv4, __u8 hook)
{
	return lb_forward_at(ctx, key, be, ipv4, hook, hook == SKEIN_HOOK_CONNECT4 || hook == SKEIN_HOOK_CONNECT6);
}

static __always_inline int lb_forward4(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct skein_lb_svc_key key = {};
	const struct skein_lb_backend *be;
	__u32 proto = ctx->protocol;
	int verdict;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return SKEIN_SOCK_ALLOW;
	skein_addr_set_v4(&key.addr, ctx->user_ip4);
	key.port = (__u16)ctx->user_port;
	key.proto = proto;
	verdict = lb_forward(ctx, &key, &be, 1, hook);
	if (be) {
		ctx->user_ip4 = be->addr.addr[3];
		ctx->user_port = be->port;
	}
	return verdict;
}

static __always_inline int lb_forward6(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct skein_lb_svc_key key = {};
	const struct skein_lb_backend *be;
	__u32 proto = ctx->protocol;
	int verdict;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return SKEIN_SOCK_ALLOW;
	key.addr.addr[0] = ctx->user_ip6[0];
	key.addr.addr[1] = ctx->user_ip6[1];
	key.addr.addr[2] = ctx->user_ip6[2];
	key.addr.addr[3] = ctx->user_ip6[3];
	key.port = (__u16)ctx->user_port;
	key.proto = proto;
	verdict = lb_forward(ctx, &key, &be, 0, hook);
	if (be) {
		/* An IPv4 backend becomes its mapped address: right for dual-stack sockets. */
		ctx->user_ip6[0] = be->addr.addr[0];
		ctx->user_ip6[1] = be->addr.addr[1];
		ctx->user_ip6[2] = be->addr.addr[2];
		ctx->user_ip6[3] = be->addr.addr[3];
		ctx->user_port = be->port;
	}
	return verdict;
}

static __always_inline int addr_eq(const struct skein_addr *a, const struct skein_addr *b)
{
	return a->addr[0] == b->addr[0] && a->addr[1] == b->addr[1] && a->addr[2] == b->addr[2] &&
	       a->addr[3] == b->addr[3];
}

/*
 * The reverse translation (recvmsg, getpeername): key holds this socket's peer; fills *vip with the
 * service it stands for and returns 1, or returns 0. A connected socket finds it in its own storage, an
 * unconnected UDP socket in skein_revnat.
 */
static __always_inline int lb_reverse(struct bpf_sock_addr *ctx, struct skein_lb_revnat_key *key,
				      struct skein_lb_revnat *vip, __u8 hook)
{
	const struct skein_lb_revnat *found = NULL;
	struct flow_tuple t = {};
	struct skein_lb_sock *s;

	s = bpf_sk_storage_get(&skein_sock_revnat, ctx->sk, 0, 0);
	if (s && s->backend_port == key->port && addr_eq(&s->backend, &key->addr)) {
		vip->addr = s->vip;
		vip->port = s->vip_port;
	} else {
		key->cookie = bpf_get_socket_cookie(ctx);
		found = bpf_map_lookup_elem(&skein_revnat, key);
		if (!found)
			return 0;
		*vip = *found;
	}
	if (cfg_lb_events) {
		t.saddr = &vip->addr;
		t.daddr = &key->addr;
		t.orig_daddr = &key->addr;
		t.sport = vip->port;
		t.proto = (__u8)ctx->protocol;
		flow_emit(&t, bpf_get_socket_cookie(ctx), 0, hook, SKEIN_VERDICT_TRANSLATED,
			  SKEIN_REASON_LB_REVERSE);
	}
	return 1;
}

static __always_inline void lb_reverse4(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct skein_lb_revnat_key key = {};
	struct skein_lb_revnat vip = {};

	skein_addr_set_v4(&key.addr, ctx->user_ip4);
	key.port = (__u16)ctx->user_port;
	if (lb_reverse(ctx, &key, &vip, hook) && skein_addr_is_v4(&vip.addr)) {
		ctx->user_ip4 = vip.addr.addr[3];
		ctx->user_port = vip.port;
	}
}

static __always_inline void lb_reverse6(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct skein_lb_revnat_key key = {};
	struct skein_lb_revnat vip = {};

	key.addr.addr[0] = ctx->user_ip6[0];
	key.addr.addr[1] = ctx->user_ip6[1];
	key.addr.addr[2] = ctx->user_ip6[2];
	key.addr.addr[3] = ctx->user_ip6[3];
	key.port = (__u16)ctx->user_port;
	if (lb_reverse(ctx, &key, &vip, hook)) {
		ctx->user_ip6[0] = vip.addr.addr[0];
		ctx->user_ip6[1] = vip.addr.addr[1];
		ctx->user_ip6[2] = vip.addr.addr[2];
		ctx->user_ip6[3] = vip.addr.addr[3];
		ctx->user_port = vip.port;
	}
}

SEC("cgroup/connect4")
int skein_connect4(struct bpf_sock_addr *ctx)
{
	return lb_forward4(ctx, SKEIN_HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int skein_connect6(struct bpf_sock_addr *ctx)
{
	return lb_forward6(ctx, SKEIN_HOOK_CONNECT6);
}

SEC("cgroup/sendmsg4")
int skein_sendmsg4(struct bpf_sock_addr *ctx)
{
	return lb_forward4(ctx, SKEIN_HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int skein_sendmsg6(struct bpf_sock_addr *ctx)
{
	return lb_forward6(ctx, SKEIN_HOOK_SENDMSG6);
}

/* recvmsg and getpeername hooks must return 1. */
SEC("cgroup/recvmsg4")
int skein_recvmsg4(struct bpf_sock_addr *ctx)
{
	lb_reverse4(ctx, SKEIN_HOOK_RECVMSG4);
	return 1;
}

SEC("cgroup/recvmsg6")
int skein_recvmsg6(struct bpf_sock_addr *ctx)
{
	lb_reverse6(ctx, SKEIN_HOOK_RECVMSG6);
	return 1;
}

SEC("cgroup/getpeername4")
int skein_getpeername4(struct bpf_sock_addr *ctx)
{
	lb_reverse4(ctx, SKEIN_HOOK_GETPEERNAME4);
	return 1;
}

SEC("cgroup/getpeername6")
int skein_getpeername6(struct bpf_sock_addr *ctx)
{
	lb_reverse6(ctx, SKEIN_HOOK_GETPEERNAME6);
	return 1;
}

SEC("tc")
int skein_tc_flow(struct __sk_buff *skb)
{
	struct skein_pkt p = {};
	struct flow_tuple t = { .saddr = &p.saddr, .daddr = &p.daddr, .orig_daddr = &p.daddr };

	if (skein_parse_skb(skb, &p) == SKEIN_PARSE_NOT_IP)
		return SKEIN_TC_ACT_UNSPEC;
	if (cfg_tc_events) {
		t.sport = p.sport;
		t.dport = p.dport;
		t.orig_dport = p.dport;
		t.proto = p.proto;
		flow_emit(&t, bpf_get_socket_cookie(skb), skb->ifindex, SKEIN_HOOK_TC, SKEIN_VERDICT_PASS,
			  p.reason);
	}
	return SKEIN_TC_ACT_UNSPEC;
}
