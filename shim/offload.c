/*
 * VM->VF transmit offloads the VF cannot do: a guest that negotiated VIRTIO_NET_F_CSUM hands over
 * packets whose TCP/UDP checksum is left to the device, and with HOST_TSO4/6 packets of up to
 * 64 KiB for the device to segment. The VF is configured with whichever of those offloads it has
 * (vf.c); for the rest this file completes checksums in software and segments TCP/UDP over IPv4
 * with DPDK's GSO library.
 */
/* The multi-segment checksum helpers are static inline, marked experimental in 22.11. */
#define ALLOW_EXPERIMENTAL_API
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_gso.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "internal.h"

#define SEG_FLAGS (RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG)

uint64_t offload_flags_of(struct rte_mbuf **pkts, uint16_t n)
{
	uint64_t f = 0;
	for (uint16_t i = 0; i < n; i++)
		f |= pkts[i]->ol_flags;
	return f & OFFLOAD_TX_FLAGS;
}

bool offload_needs_segmenting(const struct rte_mbuf *m, uint64_t tx_offloads)
{
	if (m->ol_flags & RTE_MBUF_F_TX_TCP_SEG)
		return !(tx_offloads & RTE_ETH_TX_OFFLOAD_TCP_TSO);
	if (m->ol_flags & RTE_MBUF_F_TX_UDP_SEG)
		return !(tx_offloads & RTE_ETH_TX_OFFLOAD_UDP_TSO);
	return false;
}

int offload_sw_checksums(struct rte_mbuf *m, uint64_t tx_offloads)
{
	uint64_t f = m->ol_flags;
	uint64_t l4 = f & RTE_MBUF_F_TX_L4_MASK;
	uint32_t l3_off = m->l2_len, l4_off = (uint32_t)m->l2_len + m->l3_len;
	uint32_t l4_hdr = l4 == RTE_MBUF_F_TX_TCP_CKSUM ? sizeof(struct rte_tcp_hdr) : sizeof(struct rte_udp_hdr);
	if (m->data_len < l4_off + l4_hdr)
		return -EINVAL; /* headers must be in the first segment (vhost puts them there) */
	void *ip = rte_pktmbuf_mtod_offset(m, void *, l3_off);
	if ((f & RTE_MBUF_F_TX_IP_CKSUM) && !(tx_offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM)) {
		struct rte_ipv4_hdr *h = ip;
		h->hdr_checksum = 0;
		h->hdr_checksum = rte_ipv4_cksum(h);
		f &= ~RTE_MBUF_F_TX_IP_CKSUM;
	}
	size_t at = 0; /* offset of the checksum field in the L4 header, 0: nothing to do */
	if (l4 == RTE_MBUF_F_TX_TCP_CKSUM && !(tx_offloads & RTE_ETH_TX_OFFLOAD_TCP_CKSUM))
		at = offsetof(struct rte_tcp_hdr, cksum);
	else if (l4 == RTE_MBUF_F_TX_UDP_CKSUM && !(tx_offloads & RTE_ETH_TX_OFFLOAD_UDP_CKSUM))
		at = offsetof(struct rte_udp_hdr, dgram_cksum);
	if (at != 0) {
		uint8_t *field = rte_pktmbuf_mtod_offset(m, uint8_t *, l4_off + at);
		memset(field, 0, 2);
		uint16_t sum = (f & RTE_MBUF_F_TX_IPV4) ? rte_ipv4_udptcp_cksum_mbuf(m, ip, (uint16_t)l4_off)
						       : rte_ipv6_udptcp_cksum_mbuf(m, ip, (uint16_t)l4_off);
		memcpy(field, &sum, 2);
		f &= ~RTE_MBUF_F_TX_L4_MASK;
	}
	m->ol_flags = f;
	return 0;
}

int offload_segment(struct rte_mbuf *m, struct rte_mempool *pool, struct rte_mbuf **segs, uint16_t max)
{
	if (!(m->ol_flags & RTE_MBUF_F_TX_IPV4))
		return -ENOTSUP; /* DPDK's GSO segments IPv4 only */
	uint32_t hdrs = (uint32_t)m->l2_len + m->l3_len + m->l4_len;
	if (m->tso_segsz == 0 || hdrs + m->tso_segsz > UINT16_MAX)
		return -EINVAL;
	struct rte_gso_ctx ctx = {
		.direct_pool = pool,
		.indirect_pool = pool,
		.flag = 0, /* IPv4 ids increase from segment to segment */
		.gso_types = RTE_ETH_TX_OFFLOAD_TCP_TSO | RTE_ETH_TX_OFFLOAD_UDP_TSO,
		.gso_size = (uint16_t)(hdrs + m->tso_segsz),
	};
	/* the segments need their IPv4 and L4 checksums, which GSO leaves alone */
	m->ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;
	if (!(m->ol_flags & RTE_MBUF_F_TX_L4_MASK))
		m->ol_flags |= (m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) ? RTE_MBUF_F_TX_TCP_CKSUM : RTE_MBUF_F_TX_UDP_CKSUM;
	int n = rte_gso_segment(m, &ctx, segs, max);
	if (n <= 0)
		return n == 0 ? -EINVAL : n;
	rte_pktmbuf_free(m); /* its data lives on in the segments' indirect mbufs */
	int good = 0;
	for (int i = 0; i < n; i++) {
		if (offload_sw_checksums(segs[i], 0) == 0)
			segs[good++] = segs[i];
		else
			rte_pktmbuf_free(segs[i]);
	}
	return good;
}
