/* Worker lcores: the packet loop over the worker's own work list (lists.c). */
#define _GNU_SOURCE /* gettid, sched_setaffinity, cpu_set_t */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_jhash.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_vhost.h>

#include "internal.h"

/* Worker counters: one writer, read by the daemon at any time (no torn 64-bit values). */
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/*
 * A pass's split by step (enum vio4wd_step), in a shim built with `make STEPS=1` only: two TSC
 * reads around each timed call cost more than the split is worth in production. STEP_START
 * marks where a step begins; STEP_END adds the cycles since then to step `s`.
 */
#ifdef VIO4WD_STEP_CYCLES
struct step_clock {
	uint64_t at;
	uint64_t cycles[VIO4WD_STEPS];
};
#define STEP_START(c) ((c)->at = rte_rdtsc())
#define STEP_END(c, s)                                   \
	do {                                             \
		uint64_t now_ = rte_rdtsc();             \
		(c)->cycles[(s)] += now_ - (c)->at;      \
		(c)->at = now_;                          \
	} while (0)
#else
struct step_clock {
	char none;
};
#define STEP_START(c) ((void)(c))
#define STEP_END(c, s) ((void)(c), (void)(s))
#endif

/* A receive call (`call`, returning a packet count) timed as step `s`, or as an empty poll when it
 * returned nothing; evaluates to the count. */
#define TIMED_RECEIVE(c, s, call)                                                \
	({                                                                       \
		STEP_START(c);                                                   \
		uint16_t got_ = (call);                                          \
		STEP_END(c, got_ != 0 ? (s) : VIO4WD_STEP_EMPTY_POLL);           \
		got_;                                                            \
	})

static inline uint64_t sum_bytes(struct rte_mbuf **pkts, uint16_t from, uint16_t to)
{
	uint64_t b = 0;
	for (uint16_t i = from; i < to; i++)
		b += rte_pktmbuf_pkt_len(pkts[i]);
	return b;
}

/* Counts a received burst in `st`; returns its bytes. */
static inline uint64_t count_rx(struct vio4wd_dir_stats *st, struct rte_mbuf **pkts, uint16_t n)
{
	uint64_t bytes = sum_bytes(pkts, 0, n);
	st->rx_pkts += n;
	st->rx_bytes += bytes;
	return bytes;
}

/* The original's hash seed, so that flows land on the same queues as with it. */
#define FLOW_HASH_SEED 0xdeadbee5

/*
 * A packet's flow hash: IPv4/IPv6 addresses, protocol and L4 ports (first fragments and
 * unfragmented packets), else the MAC addresses. One flow always gets one hash, so its packets
 * stay in order on one virtio queue.
 */
static inline uint32_t flow_hash(const struct rte_mbuf *m)
{
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t len = rte_pktmbuf_data_len(m), off = sizeof(struct rte_ether_hdr);
	if (len < off)
		return 0;
	uint16_t type = ((const struct rte_ether_hdr *)p)->ether_type;
	while ((type == RTE_BE16(RTE_ETHER_TYPE_VLAN) || type == RTE_BE16(RTE_ETHER_TYPE_QINQ)) && len >= off + 4) {
		type = *(const uint16_t *)(p + off + 2);
		off += 4;
	}
	uint32_t ports = 0;
	if (type == RTE_BE16(RTE_ETHER_TYPE_IPV4) && len >= off + sizeof(struct rte_ipv4_hdr)) {
		const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(p + off);
		uint32_t ihl = (uint32_t)(ip->version_ihl & 0xf) * 4;
		bool first = (ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_OFFSET_MASK)) == 0;
		bool l4 = ip->next_proto_id == IPPROTO_TCP || ip->next_proto_id == IPPROTO_UDP ||
			  ip->next_proto_id == IPPROTO_SCTP;
		if (first && l4 && len >= off + ihl + 4)
			memcpy(&ports, p + off + ihl, 4);
		return rte_jhash_3words(ip->src_addr, ip->dst_addr, ports ^ ip->next_proto_id, FLOW_HASH_SEED);
	}
	if (type == RTE_BE16(RTE_ETHER_TYPE_IPV6) && len >= off + sizeof(struct rte_ipv6_hdr)) {
		const struct rte_ipv6_hdr *ip = (const struct rte_ipv6_hdr *)(p + off);
		uint8_t proto = ip->proto;
		if ((proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP) &&
		    len >= off + sizeof(*ip) + 4)
			memcpy(&ports, p + off + sizeof(*ip), 4);
		return rte_jhash_1word(ports ^ proto, rte_jhash(ip->src_addr, 32, FLOW_HASH_SEED));
	}
	return rte_jhash(p, 12, FLOW_HASH_SEED); /* destination and source MAC */
}

