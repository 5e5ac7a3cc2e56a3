/* The relays' mbuf pools: created when a VF or VM first needs one, moved to the VM's NUMA node,
 * freed when neither is left. */
#include <errno.h>
#include <stdio.h>

#include <rte_errno.h>
#include <rte_ethdev.h>

#include "internal.h"

#define POOL_CACHE 256 /* per-lcore LIFO cache: recently freed (cache-hot) mbufs are reused first */

static unsigned g_pool_seq;

/* Frees a pool. In the tests' fault build, VIO4WD_FAULT_DRAIN_FREED_POOLS keeps it and takes every
 * mbuf left in it instead, so that whatever still allocates from a "freed" pool starves visibly
 * (rx_nombuf, no packets) rather than reading freed memory by luck. */
static void pool_free(struct rte_mempool *mp)
{
	if (fault("VIO4WD_FAULT_DRAIN_FREED_POOLS")) {
		void *obj;
		while (rte_mempool_get(mp, &obj) == 0) {
			/* kept out for good */
		}
		return;
	}
	rte_mempool_free(mp);
}

static struct rte_mempool *create_pool(uint32_t id, int numa, unsigned mbufs)
{
	char name[RTE_MEMPOOL_NAMESIZE];
	snprintf(name, sizeof(name), "vio4wd_r%u_%u", id, g_pool_seq++);
	uint16_t room = (uint16_t)(RTE_PKTMBUF_HEADROOM + g_mbuf_data_size);
	return rte_pktmbuf_pool_create(name, mbufs, POOL_CACHE, 0, room, numa < 0 ? SOCKET_ID_ANY : numa);
}

/* The node the memory really is on (a pool asked for "any" node still lives on one). */
static int pool_node(const struct rte_mempool *mp, int asked)
{
	return mp->mz != NULL ? mp->mz->socket_id : asked;
}

/* Frees a replaced pool once all its mbufs are back. */
static void free_retired(struct relay *r)
{
	if (r->retired != NULL && rte_mempool_in_use_count(r->retired) == 0) {
		pool_free(r->retired);
		r->retired = NULL;
	}
}

int pool_ensure(struct relay *r, uint32_t id, int numa, unsigned ports)
{
	unsigned want = POOL_MBUFS * (ports == 0 ? 1 : ports);
	if (r->pool != NULL && r->pool->size >= want)
		return 0;
	free_retired(r);
	if (r->pool != NULL && r->retired != NULL)
		return set_stage_error(VIO4WD_STAGE_POOL, EBUSY,
				       "relay %u: the mbuf pool must grow for %u ports, but the one it replaced last is "
				       "still in use; try again",
				       id, ports);
	int node = r->pool != NULL ? r->numa_node : numa;
	struct rte_mempool *mp = create_pool(id, node, want);
	if (mp == NULL && node >= 0)
		mp = create_pool(id, -1, want);
	if (mp == NULL)
		return set_stage_error(VIO4WD_STAGE_POOL, rte_errno,
				       "cannot allocate the mbuf pool of relay %u (%u mbufs): %s (more hugepage memory needed?)",
				       id, want, rte_strerror(rte_errno));
	struct rte_mempool *old = r->pool;
	r->numa_node = pool_node(mp, node);
	__atomic_store_n(&r->pool, mp, __ATOMIC_RELEASE);
	if (old != NULL) {
		/* a VM connected first: its dequeues move to the bigger pool, the old one goes once empty */
		lists_publish();
		r->retired = old;
		free_retired(r);
	}
	return 0;
}

/* Where the VF's RX queue allocates from after move_vf_rx_queue(). */
enum rxq_home { RXQ_MOVED, RXQ_STAYED, RXQ_NONE };

/* Sets the VF's RX queue up again on `mp`, else on `old` again, and restarts the VF if it ran and
 * the queue has a pool. Decided by the setups' own results: rte_eth_rx_queue_info_get() is not
 * implemented by net_bonding, memif, net_vhost, tap or virtio in DPDK 22.11. */
