/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Flow events: what the datapath tells user space about a connection or a packet, through the
 * `skein_flows` ring buffer. Every program family (service load-balancing now; policy and L7 redirect
 * next) writes the same struct to the same ring buffer (pinned by name, so each family's object reuses
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
	__u32 src_identity;          /* security identities: 0 until the policy family sets them */
	__u32 dst_identity;
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_flow_event) == 88, "skein_flow_event is 88 bytes");

#endif /* SKEIN_FLOW_H */