/*
 * Backpressure, as the original: what a full guest ring or VF queue refuses is held (struct hold)
 * for the next pass while the worker goes on with its other relays, and a direction takes a new
 * burst from its source only once the last one is delivered. A slow destination so slows its own
 * source: the VF's RX ring fills (the NIC counts the loss as missed) or the guest's TX ring does.
 * Nothing is dropped in the relay while both ends are there.
 */

/* A packet that cannot be sent at all (offload impossible, or refused for too long): counted with
 * the full-queue drops. */
static inline void drop(struct rte_mbuf *m, struct vio4wd_dir_stats *st)
{
	st->drop_full_pkts++;
	st->drop_full_bytes += rte_pktmbuf_pkt_len(m);
	rte_pktmbuf_free(m);
}

/*
 * How long a destination may take none of a hold before the packet at its head is dropped
 * (counted as queue full) and the wait starts again: 100 ms. A packet that a VF refuses for good
 * (an offload or a length it will not take) so costs its direction 100 ms, not the direction; a
 * destination that is merely slow takes some within that time, and one that takes nothing for
 * longer (a paused VM, a VF whose link is down) loses one packet per 100 ms in the relay, the rest
 * where its source keeps them.
 */
static uint64_t g_hold_stall_cycles;

/* Records a pass in which the destination took nothing of the non-empty hold `h`. */
static inline void hold_refused(struct hold *h, struct vio4wd_dir_stats *st)
{
	uint64_t now = rte_rdtsc();
	if (h->stuck_since == 0 || now - h->stuck_since < g_hold_stall_cycles) {
		if (h->stuck_since == 0)
			h->stuck_since = now;
		return;
	}
	h->stuck_since = now;
	if (h->seg_first < h->seg_n) {
		drop(h->segs[h->seg_first++], st);
	} else {
		drop(h->pkts[h->first++], st);
		if (h->ready < h->first)
			h->ready = h->first;
	}
	if (hold_empty(h))
		hold_reset(h);
}

/*
 * A mode-4 (802.3ad) bond without dedicated queues sends and receives its LACP frames inside the
 * application's bursts, and DPDK asks for both at least every 100 ms: else the partner (the
 * switch) stops hearing from the bond, or the bond from it, and the aggregation expires. Backpressure
 * must not stop them: a VF->VM direction whose guest takes nothing (RX queues disabled, ring full,
 * a hold waiting) still receives from such a bond every 50 ms, and a VM->VF direction
 * with nothing to send makes a zero-length burst on each pass.
 */
static uint64_t g_lacp_poll_cycles;

/* VF->VM of a mode-4 bond that did not receive on this pass: receives if the last receive is
 * 50 ms old. The bond keeps the LACP frames; the other packets are held behind what waits
 * as far as the hold has room, the rest dropped as queue full (as the NIC's full ring would have),
 * or all dropped as undeliverable when the guest has no RX queue enabled (`mask` 0). */
static inline uint16_t lacp_receive(struct work_item *it, uint32_t mask)
{
	struct hold *h = it->hold;
	uint64_t now = rte_rdtsc();
	if (now - h->received_at < g_lacp_poll_cycles)
		return 0;
	h->received_at = now;
	struct rte_mbuf *pkts[VIO4WD_BURST];
	uint16_t got = rte_eth_rx_burst(it->port, 0, pkts, VIO4WD_BURST);
	if (got == 0)
		return 0;
	count_rx(it->stats, pkts, got);
	if (mask == 0) {
		drop_unavailable(pkts, 0, got, it->stats);
		return got;
	}
	if (h->first > 0) { /* make room at the end: the waiting packets move to the front */
		memmove(h->pkts, &h->pkts[h->first], (size_t)(h->n - h->first) * sizeof(h->pkts[0]));
		h->n = (uint16_t)(h->n - h->first);
		h->first = 0;
	}
	uint16_t fit = (uint16_t)RTE_MIN(got, VIO4WD_BURST - h->n);
	memcpy(&h->pkts[h->n], pkts, fit * sizeof(pkts[0]));
	h->n = (uint16_t)(h->n + fit);
	for (uint16_t i = fit; i < got; i++)
		drop(pkts[i], it->stats);
	return got;
}

