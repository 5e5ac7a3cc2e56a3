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

/* Retries of the rest of a burst on a full guest ring or VF queue (vio4wd_set_tx_retries). */
static uint32_t g_tx_retries = 8;

API void vio4wd_set_tx_retries(uint32_t retries)
{
	__atomic_store_n(&g_tx_retries, retries, __ATOMIC_RELAXED);
}

/* The retry rule of both directions, `sent` of `n` packets sent so far: `send_rest` (an expression
 * sending pkts + sent, n - sent and returning how many went) again while each try sends some, at
 * most g_tx_retries times. */
#define RETRY_REST(sent, n, send_rest)                                              \
	for (uint32_t tries_ = __atomic_load_n(&g_tx_retries, __ATOMIC_RELAXED);    \
	     (sent) < (n) && tries_ > 0; tries_--) {                                \
		uint16_t more_ = (send_rest);                                       \
		if (more_ == 0)                                                     \
			break; /* no progress: the destination takes nothing now */ \
		(sent) = (uint16_t)((sent) + more_);                                \
	}

/* Enqueues pkts[0..n) to one virtio RX queue pair, retrying the rest while the guest takes some
 * (at most g_tx_retries times, as OVS); counts what was sent and what not. */
static inline void enqueue(int vid, uint16_t pair, struct rte_mbuf **pkts, uint16_t n, uint64_t bytes,
			   struct vio4wd_dir_stats *st, struct step_clock *clk)
{
	STEP_START(clk);
	uint16_t sent = rte_vhost_enqueue_burst(vid, (uint16_t)(pair * 2), pkts, n);
	RETRY_REST(sent, n, rte_vhost_enqueue_burst(vid, (uint16_t)(pair * 2), pkts + sent, (uint16_t)(n - sent)));
	STEP_END(clk, VIO4WD_STEP_VM_ENQUEUE);
	uint64_t unsent_bytes = sent < n ? sum_bytes(pkts, sent, n) : 0;
	st->tx_pkts += sent;
	st->tx_bytes += bytes - unsent_bytes;
	st->drop_full_pkts += n - sent;
	st->drop_full_bytes += unsent_bytes;
}

/*
 * VF RX -> the guest's enabled virtio RX queues: one queue takes the whole burst; with several,
 * each packet goes to the queue its flow hash picks. Returns packets moved.
 */
static inline unsigned vf_to_vm(struct work_item *it, struct step_clock *clk)
{
	/* The guest takes nothing now (no VM, or its RX rings disabled while it comes or goes): leave
	 * the packets to the NIC rather than pull them only to drop them, as the original. */
	uint32_t mask = it->vid == NO_VID ? 0 : __atomic_load_n(it->queues, __ATOMIC_ACQUIRE);
	if (mask == 0)
		return 0;
	struct rte_mbuf *pkts[VIO4WD_BURST];
	uint16_t n = TIMED_RECEIVE(clk, VIO4WD_STEP_VF_RX, rte_eth_rx_burst(it->port, 0, pkts, VIO4WD_BURST));
	if (n == 0)
		return 0;
	struct vio4wd_dir_stats *st = it->stats;
	uint64_t bytes = count_rx(st, pkts, n);
	if ((mask & (mask - 1)) == 0) {
		enqueue(it->vid, (uint16_t)__builtin_ctz(mask), pkts, n, bytes, st, clk);
	} else {
		uint16_t pairs[VIO4WD_MAX_QUEUE_PAIRS], npairs = 0;
		for (uint32_t m = mask; m != 0; m &= m - 1)
			pairs[npairs++] = (uint16_t)__builtin_ctz(m);
		/* Bucket the burst by queue, keeping each flow's order. */
		uint8_t pick[VIO4WD_BURST];
		uint16_t count[VIO4WD_MAX_QUEUE_PAIRS] = {0};
		uint64_t qbytes[VIO4WD_MAX_QUEUE_PAIRS] = {0};
		for (uint16_t i = 0; i < n; i++) {
			pick[i] = (uint8_t)(flow_hash(pkts[i]) % npairs);
			count[pick[i]]++;
			qbytes[pick[i]] += rte_pktmbuf_pkt_len(pkts[i]);
		}
		struct rte_mbuf *bucket[VIO4WD_BURST];
		uint16_t start[VIO4WD_MAX_QUEUE_PAIRS], fill[VIO4WD_MAX_QUEUE_PAIRS];
		for (uint16_t q = 0, at = 0; q < npairs; at = (uint16_t)(at + count[q]), q++)
			start[q] = fill[q] = at;
		for (uint16_t i = 0; i < n; i++)
			bucket[fill[pick[i]]++] = pkts[i];
		for (uint16_t q = 0; q < npairs; q++)
			if (count[q] != 0)
				enqueue(it->vid, pairs[q], &bucket[start[q]], count[q], qbytes[q], st, clk);
	}
	STEP_START(clk);
	rte_pktmbuf_free_bulk(pkts, n); /* the vhost enqueue copies */
	STEP_END(clk, VIO4WD_STEP_MBUF_FREE);
	return n;
}

/* A guest's TSO packet is at most 64 KiB: 128 segments cover MSS values down to 512. */
#define MAX_SEGMENTS 128

/* A packet that cannot be sent at all (offload impossible): counted with the full-queue drops. */
static inline void drop(struct rte_mbuf *m, struct vio4wd_dir_stats *st)
{
	st->drop_full_pkts++;
	st->drop_full_bytes += rte_pktmbuf_pkt_len(m);
	rte_pktmbuf_free(m);
}

/* Sends pkts[0..n) to the VF; what it refuses (full queue, invalid offload request) is freed and
 * counted. `offloads`: some packet asks the VF for an offload, so the burst is prepared for it first. */
