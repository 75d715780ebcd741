// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Identity-based L3/L4 policy and the L7 redirect, at tc on the host-side interface of each local pod.
 *
 *   skein_policy_from_endpoint  tc ingress: what the pod sends (its egress)
 *   skein_policy_to_endpoint    tc egress:  what the pod receives (its ingress)
 *
 * A packet of a flow connection tracking knows passes (forward or reply). The first packet of a new flow
 * is looked up: the remote address's identities (skein_ipcache, skein_cidr_ids), then the endpoint's
 * policy for them (skein_policy); the flow is tracked if it may pass, dropped if not (when a policy
 * selects the endpoint in that direction: default deny). Maps and their layout: bpf/include/skein_policy.h.
 *
 * When the sender and the receiver are both local pods, the sender's program also decides the receiver's
 * ingress (and tracks the flow for it): that is where a redirect to the proxy can still happen, and a
 * denied flow is dropped before it is forwarded.
 *
 * A redirect hands the flow to the node proxy (Envoy) with its original destination: the packet is
 * assigned to the proxy's transparent listener (bpf_sk_assign; later packets to the accepted socket) and
 * marked, and a policy route for the mark (`local default dev lo`) delivers it locally without rewriting
 * anything. The proxy's upstream connections carry another mark, which passes the receiving endpoint's
 * ingress: its policy was decided before the redirect.
 *
 * Configuration is rodata, set by the loader before load.
 */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "skein_common.h"
#include "skein_flow.h"
#include "skein_parse.h"
#include "skein_policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Flow events: 0 none, 1 drops, 2 drops and new flows, 3 every packet. */
const volatile __u8 cfg_flow_events = 2;
/* Connection tracking timeouts, in seconds: established TCP, other protocols, TCP after FIN or RST. */
const volatile __u32 cfg_ct_tcp_timeout_s = 21600;
const volatile __u32 cfg_ct_other_timeout_s = 60;
const volatile __u32 cfg_ct_closing_timeout_s = 10;
/* skb->mark bits: cfg_mark_mask selects them; to-proxy is set on redirected packets (the policy route
 * delivers them locally), from-proxy is what the proxy sets on its upstream sockets (SO_MARK). */