/* VM->VF of a mode-4 bond that sent nothing on this pass: a zero-length burst, which sends only
 * what the bond's LACP machine queued (it always returns 0). Returns 0. */
static inline unsigned lacp_transmit(const struct work_item *it)
{
	if (it->lacp && it->port != NO_PORT) {
		struct rte_mbuf *none[1];
		(void)rte_eth_tx_burst(it->port, 0, none, 0);
	}
	return 0;
}

/* Copies pkts[0..n) into virtio RX queue pair `pair` as far as the guest has room; counts and
 * returns how many went (a prefix: the caller frees those and holds the rest). */
static inline uint16_t enqueue(int vid, uint16_t pair, struct rte_mbuf **pkts, uint16_t n,
			       struct vio4wd_dir_stats *st, struct step_clock *clk)
{
	STEP_START(clk);
	uint16_t sent = rte_vhost_enqueue_burst(vid, (uint16_t)(pair * 2), pkts, n);
	STEP_END(clk, VIO4WD_STEP_VM_ENQUEUE);
	st->tx_pkts += sent;
	st->tx_bytes += sum_bytes(pkts, 0, sent);
	return sent;
}

/* Frees pkts[0..n) (delivered: the vhost enqueue copied them). */
static inline void free_delivered(struct rte_mbuf **pkts, uint16_t n, struct step_clock *clk)
{
	if (n == 0)
		return;
	STEP_START(clk);
	rte_pktmbuf_free_bulk(pkts, n);
	STEP_END(clk, VIO4WD_STEP_MBUF_FREE);
}

/* Delivers the held pkts[first..n) to the guest's enabled RX queues `mask` (several): each packet
 * to the queue its flow hash picks; what a queue refuses stays held, in arrival order, so each
 * flow keeps its order. */
static inline void deliver_spread(struct work_item *it, struct hold *h, uint32_t mask, struct step_clock *clk)
{
	uint16_t pairs[VIO4WD_MAX_QUEUE_PAIRS], npairs = 0;
	for (uint32_t m = mask; m != 0; m &= m - 1)
		pairs[npairs++] = (uint16_t)__builtin_ctz(m);
	uint16_t n = (uint16_t)(h->n - h->first);
	struct rte_mbuf **pkts = &h->pkts[h->first];
	/* Bucket by queue, keeping each flow's order. */
	uint8_t pick[VIO4WD_BURST];
	uint16_t count[VIO4WD_MAX_QUEUE_PAIRS] = {0};
	for (uint16_t i = 0; i < n; i++)
		count[pick[i] = (uint8_t)(flow_hash(pkts[i]) % npairs)]++;
	struct rte_mbuf *bucket[VIO4WD_BURST];
	uint16_t start[VIO4WD_MAX_QUEUE_PAIRS], fill[VIO4WD_MAX_QUEUE_PAIRS], sent[VIO4WD_MAX_QUEUE_PAIRS];
	for (uint16_t q = 0, at = 0; q < npairs; at = (uint16_t)(at + count[q]), q++)
		start[q] = fill[q] = at;
	for (uint16_t i = 0; i < n; i++)
		bucket[fill[pick[i]]++] = pkts[i];
	for (uint16_t q = 0; q < npairs; q++)
		sent[q] = count[q] == 0 ? 0 : enqueue(it->vid, pairs[q], &bucket[start[q]], count[q], it->stats, clk);
	/* Each queue took a prefix of its bucket: free those, keep the rest in arrival order. */
	struct rte_mbuf *done[VIO4WD_BURST];
	uint16_t ndone = 0, kept = 0, taken[VIO4WD_MAX_QUEUE_PAIRS] = {0};
	for (uint16_t i = 0; i < n; i++) {
		if (taken[pick[i]]++ < sent[pick[i]])
			done[ndone++] = pkts[i];
		else
			h->pkts[kept++] = pkts[i];
	}
	free_delivered(done, ndone, clk);
	h->first = 0;
	h->n = kept;
}

