/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Identity-based L3/L4 policy and the L7 redirect: the maps bpf/policy.bpf.c reads and the control plane
 * writes. Mirrored by src/datapath/codecs/policy.ts (checked against BTF by
 * test/datapath/btfAlignment.test.ts).
 *
 *   skein_endpoints     (hash)      host-side ifindex               -> {identity, enforced directions}
 *   skein_ipcache       (LPM trie)  {prefixlen, address}            -> {identity, local ifindex}
 *   skein_cidr_ids      (LPM trie)  {prefixlen, address}            -> {CIDR identity}
 *   skein_policy        (LPM trie)  {prefixlen, ifindex, identity,
 *                                    direction, proto, port}        -> {verdict, proxy port}
 *   skein_ct            (LRU hash)  {tuple, ifindex, direction}     -> {last seen, verdict, ...}
 *   skein_policy_stats  (per-CPU array) enum skein_reason           -> {packets, bytes}
 *
 * An endpoint is a local pod, named by the ifindex of its host-side interface (the programs run there:
 * tc ingress sees what the pod sends, its egress; tc egress what it receives, its ingress). A packet's
 * remote address has two identities: the one of the pod or node that holds it (skein_ipcache, /32 and
 * /128 entries in practice) and the CIDR identity of the longest ipBlock prefix around it
 * (skein_cidr_ids), so that an ipBlock selects pod addresses too, as NetworkPolicy says.
 *
 * skein_policy is an LPM trie over (ifindex, identity, direction, proto, port): the first 72 bits
 * (ifindex, identity, direction) always match in full; then 8 bits select the protocol and up to 16 the
 * port (network byte order, so the prefix bits are the high bits of the port). A port range becomes the
 * few aligned prefixes that cover it. The lookup is done for the remote's identity, its CIDR identity and
 * SKEIN_IDENTITY_ANY, and the highest verdict wins (deny > redirect > allow). Every entry stores the
 * highest verdict of all the entries that cover it (the control plane flattens them), so the longest match
 * of one lookup is already the answer for that identity.
 *
 * Every map is pinned by name (LIBBPF_PIN_BY_NAME) under the loader's pin root: an agent restart reuses
 * them, connection tracking included, and traffic keeps flowing.
 */
#ifndef SKEIN_POLICY_H
#define SKEIN_POLICY_H

#include "skein_common.h"

#define SKEIN_POLICY_MAX_ENDPOINTS 4096
#define SKEIN_POLICY_MAX_IPCACHE 262144
#define SKEIN_POLICY_MAX_CIDRS 16384
#define SKEIN_POLICY_MAX_RULES 262144
#define SKEIN_POLICY_MAX_CT 262144
/* skein_policy_stats has one slot per enum skein_reason value below this. */
#define SKEIN_POLICY_STATS_SLOTS 64

/* Identities: 0 in a policy key means any remote; 1 and 2 are reserved; labels from 256, CIDRs from 2^24. */
#define SKEIN_IDENTITY_ANY 0
#define SKEIN_IDENTITY_HOST 1
#define SKEIN_IDENTITY_WORLD 2

/* Bits of skein_policy_key after prefixlen: ifindex, identity, direction always match. */
#define SKEIN_POLICY_PREFIX_FIXED 72
#define SKEIN_POLICY_PREFIX_PROTO 80
#define SKEIN_POLICY_PREFIX_FULL 96

/* Traffic direction as the endpoint (the pod) sees it. */
enum skein_direction {
	SKEIN_DIR_INGRESS = 0, /* to the pod: tc egress of its host-side interface */
	SKEIN_DIR_EGRESS = 1,  /* from the pod: tc ingress of its host-side interface */
};

/* A policy entry's verdict; when several match, the highest wins. */
enum skein_policy_verdict {
	SKEIN_POLICY_NONE = 0, /* no entry: default deny where a policy selects the endpoint */
	SKEIN_POLICY_ALLOW = 1,
	SKEIN_POLICY_REDIRECT = 2, /* hand the flow to the node proxy (proxy_port) */
	SKEIN_POLICY_DENY = 3,
};

/* skein_endpoint.flags */
#define SKEIN_EP_INGRESS_ENFORCED 1
#define SKEIN_EP_EGRESS_ENFORCED 2

/* skein_endpoints is keyed by the host-side ifindex (__u32). The value, 8 bytes: */
struct skein_endpoint {
	__u32 identity;
	__u8 flags; /* SKEIN_EP_*_ENFORCED: a policy selects the pod in that direction (default deny) */
	__u8 pad0;
	__u16 pad1;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_endpoint) == 8, "skein_endpoint is 8 bytes");

/* 20 bytes: the LPM key of skein_ipcache and skein_cidr_ids. IPv4 a.b.c.d/n is ::ffff:a.b.c.d/(96 + n). */
struct skein_ipcache_key {
	__u32 prefixlen;
	struct skein_addr addr;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_ipcache_key) == 20, "skein_ipcache_key is 20 bytes");

/* 8 bytes. ifindex: the host-side interface when the address is a local endpoint's, else 0. */
struct skein_ipcache_entry {
	__u32 identity;
	__u32 ifindex;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_ipcache_entry) == 8, "skein_ipcache_entry is 8 bytes");

/* skein_cidr_ids values are a __u32 CIDR identity; 0 means none (the IPv4-mapped range under an IPv6 prefix). */

/* 16 bytes. dport in network byte order; proto 0 with prefixlen 72 means any protocol. */
struct skein_policy_key {
	__u32 prefixlen;
	__u32 ifindex;
	__u32 identity;
	__u8 direction; /* enum skein_direction */
	__u8 proto;
	__u16 dport;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_policy_key) == 16, "skein_policy_key is 16 bytes");

/* 4 bytes. */
struct skein_policy_entry {
	__u8 verdict; /* enum skein_policy_verdict */
	__u8 pad0;
	__u16 proxy_port; /* network byte order; redirect only */
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_policy_entry) == 4, "skein_policy_entry is 4 bytes");

/*
 * 44 bytes: a flow as its first packet had it, at one endpoint in one direction. Two local pods that talk
 * have an entry each (the client's egress, the server's ingress), so one pod's verdict never stands in
 * for the other's.
 */
struct skein_ct_key {
	struct skein_addr saddr;
	struct skein_addr daddr;
	__u16 sport;
	__u16 dport;
	__u32 ifindex;
	__u8 proto;
	__u8 direction;
	__u16 pad0;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_ct_key) == 44, "skein_ct_key is 44 bytes");

/* skein_ct_entry.flags */
#define SKEIN_CT_SEEN_REPLY 1
#define SKEIN_CT_CLOSING 2 /* a FIN or RST was seen: the short timeout applies */

/* 16 bytes. */
struct skein_ct_entry {
	__u64 last_seen_ns; /* bpf_ktime_get_ns() */
	__u32 remote_identity;
	__u8 verdict; /* SKEIN_POLICY_ALLOW or SKEIN_POLICY_REDIRECT */
	__u8 flags;
	__u16 proxy_port; /* network byte order; redirect only */
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_ct_entry) == 16, "skein_ct_entry is 16 bytes");

/* 16 bytes, per CPU, one per reason. */
struct skein_policy_counter {
	__u64 packets;
	__u64 bytes;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_policy_counter) == 16, "skein_policy_counter is 16 bytes");

#endif /* SKEIN_POLICY_H */