const volatile __u32 cfg_mark_mask = 0x0000f000;
const volatile __u32 cfg_mark_to_proxy = 0x0000a000;
const volatile __u32 cfg_mark_from_proxy = 0x0000b000;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKEIN_POLICY_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct skein_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SKEIN_POLICY_MAX_IPCACHE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct skein_ipcache_key);
	__type(value, struct skein_ipcache_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SKEIN_POLICY_MAX_CIDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct skein_ipcache_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_cidr_ids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SKEIN_POLICY_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct skein_policy_key);
	__type(value, struct skein_policy_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SKEIN_POLICY_MAX_CT);
	__type(key, struct skein_ct_key);
	__type(value, struct skein_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SKEIN_POLICY_STATS_SLOTS);
	__type(key, __u32);
	__type(value, struct skein_policy_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_policy_stats SEC(".maps");

/* Flow events, shared with every family (same definition as in lb.bpf.c): pinned by name. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skein_flows SEC(".maps");

/* BTF anchors for types that live only on the stack or in the ring buffer (see lb.bpf.c). */
struct skein_policy_btf_anchors {
	struct skein_flow_event flow_event;
	enum skein_verdict verdict;
	enum skein_reason reason;
	enum skein_hook hook;
	enum skein_direction direction;
	enum skein_policy_verdict policy_verdict;
};
struct skein_policy_btf_anchors skein_policy_btf_anchors SEC(".skein.btf");

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define NS_PER_S 1000000000ULL

/* What the policy decided for one direction of a new flow. */
struct decision {
	__u8 verdict; /* enum skein_policy_verdict */
	__u16 proxy_port;
};

/* Everything the event and counter code needs about the packet being handled. */
struct pctx {
	struct __sk_buff *skb;
	struct skein_pkt *p;
	__u32 ifindex;
	__u32 src_identity;
	__u32 dst_identity;
	__u8 hook;
};

static __always_inline void count(__u32 reason, __u32 len)
{
	struct skein_policy_counter *c = bpf_map_lookup_elem(&skein_policy_stats, &reason);

	if (c) {
		c->packets += 1;
		c->bytes += len;
	}
}

static __always_inline void emit(const struct pctx *c, __u8 verdict, __u8 reason, __u16 dport)
{
	struct skein_flow_event *e = bpf_ringbuf_reserve(&skein_flows, sizeof(*e), 0);

	if (!e)
		return; /* full: the reader is behind; losing an event beats delaying the packet */
	__builtin_memset(e, 0, sizeof(*e));
	e->timestamp_ns = bpf_ktime_get_ns();
	e->cookie = bpf_get_socket_cookie(c->skb);
	e->saddr = c->p->saddr;
	e->daddr = c->p->daddr;
	e->orig_daddr = c->p->daddr;
	e->sport = c->p->sport;
	e->dport = dport;
	e->orig_dport = c->p->dport;
	e->proto = c->p->proto;
	e->verdict = verdict;
	e->reason = reason;
	e->hook = c->hook;
	e->ifindex = c->ifindex;
	e->src_identity = c->src_identity;
	e->dst_identity = c->dst_identity;
	bpf_ringbuf_submit(e, 0);
}

/* Counts the packet under reason and reports it when cfg_flow_events reaches level. */
static __always_inline void account(const struct pctx *c, __u8 verdict, __u8 reason, __u8 level, __u16 dport)
{
	count(reason, c->skb->len);
	if (cfg_flow_events >= level)
		emit(c, verdict, reason, dport);
}

static __always_inline int drop(const struct pctx *c, __u8 reason)
{
	account(c, SKEIN_VERDICT_DROP, reason, 1, c->p->dport);
	return TC_ACT_SHOT;
}

/* The identity of the pod or node that holds addr (world when none), and its local ifindex if any. */
static __always_inline __u32 ipcache_identity(const struct skein_addr *addr, __u32 *local_ifindex)
{
	struct skein_ipcache_key key = { .prefixlen = 128, .addr = *addr };
	struct skein_ipcache_entry *e = bpf_map_lookup_elem(&skein_ipcache, &key);

	*local_ifindex = 0;
	if (!e)
		return SKEIN_IDENTITY_WORLD;
	*local_ifindex = e->ifindex;
	return e->identity;
}

/* The CIDR identity of the longest ipBlock prefix around addr, 0 when none. */
static __always_inline __u32 cidr_identity(const struct skein_addr *addr)
{
	struct skein_ipcache_key key = { .prefixlen = 128, .addr = *addr };
	__u32 *id = bpf_map_lookup_elem(&skein_cidr_ids, &key);

	return id ? *id : 0;
}

static __always_inline void consider(struct skein_policy_key *key, __u32 identity, struct decision *best)
{
	struct skein_policy_entry *e;

	key->identity = identity;
	e = bpf_map_lookup_elem(&skein_policy, key);
	if (e && e->verdict > best->verdict) {
		best->verdict = e->verdict;
		best->proxy_port = e->proxy_port;
	}
}

/* The endpoint's verdict for a new flow with the remote's identities; the highest of the three lookups. */
static __always_inline struct decision evaluate(__u32 ifindex, __u8 dir, __u32 identity, __u32 cidr_id,
						const struct skein_pkt *p)
{
	struct skein_policy_key key = {
		.prefixlen = SKEIN_POLICY_PREFIX_FULL,
		.ifindex = ifindex,
		.direction = dir,
		.proto = p->proto,
		.dport = p->dport,
	};
	struct decision best = {};

	consider(&key, identity, &best);
	if (cidr_id != 0)
		consider(&key, cidr_id, &best);
	consider(&key, SKEIN_IDENTITY_ANY, &best);
	return best;
}

static __always_inline void ct_key(struct skein_ct_key *k, const struct skein_pkt *p, __u32 ifindex, __u8 dir,
				   int reverse)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = reverse ? p->daddr : p->saddr;
	k->daddr = reverse ? p->saddr : p->daddr;
	k->sport = reverse ? p->dport : p->sport;
	k->dport = reverse ? p->sport : p->dport;
	k->ifindex = ifindex;
	k->proto = p->proto;
	k->direction = dir;
}