/*
 * VF RX -> the guest's enabled virtio RX queues. A new burst is received only when nothing is
 * held, and with one queue only as much as the guest's ring has room for. Returns packets
 * received; sets *busy when any packet moved.
 */
static inline unsigned vf_to_vm(struct work_item *it, struct step_clock *clk, bool *busy)
{
	struct hold *h = it->hold;
	struct vio4wd_dir_stats *st = it->stats;
	/* The guest takes nothing now (no VM, or its RX rings disabled while it comes or goes): what was
	 * held for it goes, and new packets stay in the NIC rather than be pulled only to be dropped. */
	uint32_t mask = it->vid == NO_VID ? 0 : __atomic_load_n(it->queues, __ATOMIC_ACQUIRE);
	if (mask == 0) {
		if (h->first != h->n) {
			drop_unavailable(h->pkts, h->first, h->n, st);
			h->first = h->n = 0;
			*busy = true;
		}
		return it->lacp ? lacp_receive(it, 0) : 0;
	}
	bool one = (mask & (mask - 1)) == 0;
	uint16_t pair = (uint16_t)__builtin_ctz(mask);
	uint16_t got = 0;
	if (h->first == h->n) {
		uint16_t want = VIO4WD_BURST;
		if (one && it->room_known) {
			want = RTE_MIN(rte_vhost_avail_entries(it->vid, (uint16_t)(pair * 2)), VIO4WD_BURST);
			if (want == 0) /* the guest's ring is full: the packets wait in the NIC */
				return it->lacp ? lacp_receive(it, mask) : 0;
		}
		got = TIMED_RECEIVE(clk, VIO4WD_STEP_VF_RX, rte_eth_rx_burst(it->port, 0, h->pkts, want));
		if (it->lacp)
			h->received_at = rte_rdtsc();
		if (got == 0)
			return 0;
		count_rx(st, h->pkts, got);
		h->first = 0;
		h->n = got;
		*busy = true;
	} else if (it->lacp) {
		got = lacp_receive(it, mask);
	}
	uint16_t before = (uint16_t)(h->n - h->first);
	if (one) {
		uint16_t sent = enqueue(it->vid, pair, &h->pkts[h->first], before, st, clk);
		free_delivered(&h->pkts[h->first], sent, clk);
		h->first = (uint16_t)(h->first + sent);
	} else {
		deliver_spread(it, h, mask, clk);
	}
	if (h->n - h->first != before) {
		*busy = true;
		h->stuck_since = 0;
	} else {
		hold_refused(h, st);
	}
	if (h->first == h->n)
		h->first = h->n = 0;
	return got;
}

/* Removes pkts[at] from pkts[..*n) (it was dropped), closing the gap. */
static inline void remove_at(struct rte_mbuf **pkts, uint16_t at, uint16_t *n)
{
	memmove(&pkts[at], &pkts[at + 1], (size_t)(*n - at - 1) * sizeof(pkts[0]));
	(*n)--;
}

/* Sends pkts[*from..to) to the VF and advances *from past what it took; counts it. Returns
 * whether all went. */
static inline bool vf_transmit(uint16_t port, struct rte_mbuf **pkts, uint16_t *from, uint16_t to,
			       struct vio4wd_dir_stats *st)
{
	uint16_t n = (uint16_t)(to - *from);
	if (n == 0)
		return true;
	/* Counted before the burst: the driver may free what it sent before it returns. */
	uint64_t bytes = sum_bytes(pkts, *from, to);
	uint16_t sent = rte_eth_tx_burst(port, 0, &pkts[*from], n);
	if (sent < n)
		bytes -= sum_bytes(pkts, (uint16_t)(*from + sent), to); /* still ours */
	st->tx_pkts += sent;
	st->tx_bytes += bytes;
	*from = (uint16_t)(*from + sent);
	return sent == n;
}

/* Makes the held packets from `first` on ready for the VF up to the next one to segment here:
 * checksums the VF lacks done in software, then the driver's tx_prepare; a packet neither can
 * make sendable is dropped. Sets h->ready. */
