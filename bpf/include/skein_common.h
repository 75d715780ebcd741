/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Definitions shared by every Skein BPF program family and by user space.
 *
 * This header (and every skein_*.h that holds structs) compiles in two worlds: BPF programs, built
 * against vmlinux.h, and user space (the addon, tests), built against <linux/types.h>. Structs shared
 * with user space use fixed-width types only, lay out every byte explicitly (padding is a named field,
 * always written as zero), and assert their size, so that the TypeScript codecs in src/datapath/codecs/
 * can mirror them; test/datapath/btfAlignment.test.ts checks the codecs against the BTF of the compiled
 * object (the idea of Cilium's alignchecker).
 *
 * Addresses: every address is 16 bytes, in network byte order. IPv4 is stored IPv4-mapped
 * (::ffff:a.b.c.d). One map then serves both families without a family field that could disagree with
 * the address, and a dual-stack IPv6 socket that connects to ::ffff:10.96.0.10 finds the same IPv4
 * service as an IPv4 socket connecting to 10.96.0.10.
 */
#ifndef SKEIN_COMMON_H
#define SKEIN_COMMON_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#ifdef __cplusplus
#define SKEIN_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define SKEIN_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#define SKEIN_AF_INET 2
#define SKEIN_AF_INET6 10

/* An address as the datapath stores it: 16 bytes, network byte order, IPv4 mapped into IPv6. */
struct skein_addr {
	__u32 addr[4];
};
SKEIN_STATIC_ASSERT(sizeof(struct skein_addr) == 16, "skein_addr is 16 bytes");

#ifdef __bpf__
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* BPF-only helpers. Ethernet/TC constants are macros in the kernel, so vmlinux.h does not carry them. */
#define SKEIN_ETH_P_IP 0x0800
#define SKEIN_ETH_P_IPV6 0x86DD
#define SKEIN_TC_ACT_UNSPEC (-1) /* tcx: TCX_NEXT, run the next program; legacy tc: continue */
#define SKEIN_SOCK_ALLOW 1       /* cgroup sock_addr hooks: let the call proceed */
#define SKEIN_SOCK_REJECT 0      /* connect()/sendmsg() fail with EPERM */

static __always_inline void skein_addr_set_v4(struct skein_addr *a, __u32 ip4)
{
	a->addr[0] = 0;
	a->addr[1] = 0;
	a->addr[2] = bpf_htonl(0x0000ffff);
	a->addr[3] = ip4;
}

static __always_inline int skein_addr_is_v4(const struct skein_addr *a)
{
	return a->addr[0] == 0 && a->addr[1] == 0 && a->addr[2] == bpf_htonl(0x0000ffff);
}
#endif /* __bpf__ */

#endif /* SKEIN_COMMON_H */