static __always_inline int ct_live(const struct skein_ct_entry *e, __u8 proto, __u64 now)
{
	__u64 timeout = cfg_ct_other_timeout_s;

	if (e->flags & SKEIN_CT_CLOSING)
		timeout = cfg_ct_closing_timeout_s;
	else if (proto == IPPROTO_TCP)
		timeout = cfg_ct_tcp_timeout_s;
	return now - e->last_seen_ns <= timeout * NS_PER_S;
}

static __always_inline void ct_touch(struct skein_ct_entry *e, const struct skein_pkt *p, __u64 now,
				     __u8 flags)
{
	e->last_seen_ns = now;
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & (SKEIN_TCP_FIN | SKEIN_TCP_RST)))
		flags |= SKEIN_CT_CLOSING;
	if ((e->flags | flags) != e->flags)
		e->flags |= flags;
}

static __always_inline void ct_create(const struct skein_pkt *p, __u32 ifindex, __u8 dir, __u32 remote,
				      const struct decision *d)
{
	struct skein_ct_key key;
	struct skein_ct_entry val = {
		.last_seen_ns = bpf_ktime_get_ns(),
		.remote_identity = remote,
		.verdict = d->verdict,
		.proxy_port = d->proxy_port,
	};

	ct_key(&key, p, ifindex, dir, 0);
	bpf_map_update_elem(&skein_ct, &key, &val, BPF_ANY);
}

/*
 * Hands the packet to the proxy: the socket that already holds this flow (the accepted connection), or
 * else the proxy's listener on loopback at proxy_port (IP_TRANSPARENT, so the accepted socket keeps the
 * original destination as its local address). Only TCP is redirected (the control plane allows no other).
 */
static __always_inline int redirect(const struct pctx *c, __u16 proxy_port, __u8 reason, __u8 level)
{
	struct skein_pkt *p = c->p;
	struct __sk_buff *skb = c->skb;
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 size;
	long err;

	if (p->proto != IPPROTO_TCP)
		return drop(c, SKEIN_REASON_PROXY_UNAVAILABLE);
	if (skein_addr_is_v4(&p->saddr)) {
		t.ipv4.saddr = p->saddr.addr[3];
		t.ipv4.daddr = p->daddr.addr[3];
		t.ipv4.sport = p->sport;
		t.ipv4.dport = p->dport;
		size = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, p->saddr.addr, 16);
		__builtin_memcpy(t.ipv6.daddr, p->daddr.addr, 16);
		t.ipv6.sport = p->sport;
		t.ipv6.dport = p->dport;
		size = sizeof(t.ipv6);
	}
	sk = bpf_skc_lookup_tcp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (sk) {
		if (sk->state != BPF_TCP_LISTEN)
			goto assign;
		bpf_sk_release(sk); /* a node listener on the original port: not the proxy */
	}
	if (size == sizeof(t.ipv4)) {
		t.ipv4.daddr = bpf_htonl(0x7f000001);
		t.ipv4.dport = proxy_port;
	} else {
		__builtin_memset(t.ipv6.daddr, 0, 16);
		t.ipv6.daddr[3] = bpf_htonl(1);
		t.ipv6.dport = proxy_port;
	}
	sk = bpf_skc_lookup_tcp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return drop(c, SKEIN_REASON_PROXY_UNAVAILABLE);
	if (sk->state != BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		return drop(c, SKEIN_REASON_PROXY_UNAVAILABLE);
	}