static inline void prepare_run(struct work_item *it, struct hold *h, struct vio4wd_dir_stats *st)
{
	uint64_t txo = it->tx_offloads;
	uint16_t w = h->first, k = h->first;
	bool flagged = false;
	for (; k < h->n; k++) {
		struct rte_mbuf *m = h->pkts[k];
		if ((m->ol_flags & OFFLOAD_TX_FLAGS) != 0) {
			if (offload_needs_segmenting(m, txo))
				break;
			if (offload_sw_checksums(m, txo) != 0) {
				drop(m, st);
				continue;
			}
			flagged |= (m->ol_flags & OFFLOAD_TX_FLAGS) != 0;
		}
		h->pkts[w++] = m;
	}
	if (w < k) { /* close the gap the drops left */
		memmove(&h->pkts[w], &h->pkts[k], (size_t)(h->n - k) * sizeof(h->pkts[0]));
		h->n = (uint16_t)(h->n - (k - w));
	}
	h->ready = w;
	/* what the VF is asked to do: its driver's own preparation (e.g. pseudo-header sums some
	 * NICs want); a packet it refuses is dropped and the rest prepared again */
	for (uint16_t at = h->first; flagged && at < h->ready;) {
		at = (uint16_t)(at + rte_eth_tx_prepare(it->port, 0, &h->pkts[at], (uint16_t)(h->ready - at)));
		if (at < h->ready) {
			drop(h->pkts[at], st);
			remove_at(h->pkts, at, &h->n);
			h->ready--;
		}
	}
}

/* Sends the held packets to the VF in order, each packet's segments (made here when the VF cannot
 * segment) before the packets after it, until the VF refuses some: those stay held. */
static inline void vf_deliver(struct work_item *it, struct hold *h, struct vio4wd_dir_stats *st)
{
	uint16_t port = it->port;
	for (;;) {
		if (!vf_transmit(port, h->segs, &h->seg_first, h->seg_n, st) ||
		    !vf_transmit(port, h->pkts, &h->first, h->ready, st))
			return;
		if (h->first == h->n)
			break;
		prepare_run(it, h, st);
		if (h->ready > h->first || h->first == h->n)
			continue;
		/* the next packet asks for segmentation the VF cannot do: done here */
		struct rte_mbuf *m = h->pkts[h->first++];
		h->ready = h->first;
		struct offload_losses lost = {0, 0};
		int nsegs = offload_segment(m, it->pool, h->segs, MAX_SEGMENTS, &lost);
		st->drop_full_pkts += lost.pkts;
		st->drop_full_bytes += lost.bytes;
		h->seg_first = 0;
		h->seg_n = nsegs < 0 ? 0 : (uint16_t)nsegs;
		if (nsegs < 0)
			drop(m, st);
	}
	hold_reset(h);
}

/*
 * Virtio TX queues (round robin over enabled pairs) -> VF TX. A new burst is dequeued only when
 * nothing is held. Returns packets received; sets *busy when any packet moved.
 */
static inline unsigned vm_to_vf(struct work_item *it, struct step_clock *clk, bool *busy)
{
	struct hold *h = it->hold;
	struct vio4wd_dir_stats *st = it->stats;
	uint16_t got = 0;
	if (hold_empty(h)) {
		uint32_t mask = __atomic_load_n(it->queues, __ATOMIC_ACQUIRE);
		if (mask == 0)
			return lacp_transmit(it);
		/* the next enabled pair after the last one polled, wrapping: round robin in O(1) */
		uint32_t after = it->last + 1 >= VIO4WD_MAX_QUEUE_PAIRS ? 0 : mask & (UINT32_MAX << (it->last + 1));
		uint16_t q = (uint16_t)__builtin_ctz(after != 0 ? after : mask);
		it->last = q;
		got = TIMED_RECEIVE(clk, VIO4WD_STEP_VM_DEQUEUE,
				    rte_vhost_dequeue_burst(it->vid, (uint16_t)(q * 2 + 1), it->pool, h->pkts,
							    VIO4WD_BURST));
		if (got == 0)
			return lacp_transmit(it);
		count_rx(st, h->pkts, got);
		h->first = 0;
		h->n = got;
		h->ready = offload_flags_of(h->pkts, got) == 0 ? got : 0; /* nothing to prepare */
	}
	STEP_START(clk); /* from here on: VF TX (with its offloads, or the drops when the VF is gone) */
	uint64_t before = st->tx_pkts + st->drop_full_pkts + st->drop_unavail_pkts;
	if (it->port == NO_PORT)
		hold_drop_all(h, st); /* the VF is gone: what the guest sends goes */
	else
		vf_deliver(it, h, st);
	if (st->tx_pkts + st->drop_full_pkts + st->drop_unavail_pkts != before) {
		*busy = true;
		h->stuck_since = 0;
	} else if (!hold_empty(h)) {
		hold_refused(h, st);
	}
	STEP_END(clk, VIO4WD_STEP_VF_TX);
	*busy |= got != 0;
	return got;
}

