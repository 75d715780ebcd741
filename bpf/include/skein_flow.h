/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Flow events: what the datapath tells user space about a connection or a packet, through the
 * `skein_flows` ring buffer. Every program family (service load-balancing, policy and the L7 redirect)
 * writes the same struct to the same ring buffer (pinned by name, so each family's object reuses
 * it). Mirrored by FlowEvent in src/datapath/codecs/flow.ts.
 */
#ifndef SKEIN_FLOW_H
#define SKEIN_FLOW_H

#include "skein_common.h"

/* What happened to the flow. */
enum skein_verdict {
	SKEIN_VERDICT_PASS = 0,       /* left as it was */
	SKEIN_VERDICT_TRANSLATED = 1, /* destination (or, on replies, source) rewritten */
	SKEIN_VERDICT_DROP = 2,       /* refused: the connect()/sendmsg() failed, or the packet dropped */
	SKEIN_VERDICT_REDIRECT = 3,   /* handed to the node proxy (policy): dport is the proxy port */
};

/* Why. One list for every family, so a reason code means the same thing everywhere. */
enum skein_reason {
	SKEIN_REASON_NONE = 0,
	SKEIN_REASON_LB_BACKEND = 1,         /* service destination translated to a backend */
	SKEIN_REASON_LB_NO_BACKENDS = 2,     /* the service has no backends: refused */
	SKEIN_REASON_LB_SLOT_MISSING = 3,    /* the chosen slot has no entry (a control-plane bug): refused */
	SKEIN_REASON_LB_BACKEND_MISSING = 4, /* the slot names an unknown backend (a bug): refused */
	SKEIN_REASON_LB_FAMILY_MISMATCH = 5, /* an IPv6 backend for an IPv4 socket: refused */
	SKEIN_REASON_LB_REVERSE = 6,         /* a reply's source (or getpeername) translated back to the service */
	SKEIN_REASON_PARSE_TRUNCATED = 7,    /* the packet ends inside a header */
	SKEIN_REASON_PARSE_FRAGMENT = 8,     /* an IPv4 non-first fragment: no ports */
	SKEIN_REASON_PARSE_IPV6_EXT = 9,     /* IPv6 extension headers are not walked yet: no ports */
	SKEIN_REASON_PARSE_MALFORMED = 10,   /* an impossible header (IPv4 IHL < 5) */
	/* The policy family (bpf/policy.bpf.c) numbers from 32, leaving room below for the others. */
	SKEIN_REASON_POLICY_ALLOWED = 32,      /* a new flow a rule allows */
	SKEIN_REASON_POLICY_NOT_ENFORCED = 33, /* a new flow of an endpoint no policy selects in that direction */
	SKEIN_REASON_POLICY_DENIED = 34,       /* no rule allows it: the default deny of a selected endpoint */
	SKEIN_REASON_POLICY_DENY_RULE = 35,    /* a deny rule matched */
	SKEIN_REASON_POLICY_REDIRECT = 36,     /* a new flow handed to the node proxy */
	SKEIN_REASON_CT_ESTABLISHED = 37,      /* a later packet of a tracked flow */
	SKEIN_REASON_CT_REPLY = 38,            /* a reply of a tracked flow */
	SKEIN_REASON_PROXY_UNAVAILABLE = 39,   /* redirect, but nothing listens on the proxy port: dropped */
	SKEIN_REASON_PROXY_UNREACHABLE = 40,   /* redirect where the flow cannot be handed over (tc egress): dropped */
	SKEIN_REASON_FROM_PROXY = 41,          /* the node proxy's own upstream connection (marked): passed */
	SKEIN_REASON_PROXY_ASSIGN_FAILED = 42, /* bpf_sk_assign refused the proxy's socket: dropped */
};

/* Which program emitted the event. */
enum skein_hook {
	SKEIN_HOOK_NONE = 0,
	SKEIN_HOOK_CONNECT4 = 1,
	SKEIN_HOOK_CONNECT6 = 2,
	SKEIN_HOOK_SENDMSG4 = 3,
	SKEIN_HOOK_SENDMSG6 = 4,
	SKEIN_HOOK_RECVMSG4 = 5,
	SKEIN_HOOK_RECVMSG6 = 6,
	SKEIN_HOOK_GETPEERNAME4 = 7,
	SKEIN_HOOK_GETPEERNAME6 = 8,
	SKEIN_HOOK_TC = 9,
	/* The policy family numbers from 16. */
	SKEIN_HOOK_POLICY_EGRESS = 16,  /* tc ingress of a pod's host-side interface: what the pod sends */
	SKEIN_HOOK_POLICY_INGRESS = 17, /* tc egress of it (or a local sender's ingress check): what it receives */
};

/*
 * One event, 88 bytes. Addresses as in skein_common.h; ports in network byte order; zero where the hook
 * cannot know (no source port at connect(), no socket cookie for a packet without a socket).
 */
struct skein_flow_event {
	__u64 timestamp_ns;          /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 cookie;                /* socket cookie */
	struct skein_addr saddr;     /* source */
	struct skein_addr daddr;     /* destination, after any translation */
	struct skein_addr orig_daddr; /* destination before translation (the service), else = daddr */
	__u16 sport;
	__u16 dport;
	__u16 orig_dport;
	__u8 proto;                  /* IPPROTO_* */
	__u8 verdict;                /* enum skein_verdict */
	__u8 reason;                 /* enum skein_reason */
	__u8 hook;                   /* enum skein_hook */
	__u16 pad0;
	__u32 ifindex;               /* the interface (tc), else 0 */
	__u32 src_identity;          /* security identities (policy family), else 0 */
	__u32 dst_identity;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_flow_event) == 88, "skein_flow_event is 88 bytes");

#endif /* SKEIN_FLOW_H */
