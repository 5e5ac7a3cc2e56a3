/* Worker lcores: the packet loop, and the quiescence the control side waits for. */
#include <errno.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_vhost.h>

#include "internal.h"

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)

int worker_slot(unsigned lcore)
{
	for (unsigned i = 0; i < g_shared.n_workers; i++)
		if (g_shared.workers[i].lcore == lcore)
			return (int)i;
	return -1;
}

static inline uint64_t sum_bytes(struct rte_mbuf **pkts, uint16_t from, uint16_t to)
{
	uint64_t b = 0;
	for (uint16_t i = from; i < to; i++)
		b += rte_pktmbuf_pkt_len(pkts[i]);
	return b;
}

/* VF RX -> virtio RX queue of the lowest enabled pair. Returns packets moved. */
static inline unsigned vf_to_vm(struct relay_dp *dp, struct vio4wd_dir_stats *st)
{
	uint16_t port = LOAD(dp->port);
	if (port == NO_PORT)
		return 0;
	struct rte_mbuf *pkts[VIO4WD_BURST];
	uint16_t n = rte_eth_rx_burst(port, 0, pkts, VIO4WD_BURST);
	if (n == 0)
		return 0;
	uint64_t bytes = sum_bytes(pkts, 0, n);
	st->rx_pkts += n;
	st->rx_bytes += bytes;
	int vid = LOAD(dp->vid);
	uint32_t mask = LOAD(dp->rxq_mask);
	if (vid == NO_VID || mask == 0) {
		st->drop_unavail_pkts += n;
		st->drop_unavail_bytes += bytes;
		rte_pktmbuf_free_bulk(pkts, n);
		return n;
	}
	uint16_t q = (uint16_t)__builtin_ctz(mask);
	uint16_t sent = rte_vhost_enqueue_burst(vid, (uint16_t)(q * 2), pkts, n);
	uint64_t unsent_bytes = sum_bytes(pkts, sent, n);
	st->tx_pkts += sent;
	st->tx_bytes += bytes - unsent_bytes;
	st->drop_full_pkts += n - sent;
	st->drop_full_bytes += unsent_bytes;
	rte_pktmbuf_free_bulk(pkts, n); /* the vhost enqueue copies */
	return n;
}

/* Virtio TX queues (round robin over enabled pairs) -> VF TX. Returns packets moved. */
static inline unsigned vm_to_vf(struct relay_dp *dp, struct vio4wd_dir_stats *st)
{
	int vid = LOAD(dp->vid);
	if (vid == NO_VID)
		return 0;
	uint32_t mask = LOAD(dp->txq_mask);
	struct rte_mempool *pool = LOAD(dp->pool);
	if (mask == 0 || pool == NULL)
		return 0;
	uint16_t q = dp->next_txq;
	for (unsigned i = 0; i < VIO4WD_MAX_QUEUE_PAIRS; i++, q = (uint16_t)((q + 1) % VIO4WD_MAX_QUEUE_PAIRS))
		if (mask & (1u << q))
			break;
	dp->next_txq = (uint16_t)((q + 1) % VIO4WD_MAX_QUEUE_PAIRS);
	struct rte_mbuf *pkts[VIO4WD_BURST];
	uint16_t n = rte_vhost_dequeue_burst(vid, (uint16_t)(q * 2 + 1), pool, pkts, VIO4WD_BURST);
	if (n == 0)
		return 0;
	uint64_t bytes = sum_bytes(pkts, 0, n);
	st->rx_pkts += n;
	st->rx_bytes += bytes;
	uint16_t port = LOAD(dp->port);
	if (port == NO_PORT) {
		st->drop_unavail_pkts += n;
		st->drop_unavail_bytes += bytes;
		rte_pktmbuf_free_bulk(pkts, n);
		return n;
	}
	uint16_t sent = rte_eth_tx_burst(port, 0, pkts, n);
	if (sent < n) {
		uint64_t unsent_bytes = sum_bytes(pkts, sent, n);
		st->drop_full_pkts += n - sent;
		st->drop_full_bytes += unsent_bytes;
		bytes -= unsent_bytes;
		rte_pktmbuf_free_bulk(&pkts[sent], n - sent);
	}
	st->tx_pkts += sent;
	st->tx_bytes += bytes;
	return n;
}

int worker_main(void *arg)
{
	(void)arg;
	int lcore = (int)rte_lcore_id();
	struct vio4wd_worker_stats *ws = &g_shared.workers[worker_slot((unsigned)lcore)];
	while (!g_quit) {
		unsigned moved = 0, live = 0;
		for (unsigned r = 0; r < VIO4WD_MAX_RELAYS; r++) {
			struct relay_dp *dp = &g_dp[r];
			if (LOAD(dp->cpu[0]) == lcore) {
				live += LOAD(dp->port) != NO_PORT;
				moved += vf_to_vm(dp, &g_shared.relays[r].vf_to_vm);
			}
			if (LOAD(dp->cpu[1]) == lcore) {
				live += LOAD(dp->vid) != NO_VID;
				moved += vm_to_vf(dp, &g_shared.relays[r].vm_to_vf);
			}
		}
		__atomic_store_n(&ws->passes, ws->passes + 1, __ATOMIC_RELEASE);
		if (moved)
			ws->busy_passes++;
		else if (!live)
			rte_delay_us_sleep(200); /* nothing connected here: do not burn the CPU */
		else
			rte_pause();
	}
	return 0;
}

/* Waits until each given worker has completed a full pass after the caller's last store. */
int quiesce(const int32_t cpus[2])
{
	for (int d = 0; d < 2; d++) {
		if (cpus[d] < 0 || (d == 1 && cpus[1] == cpus[0]))
			continue;
		int slot = worker_slot((unsigned)cpus[d]);
		if (slot < 0)
			continue;
		uint64_t start = LOAD(g_shared.workers[slot].passes);
		for (int i = 0; LOAD(g_shared.workers[slot].passes) < start + 2; i++) {
			if (i > 200000)
				return set_error(ETIMEDOUT, "worker on CPU %d did not reach a quiescent point", cpus[d]);
			usleep(5);
		}
	}
	return 0;
}

API int vio4wd_relay_set_cpus(uint32_t relay, int32_t vf_to_vm_cpu, int32_t vm_to_vf_cpu)
{
	if (relay >= VIO4WD_MAX_RELAYS)
		return set_error(EINVAL, "relay %u is out of range 0-%d", relay, VIO4WD_MAX_RELAYS - 1);
	int32_t want[2] = {vf_to_vm_cpu, vm_to_vf_cpu};
	for (int d = 0; d < 2; d++)
		if (want[d] >= 0 && worker_slot((unsigned)want[d]) < 0)
			return set_error(EINVAL, "CPU %d is not a worker CPU of this daemon", want[d]);
	struct relay_dp *dp = &g_dp[relay];
	pthread_mutex_lock(&g_ctl[relay].lock);
	int ret = 0;
	for (int d = 0; d < 2 && ret == 0; d++) {
		int32_t old[2] = {dp->cpu[d], -1};
		if (old[0] == want[d])
			continue;
		__atomic_store_n(&dp->cpu[d], -1, __ATOMIC_RELEASE);
		ret = quiesce(old);
		__atomic_store_n(&dp->cpu[d], want[d], __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&g_ctl[relay].lock);
	return ret;
}