/* Idle mode (vio4wd_set_idle_sleep): sleep per pass once this many passes in a row moved nothing
 * (a few milliseconds: a pass over idle relays takes well under a microsecond). The sleeps start
 * at IDLE_FIRST_SLEEP_US and double up to the configured one, so that a short lull under load
 * (the generator or the VM descheduled for a moment) costs little and a long one little CPU. */
#define IDLE_AFTER_PASSES 10000
#define IDLE_FIRST_SLEEP_US 8
static uint32_t g_idle_sleep_us;

API void vio4wd_set_idle_sleep(uint32_t us)
{
	__atomic_store_n(&g_idle_sleep_us, us, __ATOMIC_RELAXED);
}

static volatile bool g_quit;

/* Adds a busy pass of `spent` cycles (split by `clk` in a STEPS=1 build) to the worker's counters. */
static inline void count_busy(struct vio4wd_worker_stats *ws, uint64_t spent, const struct step_clock *clk)
{
	STORE(ws->busy_cycles, ws->busy_cycles + spent);
#ifdef VIO4WD_STEP_CYCLES
	for (unsigned s = 0; s < VIO4WD_STEPS; s++)
		STORE(ws->step_cycles[s], ws->step_cycles[s] + clk->cycles[s]);
#else
	(void)clk;
#endif
}

void worker_quit(bool quit)
{
	g_quit = quit;
}

/*
 * In the tests' fault build: VIO4WD_FAULT_STALL_WORKER_MS makes a worker stop that long, once, in
 * the middle of a pass over its list, just before lists_publish() swaps a shorter one in (something
 * was removed): the worker is still polling what the new list drops, as a worker descheduled by a
 * busy process of higher priority would be.
 */
#ifdef VIO4WD_FAULTS
static int g_stall_asked[VIO4WD_MAX_WORKERS]; /* 1: asked, 2: stalling */

void fault_stall_worker(unsigned slot)
{
	static bool done;
	const char *ms = getenv("VIO4WD_FAULT_STALL_WORKER_MS");
	if (done || ms == NULL || *ms == '\0')
		return;
	done = true;
	__atomic_store_n(&g_stall_asked[slot], 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 100000 && __atomic_load_n(&g_stall_asked[slot], __ATOMIC_ACQUIRE) != 2; i++)
		usleep(10); /* until it stalls (a second at most) */
}

static void stall_if_asked(unsigned slot)
{
	if (__atomic_load_n(&g_stall_asked[slot], __ATOMIC_ACQUIRE) != 1)
		return;
	__atomic_store_n(&g_stall_asked[slot], 2, __ATOMIC_RELEASE);
	rte_delay_us_sleep((unsigned)atoi(getenv("VIO4WD_FAULT_STALL_WORKER_MS")) * 1000u);
}
#define STALL_IF_ASKED(slot) stall_if_asked(slot)
#else
#define STALL_IF_ASKED(slot) ((void)(slot))
#endif

/* Each worker's thread id once it runs (vio4wd_place_threads leaves these where EAL put them). */
static pid_t g_worker_tid[VIO4WD_MAX_WORKERS];