static inline void vf_send(uint16_t port, struct rte_mbuf **pkts, uint16_t n, struct vio4wd_dir_stats *st,
			   bool offloads)
{
	if (n == 0)
		return;
	uint16_t ok = n;
	if (offloads)
		ok = rte_eth_tx_prepare(port, 0, pkts, n); /* e.g. pseudo-header sums some NICs want */
	/* Counted before the burst: the driver may free what it sent before it returns. */
	uint64_t bytes = sum_bytes(pkts, 0, n);
	uint16_t sent = rte_eth_tx_burst(port, 0, pkts, ok);
	RETRY_REST(sent, ok, rte_eth_tx_burst(port, 0, pkts + sent, (uint16_t)(ok - sent)));
	if (sent < n) {
		uint64_t unsent_bytes = sum_bytes(pkts, sent, n); /* still ours */
		st->drop_full_pkts += n - sent;
		st->drop_full_bytes += unsent_bytes;
		bytes -= unsent_bytes;
		rte_pktmbuf_free_bulk(&pkts[sent], n - sent);
	}
	st->tx_pkts += sent;
	st->tx_bytes += bytes;
}

/* The VM->VF burst pkts[0..n) (`bytes` long) to the relay's VF: offloads the VF lacks done here,
 * packet order kept; all freed or dropped when the VF is gone. Returns n. */
static inline unsigned send_to_vf(struct work_item *it, struct rte_mbuf **pkts, uint16_t n, uint64_t bytes,
				  struct vio4wd_dir_stats *st)
{
	uint16_t port = it->port;
	if (port == NO_PORT) {
		st->drop_unavail_pkts += n;
		st->drop_unavail_bytes += bytes;
		rte_pktmbuf_free_bulk(pkts, n);
		return n;
	}
	if (offload_flags_of(pkts, n) == 0) {
		vf_send(port, pkts, n, st, false);
		return n;
	}
	/* Offloads the guest asked for: what the VF lacks is done here; packet order is kept. */
	struct rte_mempool *pool = it->pool;
	uint64_t txo = it->tx_offloads;
	uint16_t k = 0;
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		if (offload_needs_segmenting(m, txo)) {
			vf_send(port, pkts, k, st, offload_flags_of(pkts, k) != 0);
			k = 0;
			struct rte_mbuf *segs[MAX_SEGMENTS];
			struct offload_losses lost = {0, 0};
			int nsegs = offload_segment(m, pool, segs, MAX_SEGMENTS, &lost);
			st->drop_full_pkts += lost.pkts;
			st->drop_full_bytes += lost.bytes;
			if (nsegs < 0) {
				drop(m, st);
				continue;
			}
			vf_send(port, segs, (uint16_t)nsegs, st, false); /* checksums complete */
		} else if (offload_sw_checksums(m, txo) != 0) {
			drop(m, st);
		} else {
			pkts[k++] = m;
		}
	}
	vf_send(port, pkts, k, st, offload_flags_of(pkts, k) != 0);
	return n;
}

/* Virtio TX queues (round robin over enabled pairs) -> VF TX. Returns packets moved. */
static inline unsigned vm_to_vf(struct work_item *it, struct step_clock *clk)
{
	uint32_t mask = __atomic_load_n(it->queues, __ATOMIC_ACQUIRE);
	if (mask == 0)
		return 0;
	/* the next enabled pair after the last one polled, wrapping: round robin in O(1) */
	uint32_t after = it->last + 1 >= VIO4WD_MAX_QUEUE_PAIRS ? 0 : mask & (UINT32_MAX << (it->last + 1));
	uint16_t q = (uint16_t)__builtin_ctz(after != 0 ? after : mask);
	it->last = q;
	struct rte_mempool *pool = it->pool;
	struct rte_mbuf *pkts[VIO4WD_BURST];
	uint16_t n = TIMED_RECEIVE(clk, VIO4WD_STEP_VM_DEQUEUE,
				   rte_vhost_dequeue_burst(it->vid, (uint16_t)(q * 2 + 1), pool, pkts, VIO4WD_BURST));
	if (n == 0)
		return 0;
	struct vio4wd_dir_stats *st = it->stats;
	uint64_t bytes = count_rx(st, pkts, n);
	STEP_START(clk); /* from here on: VF TX (with its offloads, or the drops when the VF is gone) */
	unsigned moved = send_to_vf(it, pkts, n, bytes, st);
	STEP_END(clk, VIO4WD_STEP_VF_TX);
	return moved;
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
	uint64_t start = rte_rdtsc(); /* the current pass's beginning */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* short sleeps as asked, not 50 us late */
	while (!g_quit) {
		/* The list is the worker's own until its pass counter moves on (lists_publish() waits for
		 * that before it reuses the list): items are written here (queue position) without a lock. */
		struct work_list *l = (struct work_list *)lists_current(slot);
		unsigned moved = 0, bursts = 0;
		struct step_clock clk = {0};
		for (uint32_t i = 0; i < l->n; i++) {
			struct work_item *it = &l->items[i];
			unsigned got = it->dir == VF_TO_VM ? vf_to_vm(it, &clk) : vm_to_vf(it, &clk);
			moved += got;
			bursts += got != 0;
		}
		__atomic_store_n(&ws->passes, ws->passes + 1, __ATOMIC_RELEASE);
		uint32_t idle_us = __atomic_load_n(&g_idle_sleep_us, __ATOMIC_RELAXED);
		if (moved) {
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
		if (!moved)
			STORE(ws->idle_cycles, ws->idle_cycles + spent);
		else if (spent > long_pass * bursts) /* far longer than its bursts can take: interrupted */
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
