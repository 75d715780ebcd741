/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parser for tc programs: Ethernet, then IPv4 or IPv6, then the TCP/UDP/SCTP ports (and the TCP
 * flags, the ICMP type). Every header access is bounds-checked against data_end; a packet that ends early
 * is reported, never read past.
 * The policy family builds on it. Unit-tested with crafted packets through BPF_PROG_TEST_RUN
 * (test/datapath/parser.test.ts).
 */
#ifndef SKEIN_PARSE_H
#define SKEIN_PARSE_H

#ifndef __bpf__
#error "skein_parse.h is for BPF programs only"
#endif

#include "skein_common.h"
#include "skein_flow.h"

struct skein_pkt {
	struct skein_addr saddr;
	struct skein_addr daddr;
	__u16 sport; /* network byte order; 0 when not TCP/UDP or not reachable */
	__u16 dport;
	__u8 proto;
	__u8 reason; /* SKEIN_REASON_NONE when fully parsed, else why it stopped (enum skein_reason) */
	__u8 tcp_flags; /* TCP: the flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10) when reachable */
	__u8 icmp_type; /* ICMP and ICMPv6: the type when reachable */
};

#define SKEIN_TCP_FIN 0x01
#define SKEIN_TCP_SYN 0x02
#define SKEIN_TCP_RST 0x04
#define SKEIN_TCP_ACK 0x10

enum {
	SKEIN_PARSE_NOT_IP = 0, /* not IPv4/IPv6 (ARP, …), or shorter than an Ethernet header */
	SKEIN_PARSE_IP = 1,     /* an IP packet; p->reason says how far the parse got */
};

static __always_inline int skein_parse_ports(struct skein_pkt *p, void *l4, void *data_end)
{
	__u16 *ports = l4;
	__u8 *bytes = l4;

	if (p->proto == IPPROTO_ICMP || p->proto == 58 /* ICMPv6 */) {
		if ((void *)(bytes + 1) <= data_end)
			p->icmp_type = bytes[0];
		return SKEIN_PARSE_IP;
	}
	/* SCTP has its ports where TCP and UDP have them. */
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP && p->proto != IPPROTO_SCTP)
		return SKEIN_PARSE_IP;
	if ((void *)(ports + 2) > data_end) {
		p->reason = SKEIN_REASON_PARSE_TRUNCATED;
		return SKEIN_PARSE_IP;
	}
	p->sport = ports[0];
	p->dport = ports[1];
	if (p->proto == IPPROTO_TCP && (void *)(bytes + 14) <= data_end)
		p->tcp_flags = bytes[13];
	return SKEIN_PARSE_IP;
}

static __always_inline int skein_parse_ipv4(struct skein_pkt *p, struct iphdr *ip, void *data_end)
{
	if ((void *)(ip + 1) > data_end) {
		p->reason = SKEIN_REASON_PARSE_TRUNCATED;
		return SKEIN_PARSE_IP;
	}
	skein_addr_set_v4(&p->saddr, ip->saddr);
	skein_addr_set_v4(&p->daddr, ip->daddr);
	p->proto = ip->protocol;
	if (ip->ihl < 5) {
		p->reason = SKEIN_REASON_PARSE_MALFORMED;
		return SKEIN_PARSE_IP;
	}
	if (ip->frag_off & bpf_htons(0x1fff)) {
		p->reason = SKEIN_REASON_PARSE_FRAGMENT;
		return SKEIN_PARSE_IP;
	}
	return skein_parse_ports(p, (void *)ip + ip->ihl * 4, data_end);
}

static __always_inline int skein_parse_ipv6(struct skein_pkt *p, struct ipv6hdr *ip6, void *data_end)
{
	if ((void *)(ip6 + 1) > data_end) {
		p->reason = SKEIN_REASON_PARSE_TRUNCATED;
		return SKEIN_PARSE_IP;
	}
#pragma unroll
	for (int i = 0; i < 4; i++) {
		p->saddr.addr[i] = ip6->saddr.in6_u.u6_addr32[i];
		p->daddr.addr[i] = ip6->daddr.in6_u.u6_addr32[i];
	}
	p->proto = ip6->nexthdr;
	switch (ip6->nexthdr) {
	case 0:  /* hop-by-hop */
	case 43: /* routing */
	case 44: /* fragment */
	case 51: /* AH */
	case 60: /* destination options */
		p->reason = SKEIN_REASON_PARSE_IPV6_EXT;
		return SKEIN_PARSE_IP;
	}
	return skein_parse_ports(p, ip6 + 1, data_end);
}

/* Fills *p from the packet in skb; see SKEIN_PARSE_*. */
static __always_inline int skein_parse_skb(struct __sk_buff *skb, struct skein_pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return SKEIN_PARSE_NOT_IP;
	if (eth->h_proto == bpf_htons(SKEIN_ETH_P_IP))
		return skein_parse_ipv4(p, (void *)(eth + 1), data_end);
	if (eth->h_proto == bpf_htons(SKEIN_ETH_P_IPV6))
		return skein_parse_ipv6(p, (void *)(eth + 1), data_end);
	return SKEIN_PARSE_NOT_IP;
}

#endif /* SKEIN_PARSE_H */