int worker_main(void *arg)
{
	(void)arg;
	unsigned slot = (unsigned)worker_slot(rte_lcore_id());
	__atomic_store_n(&g_worker_tid[slot], gettid(), __ATOMIC_RELEASE);
	struct vio4wd_worker_stats *ws = &g_shared.workers[slot];
	uint32_t empty = 0;    /* passes in a row that moved nothing */
	uint32_t backoff = 0;  /* idle mode: the next sleep, 0 = none yet */
	const uint64_t long_pass = rte_get_tsc_hz() / 20000; /* 50 us per burst moved */
	g_hold_stall_cycles = rte_get_tsc_hz() / 10;
	g_lacp_poll_cycles = rte_get_tsc_hz() / 20;
	uint64_t start = rte_rdtsc(); /* the current pass's beginning */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* short sleeps as asked, not 50 us late */
	while (!g_quit) {
		/* The list is the worker's own until it enters another (lists_publish() waits for that
		 * before it reuses the list): items are written here (queue position) without a lock. */
		struct work_list *l = lists_enter(slot);
		unsigned moved = 0, bursts = 0;
		bool busy = false; /* some packet moved (received, delivered from a hold, or dropped) */
		struct step_clock clk = {0};
		STALL_IF_ASKED(slot);
		for (uint32_t i = 0; i < l->n; i++) {
			STALL_IF_ASKED(slot);
			struct work_item *it = &l->items[i];
			unsigned got = it->dir == VF_TO_VM ? vf_to_vm(it, &clk, &busy) : vm_to_vf(it, &clk, &busy);
			moved += got;
			bursts += got != 0;
		}
		STALL_IF_ASKED(slot);
		__atomic_store_n(&ws->passes, ws->passes + 1, __ATOMIC_RELEASE);
		uint32_t idle_us = __atomic_load_n(&g_idle_sleep_us, __ATOMIC_RELAXED);
		if (busy) {
			STORE(ws->rx_pkts, ws->rx_pkts + moved);
			STORE(ws->bursts, ws->bursts + bursts);
			ws->busy_passes++;
			empty = 0;
			backoff = 0;
		} else if (l->n == 0) {
			rte_delay_us_sleep(200); /* nothing connected here: do not burn the CPU */
		} else if (idle_us != 0 && ++empty > IDLE_AFTER_PASSES) {
			backoff = RTE_MIN(backoff == 0 ? IDLE_FIRST_SLEEP_US : backoff * 2, idle_us);
			rte_delay_us_sleep(backoff);
		} else {
			rte_pause();
		}
		/* One TSC read per pass: this pass ran (and slept) from `start` to `now`. */
		uint64_t now = rte_rdtsc(), spent = now - start;
		start = now;
		if (!busy)
			STORE(ws->idle_cycles, ws->idle_cycles + spent);
		else if (spent > long_pass * RTE_MAX(bursts, 1u)) /* far longer than its bursts take: interrupted */
			STORE(ws->long_passes, ws->long_passes + 1);
		else
			count_busy(ws, spent, &clk);
	}
	return 0;
}

/* Whether `tid` is one of the running workers. */
static bool is_worker_tid(pid_t tid)
{
	for (unsigned i = 0; i < g_shared.n_workers; i++)
		if (__atomic_load_n(&g_worker_tid[i], __ATOMIC_ACQUIRE) == tid)
			return true;
	return false;
}

API int vio4wd_place_threads(void)
{
	/* the workers say who they are as they start: wait for all of them (a second at most) */
	for (int i = 0; i < 1000; i++) {
		unsigned started = 0;
		for (unsigned w = 0; w < g_shared.n_workers; w++)
			started += __atomic_load_n(&g_worker_tid[w], __ATOMIC_ACQUIRE) != 0;
		if (started == g_shared.n_workers)
			break;
		rte_delay_us_sleep(1000);
	}
	rte_cpuset_t main_cpus = rte_lcore_cpuset(rte_get_main_lcore());
	DIR *tasks = opendir("/proc/self/task");
	if (tasks == NULL)
		return -errno;
	int moved = 0, err = 0;
	for (struct dirent *e; (e = readdir(tasks)) != NULL;) {
		pid_t tid = (pid_t)strtol(e->d_name, NULL, 10);
		if (tid <= 0 || is_worker_tid(tid))
			continue;
		if (sched_setaffinity(tid, sizeof(main_cpus), &main_cpus) == 0)
			moved++;
		else if (errno != ESRCH) /* a thread that just ended is no failure */
			err = errno;
	}
	closedir(tasks);
	return err != 0 ? -err : moved;
}