static enum rxq_home move_vf_rx_queue(uint16_t port, bool running, int numa, struct rte_mempool *mp,
				      struct rte_mempool *old)
{
	int ret = rte_eth_dev_stop(port);
	if (ret != 0)
		RTE_LOG(WARNING, USER1, "vio4wd: port %u: stop before moving its RX queue: %s\n", port,
			rte_strerror(-ret));
	uint16_t nrx = VF_RING_DESC, ntx = VF_RING_DESC;
	(void)rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrx, &ntx); /* the values stay as asked if it fails */
	enum rxq_home home = RXQ_MOVED;
	if (rte_eth_rx_queue_setup(port, 0, nrx, (unsigned)numa, NULL, mp) != 0) {
		home = rte_eth_rx_queue_setup(port, 0, nrx, (unsigned)rte_eth_dev_socket_id(port), NULL, old) == 0
			       ? RXQ_STAYED
			       : RXQ_NONE;
	}
	if (home == RXQ_NONE) {
		/* no pool behind queue 0: the VF must not run */
		RTE_LOG(ERR, USER1, "vio4wd: port %u: the VF's RX queue could not be set up again; the VF stays stopped\n",
			port);
		return home;
	}
	if (running && (ret = rte_eth_dev_start(port)) != 0)
		RTE_LOG(ERR, USER1, "vio4wd: port %u: restart after moving its RX queue: %s\n", port, rte_strerror(-ret));
	return home;
}

void pool_rehome(struct relay *r, uint32_t id, int numa)
{
	free_retired(r);
	if (numa < 0 || r->pool == NULL || r->retired != NULL)
		return;
	if (r->numa_node == numa && !fault("VIO4WD_FAULT_FORCE_REHOME"))
		return;
	struct rte_mempool *mp = create_pool(id, numa, r->pool->size);
	if (mp == NULL)
		return; /* no memory on that node: keep the pool where it is */
	uint16_t port = r->port;
	if (port != NO_PORT) {
		/* The VF's RX queue allocates from the pool: take it out of the loop, move it, restart. */
		__atomic_store_n(&r->port, NO_PORT, __ATOMIC_RELEASE);
		lists_publish();
		enum rxq_home home = move_vf_rx_queue(port, r->vf_running, numa, mp, r->pool);
		if (home != RXQ_MOVED) {
			/* The VF stayed on the old pool (or has none and stays stopped): mp is unused. */
			if (home == RXQ_NONE) {
				__atomic_store_n(&r->vf_running, false, __ATOMIC_RELEASE);
				push_event(VIO4WD_EV_VF_FAILED, id, -EIO, 0, 0);
			}
			__atomic_store_n(&r->port, port, __ATOMIC_RELEASE);
			lists_publish();
			pool_free(mp);
			return;
		}
	}
	struct rte_mempool *old = r->pool;
	__atomic_store_n(&r->pool, mp, __ATOMIC_RELEASE);
	r->numa_node = pool_node(mp, numa);
	if (port != NO_PORT)
		__atomic_store_n(&r->port, port, __ATOMIC_RELEASE);
	lists_publish();
	r->retired = old;
	free_retired(r);
}

void pool_release_if_idle(struct relay *r)
{
	if (r->pool == NULL || r->vid != NO_VID || r->port != NO_PORT)
		return;
	struct rte_mempool *mp = r->pool;
	__atomic_store_n(&r->pool, NULL, __ATOMIC_RELEASE);
	lists_publish();
	pool_free(mp);
	r->numa_node = -1;
	free_retired(r);
}

void pools_free_all(void)
{
	for (uint32_t id = 0; id < VIO4WD_MAX_RELAYS; id++) {
		struct relay *r = relay_get(id);
		if (r->pool != NULL) {
			rte_mempool_free(r->pool);
			r->pool = NULL;
		}
		if (r->retired != NULL) {
			rte_mempool_free(r->retired);
			r->retired = NULL;
		}
	}
}