assign:
	err = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (err)
		return drop(c, SKEIN_REASON_PROXY_ASSIGN_FAILED);
	skb->mark = (skb->mark & ~cfg_mark_mask) | cfg_mark_to_proxy;
	account(c, SKEIN_VERDICT_REDIRECT, reason, level, proxy_port);
	return TC_ACT_OK;
}

/* ICMPv6 neighbour discovery (router/neighbour solicitation and advertisement, redirect) always passes. */
static __always_inline int is_nd(const struct skein_pkt *p)
{
	return p->proto == 58 && p->icmp_type >= 133 && p->icmp_type <= 137;
}

static __always_inline int handle(struct __sk_buff *skb, __u8 dir)
{
	struct skein_pkt p = {};
	struct pctx c = { .skb = skb, .p = &p, .ifindex = skb->ifindex };
	struct skein_endpoint *ep;
	struct skein_ct_key key;
	struct skein_ct_entry *ct;
	struct decision d = {};
	__u32 remote_identity, remote_ifindex, cidr_id;
	__u64 now;
	__u8 reason;
	int enforced, ports_known;

	if (skein_parse_skb(skb, &p) == SKEIN_PARSE_NOT_IP)
		return SKEIN_TC_ACT_UNSPEC;
	ep = bpf_map_lookup_elem(&skein_endpoints, &c.ifindex);
	if (!ep)
		return SKEIN_TC_ACT_UNSPEC; /* not an interface Skein manages */
	enforced = ep->flags & (dir == SKEIN_DIR_INGRESS ? SKEIN_EP_INGRESS_ENFORCED : SKEIN_EP_EGRESS_ENFORCED);
	c.hook = dir == SKEIN_DIR_INGRESS ? SKEIN_HOOK_POLICY_INGRESS : SKEIN_HOOK_POLICY_EGRESS;
	remote_identity = ipcache_identity(dir == SKEIN_DIR_INGRESS ? &p.saddr : &p.daddr, &remote_ifindex);
	c.src_identity = dir == SKEIN_DIR_INGRESS ? remote_identity : ep->identity;
	c.dst_identity = dir == SKEIN_DIR_INGRESS ? ep->identity : remote_identity;
	if (is_nd(&p))
		return SKEIN_TC_ACT_UNSPEC;

	/* Without ports (a non-first fragment, IPv6 extension headers) only rules for every port apply, and
	 * the packet is not tracked; a broken header is dropped where a policy applies. */
	ports_known = p.reason == SKEIN_REASON_NONE;
	if (p.reason == SKEIN_REASON_PARSE_TRUNCATED || p.reason == SKEIN_REASON_PARSE_MALFORMED) {
		if (enforced)
			return drop(&c, p.reason);
		return SKEIN_TC_ACT_UNSPEC;
	}

	now = bpf_ktime_get_ns();
	if (ports_known) {
		ct_key(&key, &p, c.ifindex, dir, 0);
		ct = bpf_map_lookup_elem(&skein_ct, &key);
		/* A new SYN on a known tuple is a new connection: it is decided again. */
		if (ct && ct_live(ct, p.proto, now) &&
		    !(p.proto == IPPROTO_TCP && (p.tcp_flags & (SKEIN_TCP_SYN | SKEIN_TCP_ACK)) == SKEIN_TCP_SYN)) {
			ct_touch(ct, &p, now, 0);
			if (ct->verdict == SKEIN_POLICY_REDIRECT && dir == SKEIN_DIR_EGRESS)
				return redirect(&c, ct->proxy_port, SKEIN_REASON_CT_ESTABLISHED, 3);
			account(&c, SKEIN_VERDICT_PASS, SKEIN_REASON_CT_ESTABLISHED, 3, p.dport);
			return SKEIN_TC_ACT_UNSPEC;
		}
		ct_key(&key, &p, c.ifindex, dir ^ 1, 1);
		ct = bpf_map_lookup_elem(&skein_ct, &key);
		if (ct && ct_live(ct, p.proto, now)) {
			ct_touch(ct, &p, now, SKEIN_CT_SEEN_REPLY);
			account(&c, SKEIN_VERDICT_PASS, SKEIN_REASON_CT_REPLY, 3, p.dport);
			return SKEIN_TC_ACT_UNSPEC;
		}
	}

	/* A new flow. The proxy's upstream connections were decided before the redirect. */
	if (dir == SKEIN_DIR_INGRESS && (skb->mark & cfg_mark_mask) == cfg_mark_from_proxy) {
		d.verdict = SKEIN_POLICY_ALLOW;
		if (ports_known)
			ct_create(&p, c.ifindex, dir, remote_identity, &d);
		account(&c, SKEIN_VERDICT_PASS, SKEIN_REASON_FROM_PROXY, 2, p.dport);
		return SKEIN_TC_ACT_UNSPEC;
	}
	cidr_id = cidr_identity(dir == SKEIN_DIR_INGRESS ? &p.saddr : &p.daddr);
	reason = SKEIN_REASON_POLICY_NOT_ENFORCED;
	d.verdict = SKEIN_POLICY_ALLOW;
	if (enforced) {
		d = evaluate(c.ifindex, dir, remote_identity, cidr_id, &p);
		reason = SKEIN_REASON_POLICY_ALLOWED;
	}
	if (d.verdict == SKEIN_POLICY_DENY)
		return drop(&c, SKEIN_REASON_POLICY_DENY_RULE);
	if (d.verdict == SKEIN_POLICY_NONE)
		return drop(&c, SKEIN_REASON_POLICY_DENIED);

	/* A local receiver: decide its ingress here, where a redirect is still possible. */
	if (dir == SKEIN_DIR_EGRESS && remote_ifindex != 0) {
		struct skein_endpoint *dst = bpf_map_lookup_elem(&skein_endpoints, &remote_ifindex);

		if (dst && (dst->flags & SKEIN_EP_INGRESS_ENFORCED)) {
			struct decision dd = evaluate(remote_ifindex, SKEIN_DIR_INGRESS, ep->identity,
						      cidr_identity(&p.saddr), &p);

			if (dd.verdict == SKEIN_POLICY_DENY || dd.verdict == SKEIN_POLICY_NONE) {
				c.hook = SKEIN_HOOK_POLICY_INGRESS;
				return drop(&c, dd.verdict == SKEIN_POLICY_DENY ? SKEIN_REASON_POLICY_DENY_RULE
									       : SKEIN_REASON_POLICY_DENIED);
			}
			if (dd.verdict == SKEIN_POLICY_REDIRECT && d.verdict == SKEIN_POLICY_ALLOW) {
				d = dd;
			} else if (ports_known && dd.verdict == SKEIN_POLICY_ALLOW && d.verdict == SKEIN_POLICY_ALLOW) {
				/* The receiver's program then finds the flow established. */
				ct_create(&p, remote_ifindex, SKEIN_DIR_INGRESS, ep->identity, &dd);
			}
		}
	}

	if (d.verdict == SKEIN_POLICY_REDIRECT) {
		if (dir == SKEIN_DIR_INGRESS || !ports_known)
			return drop(&c, SKEIN_REASON_PROXY_UNREACHABLE);
		ct_create(&p, c.ifindex, dir, remote_identity, &d);
		return redirect(&c, d.proxy_port, SKEIN_REASON_POLICY_REDIRECT, 2);
	}
	if (ports_known)
		ct_create(&p, c.ifindex, dir, remote_identity, &d);
	account(&c, SKEIN_VERDICT_PASS, reason, 2, p.dport);
	return SKEIN_TC_ACT_UNSPEC;
}

SEC("tc")
int skein_policy_from_endpoint(struct __sk_buff *skb)
{
	return handle(skb, SKEIN_DIR_EGRESS);
}

SEC("tc")
int skein_policy_to_endpoint(struct __sk_buff *skb)
{
	return handle(skb, SKEIN_DIR_INGRESS);
}
