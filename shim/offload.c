/*
 * VM->VF transmit offloads the VF cannot do: a guest that negotiated VIRTIO_NET_F_CSUM hands over
 * packets whose TCP/UDP checksum is left to the device, and with HOST_TSO4/6 packets of up to
 * 64 KiB for the device to segment. The VF is configured with whichever of those offloads it has
 * (vf.c); for the rest this file completes checksums in software and segments: TCP/UDP over IPv4
 * with DPDK's GSO library, TCP over IPv6 (which that library does not do) by copying.
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

uint64_t offload_flags_of(struct rte_mbuf **pkts, uint16_t n)
{
	uint64_t f = 0;
	for (uint16_t i = 0; i < n; i++)
		f |= pkts[i]->ol_flags;
	return f & OFFLOAD_TX_FLAGS;
}

bool offload_needs_segmenting(const struct rte_mbuf *m, uint64_t tx_offloads)
{
	/* The VF segments IPv4 only when it can also write each segment's IPv4 checksum. */
	if ((m->ol_flags & RTE_MBUF_F_TX_IPV4) && (m->ol_flags & (RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG)) &&
	    !(tx_offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM))
		return true;
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
	if (l4 == 0 && !(f & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG)))
		return 0;
	uint32_t l3_off = m->l2_len, l4_off = (uint32_t)m->l2_len + m->l3_len;
	uint32_t l4_hdr = l4 == RTE_MBUF_F_TX_TCP_CKSUM || (f & RTE_MBUF_F_TX_TCP_SEG) ? sizeof(struct rte_tcp_hdr)
											    : sizeof(struct rte_udp_hdr);
	if (m->data_len < l4_off + l4_hdr)
		return -EINVAL; /* headers must be in the first segment (vhost puts them there) */
	void *ip = rte_pktmbuf_mtod_offset(m, void *, l3_off);
	if (f & (RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG)) {
		/* The VF segments (offload_needs_segmenting said so) and completes each segment's L4
		 * checksum. Over IPv4 it also writes each segment's IP checksum, which the mbuf API has
		 * asked for with IP_CKSUM over a zeroed field: the guest's is the whole packet's. */
		if (f & RTE_MBUF_F_TX_IPV4) {
			((struct rte_ipv4_hdr *)ip)->hdr_checksum = 0;
			m->ol_flags = f | RTE_MBUF_F_TX_IP_CKSUM;
		}
		return 0;
	}
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

/* TCP over IPv6: each segment a fresh mbuf with a copy of the headers and its part of the payload. */
static int segment_tcp_ipv6(struct rte_mbuf *m, struct rte_mempool *pool, struct rte_mbuf **segs, uint16_t max)
{
	uint32_t l3_off = m->l2_len, l4_off = l3_off + m->l3_len, hdrs = l4_off + m->l4_len;
	if (!(m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) || m->l3_len < sizeof(struct rte_ipv6_hdr))
		return -ENOTSUP; /* UDP segmentation over IPv6: not offered by Linux guests over virtio-net */
	if (m->l4_len < sizeof(struct rte_tcp_hdr) || m->data_len < hdrs || m->pkt_len <= hdrs)
		return -EINVAL;
	uint32_t mss = m->tso_segsz, payload = m->pkt_len - hdrs;
	if (mss == 0 || hdrs + mss > (uint32_t)(rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM))
		return -EINVAL;
	uint32_t n = (payload + mss - 1) / mss;
	if (n > max)
		return -EINVAL;
	const uint8_t *head = rte_pktmbuf_mtod(m, const uint8_t *);
	const struct rte_tcp_hdr *tcp0 = (const struct rte_tcp_hdr *)(head + l4_off);
	uint32_t seq = rte_be_to_cpu_32(tcp0->sent_seq);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t len = RTE_MIN(mss, payload - i * mss);
		struct rte_mbuf *s = rte_pktmbuf_alloc(pool);
		uint8_t *d = s == NULL ? NULL : (uint8_t *)rte_pktmbuf_append(s, (uint16_t)(hdrs + len));
		if (d == NULL) {
			rte_pktmbuf_free(s);
			rte_pktmbuf_free_bulk(segs, i);
			return -ENOMEM;
		}
		memcpy(d, head, hdrs);
		const void *part = rte_pktmbuf_read(m, hdrs + i * mss, len, d + hdrs);
		if (part != d + hdrs)
			memcpy(d + hdrs, part, len);
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)(d + l3_off);
		ip->payload_len = rte_cpu_to_be_16((uint16_t)(m->l3_len - sizeof(*ip) + m->l4_len + len));
		struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)(d + l4_off);
		tcp->sent_seq = rte_cpu_to_be_32(seq + i * mss);
		if (i != 0)
			tcp->tcp_flags &= (uint8_t)~RTE_TCP_CWR_FLAG; /* congestion window reduced: said once */
		if (i != n - 1)
			tcp->tcp_flags &= (uint8_t)~(RTE_TCP_FIN_FLAG | RTE_TCP_PSH_FLAG); /* the last one ends it */
		tcp->cksum = 0;
		tcp->cksum = rte_ipv6_udptcp_cksum(ip, tcp);
		s->l2_len = m->l2_len;
		s->l3_len = m->l3_len;
		s->l4_len = m->l4_len;
		segs[i] = s;
	}
	rte_pktmbuf_free(m);
	return (int)n;
}

int offload_segment(struct rte_mbuf *m, struct rte_mempool *pool, struct rte_mbuf **segs, uint16_t max,
		    struct offload_losses *lost)
{
	if (m->ol_flags & RTE_MBUF_F_TX_IPV6)
		return segment_tcp_ipv6(m, pool, segs, max);
	if (!(m->ol_flags & RTE_MBUF_F_TX_IPV4))
		return -ENOTSUP;
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
	if (n < 0)
		return n;
	if (n == 0) {
		/* it fits in one segment already (GSO cleared its SEG flag): checksums here, sent whole */
		if (offload_sw_checksums(m, 0) != 0)
			return -EINVAL;
		segs[0] = m;
		return 1;
	}
	rte_pktmbuf_free(m); /* its data lives on in the segments' indirect mbufs */
	int good = 0;
	for (int i = 0; i < n; i++) {
		if (offload_sw_checksums(segs[i], 0) == 0) {
			segs[good++] = segs[i];
		} else {
			/* counted by the caller with the drops: nothing leaves uncounted */
			lost->pkts++;
			lost->bytes += rte_pktmbuf_pkt_len(segs[i]);
			rte_pktmbuf_free(segs[i]);
		}
	}
	return good;
}
