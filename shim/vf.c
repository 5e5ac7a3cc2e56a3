/* The VF side of relays: any DPDK ethdev given as devargs; and the relays' mbuf pools. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_eth_bond.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "internal.h"

/* 64 relays x 2559 mbufs of ~2.4 KiB stay within 512 MiB of hugepages. */
#define POOL_MBUFS 2559
#define POOL_CACHE 256 /* per-lcore LIFO cache: recently freed (cache-hot) mbufs are reused first */
#define RX_DESC 512
#define TX_DESC 512

static unsigned g_pool_seq;

int relay_ensure_pool(uint32_t relay, int numa)
{
	struct relay_dp *dp = &g_dp[relay];
	if (dp->pool != NULL)
		return 0;
	char name[RTE_MEMPOOL_NAMESIZE];
	snprintf(name, sizeof(name), "vio4wd_r%u_%u", relay, g_pool_seq++);
	uint16_t room = (uint16_t)(RTE_PKTMBUF_HEADROOM + g_mbuf_data_size);
	struct rte_mempool *mp = rte_pktmbuf_pool_create(name, POOL_MBUFS, POOL_CACHE, 0, room,
							 numa < 0 ? SOCKET_ID_ANY : numa);
	if (mp == NULL && numa >= 0)
		mp = rte_pktmbuf_pool_create(name, POOL_MBUFS, POOL_CACHE, 0, room, SOCKET_ID_ANY);
	if (mp == NULL)
		return set_stage_error(VIO4WD_STAGE_POOL, rte_errno, "cannot allocate the mbuf pool of relay %u: %s (more hugepage memory needed?)",
				 relay, rte_strerror(rte_errno));
	/* The node the memory really is on (a pool asked for "any" node still lives on one). */
	g_ctl[relay].numa_node = mp->mz != NULL ? mp->mz->socket_id : numa;
	__atomic_store_n(&dp->pool, mp, __ATOMIC_RELEASE);
	return 0;
}

/* Frees a replaced pool once all its mbufs are back. */
static void free_retired_pool(uint32_t relay)
{
	struct relay_ctl *c = &g_ctl[relay];
	if (c->retired != NULL && rte_mempool_in_use_count(c->retired) == 0) {
		rte_mempool_free(c->retired);
		c->retired = NULL;
	}
}

void relay_rehome_pool(uint32_t relay, int numa)
{
	struct relay_ctl *c = &g_ctl[relay];
	struct relay_dp *dp = &g_dp[relay];
	free_retired_pool(relay);
	if (numa < 0 || dp->pool == NULL || c->numa_node == numa || c->retired != NULL)
		return;
	char name[RTE_MEMPOOL_NAMESIZE];
	snprintf(name, sizeof(name), "vio4wd_r%u_%u", relay, g_pool_seq++);
	uint16_t room = (uint16_t)(RTE_PKTMBUF_HEADROOM + g_mbuf_data_size);
	struct rte_mempool *mp = rte_pktmbuf_pool_create(name, POOL_MBUFS, POOL_CACHE, 0, room, numa);
	if (mp == NULL)
		return; /* no memory on that node: keep the pool where it is */
	uint16_t port = dp->port;
	if (port != NO_PORT) {
		/* The VF's RX queue allocates from the pool: take it out of the loop, move it, restart. */
		__atomic_store_n(&dp->port, NO_PORT, __ATOMIC_RELEASE);
		quiesce(dp->cpu);
		rte_eth_dev_stop(port);
		uint16_t nrx = RX_DESC, ntx = TX_DESC;
		rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrx, &ntx);
		if (rte_eth_rx_queue_setup(port, 0, nrx, (unsigned)numa, NULL, mp) != 0 &&
		    rte_eth_rx_queue_setup(port, 0, nrx, (unsigned)rte_eth_dev_socket_id(port), NULL, dp->pool) != 0) {
			fprintf(stderr, "vio4wd: relay %u: the VF's RX queue could not be set up again\n", relay);
		}
		rte_eth_dev_start(port);
		struct rte_eth_rxq_info qi;
		if (rte_eth_rx_queue_info_get(port, 0, &qi) == 0 && qi.mp != mp) {
			/* The VF stayed on the old pool: keep it there. */
			__atomic_store_n(&dp->port, port, __ATOMIC_RELEASE);
			rte_mempool_free(mp);
			return;
		}
	}
	struct rte_mempool *old = dp->pool;
	__atomic_store_n(&dp->pool, mp, __ATOMIC_RELEASE);
	c->numa_node = mp->mz != NULL ? mp->mz->socket_id : numa;
	if (port != NO_PORT)
		__atomic_store_n(&dp->port, port, __ATOMIC_RELEASE);
	quiesce(dp->cpu);
	c->retired = old;
	free_retired_pool(relay);
}

/* Frees the pool once neither a VM nor a VF uses it (workers already quiesced). */
void relay_release_pool_if_idle(uint32_t relay)
{
	struct relay_dp *dp = &g_dp[relay];
	if (dp->pool == NULL || dp->vid != NO_VID || dp->port != NO_PORT)
		return;
	struct rte_mempool *mp = dp->pool;
	__atomic_store_n(&dp->pool, NULL, __ATOMIC_RELEASE);
	int32_t cpus[2] = {dp->cpu[0], dp->cpu[1]};
	quiesce(cpus);
	rte_mempool_free(mp);
	g_ctl[relay].numa_node = -1;
	free_retired_pool(relay);
}

static void remove_device(const char *devname)
{
	uint16_t port;
	if (rte_eth_dev_get_port_by_name(devname, &port) != 0)
		return;
	struct rte_eth_dev_info info;
	struct rte_device *dev = rte_eth_dev_info_get(port, &info) == 0 ? info.device : NULL;
	rte_eth_dev_stop(port); /* a bond that failed to start may have started it */
	rte_eth_dev_close(port);
	if (dev != NULL)
		rte_dev_remove(dev);
}

/* The ethdev name of devargs: up to the first ',' (PCI addresses come normalised). */
static int device_name(const char *devargs, char *name, size_t size)
{
	size_t len = strcspn(devargs, ",");
	if (len == 0 || len >= size)
		return set_error(EINVAL, "'%s' is not a DPDK device (give a PCI address or vdev devargs)", devargs);
	memcpy(name, devargs, len);
	name[len] = '\0';
	return 0;
}

/* Probes one device that must not exist yet; returns its port in *port. */
static int probe_device(const char *devargs, const char *name, uint16_t *port)
{
	if (rte_eth_dev_get_port_by_name(name, port) == 0)
		return set_stage_error(VIO4WD_STAGE_PROBE, EEXIST, "device %s is already in use by another relay", name);
	if (rte_eth_dev_count_avail() >= RTE_MAX_ETHPORTS)
		return set_stage_error(VIO4WD_STAGE_PROBE, ENOSPC,
				       "DPDK allows %d ports per process (RTE_MAX_ETHPORTS) and all are in use",
				       RTE_MAX_ETHPORTS);
	int ret = rte_dev_probe(devargs);
	if (ret != 0)
		return set_stage_error(VIO4WD_STAGE_PROBE, -ret, "cannot probe device '%s': %s", devargs,
				       rte_strerror(-ret));
	if (rte_eth_dev_get_port_by_name(name, port) != 0) {
		remove_device(name);
		return set_stage_error(VIO4WD_STAGE_PROBE, ENODEV, "device '%s' was probed but has no ethdev port",
				       devargs);
	}
	return 0;
}

/* Configures and starts the relay's port (one RX and one TX queue on the relay's pool). */
static int start_port(uint32_t relay, uint16_t port, const char *name, uint32_t mtu)
{
	struct relay_ctl *c = &g_ctl[relay];
	struct relay_dp *dp = &g_dp[relay];
	int ret;
	struct rte_eth_dev_info info;
	if ((ret = rte_eth_dev_info_get(port, &info)) != 0)
		return set_stage_error(VIO4WD_STAGE_INFO, -ret, "cannot read device info of %s: %s", name,
				       rte_strerror(-ret));
	int numa = rte_eth_dev_socket_id(port);
	if ((ret = relay_ensure_pool(relay, c->numa_node >= 0 ? c->numa_node : numa)) != 0)
		return ret;
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	/* Some devices (memif, tap) take smaller frames than the configured MTU: use what they allow. */
	uint32_t max_mtu = info.max_rx_pktlen > RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN
				   ? info.max_rx_pktlen - RTE_ETHER_HDR_LEN - RTE_ETHER_CRC_LEN
				   : info.max_mtu;
	if (max_mtu > info.max_mtu)
		max_mtu = info.max_mtu;
	if (mtu > max_mtu)
		mtu = max_mtu;
	if (mtu < info.min_mtu)
		mtu = info.min_mtu;
	conf.rxmode.mtu = mtu;
	/* As the original: checksum offloads where the device has them, TSO when asked for; what the
	 * VF lacks, the worker does in software (offload.c). */
	conf.rxmode.offloads = info.rx_offload_capa & (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM |
						       RTE_ETH_RX_OFFLOAD_TCP_CKSUM);
	uint64_t tx = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM |
		      RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	if (g_vf_tso)
		tx |= RTE_ETH_TX_OFFLOAD_TCP_TSO | RTE_ETH_TX_OFFLOAD_UDP_TSO;
	conf.txmode.offloads = info.tx_offload_capa & tx;
	if ((ret = rte_eth_dev_configure(port, 1, 1, &conf)) != 0)
		return set_stage_error(VIO4WD_STAGE_CONFIGURE, -ret, "cannot configure %s: %s", name,
				       rte_strerror(-ret));
	uint16_t nrx = RX_DESC, ntx = TX_DESC;
	rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrx, &ntx);
	int sock = numa < 0 ? (int)SOCKET_ID_ANY : numa;
	if ((ret = rte_eth_rx_queue_setup(port, 0, nrx, (unsigned)sock, NULL, dp->pool)) != 0)
		return set_stage_error(VIO4WD_STAGE_RXQ, -ret, "cannot set up the RX queue of %s: %s", name,
				       rte_strerror(-ret));
	if ((ret = rte_eth_tx_queue_setup(port, 0, ntx, (unsigned)sock, NULL)) != 0)
		return set_stage_error(VIO4WD_STAGE_TXQ, -ret, "cannot set up the TX queue of %s: %s", name,
				       rte_strerror(-ret));
	rte_eth_promiscuous_enable(port); /* not every device supports it; not fatal */
	if ((ret = rte_eth_dev_start(port)) != 0)
		return set_stage_error(VIO4WD_STAGE_START, -ret, "cannot start %s: %s", name, rte_strerror(-ret));
	c->mtu = mtu;
	__atomic_store_n(&dp->tx_offloads, conf.txmode.offloads, __ATOMIC_RELEASE);
	return 0;
}

/* Removes a bond and its members (members[0..n-1] are device names). */
static void remove_bond(const char *name, char (*members)[128], unsigned n)
{
	uint16_t port, member;
	if (rte_eth_dev_get_port_by_name(name, &port) == 0) {
		rte_eth_dev_stop(port);
		/* The bonding driver refuses to free a bond that still has members. */
		for (unsigned i = 0; i < n; i++)
			if (rte_eth_dev_get_port_by_name(members[i], &member) == 0)
				rte_eth_bond_slave_remove(port, member);
	}
	if (rte_eth_bond_free(name) != 0)
		fprintf(stderr, "vio4wd: bond %s could not be freed\n", name);
	for (unsigned i = 0; i < n; i++)
		remove_device(members[i]);
}

API int vio4wd_vf_attach(uint32_t relay, const char *devargs, uint32_t mtu)
{
	if (relay >= VIO4WD_MAX_RELAYS)
		return set_error(EINVAL, "relay %u is out of range 0-%d", relay, VIO4WD_MAX_RELAYS - 1);
	struct relay_ctl *c = &g_ctl[relay];
	struct relay_dp *dp = &g_dp[relay];
	char name[128];
	int ret = device_name(devargs, name, sizeof(name));
	if (ret != 0)
		return ret;
	pthread_mutex_lock(&c->lock);
	uint16_t port;
	if (dp->port != NO_PORT) {
		ret = set_error(EEXIST, "relay %u already has a VF (%s); remove it first", relay, c->devargs);
		goto out;
	}
	if ((ret = probe_device(devargs, name, &port)) != 0)
		goto out;
	if ((ret = start_port(relay, port, name, mtu)) != 0) {
		remove_device(name);
		relay_release_pool_if_idle(relay);
		goto out;
	}
	snprintf(c->devargs, sizeof(c->devargs), "%s", devargs);
	snprintf(c->devname, sizeof(c->devname), "%s", name);
	c->nmembers = 0;
	__atomic_store_n(&dp->port, port, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

API int vio4wd_bond_attach(uint32_t relay, const char *name, uint32_t mode, const char *members_nl, uint32_t mtu)
{
	if (relay >= VIO4WD_MAX_RELAYS)
		return set_error(EINVAL, "relay %u is out of range 0-%d", relay, VIO4WD_MAX_RELAYS - 1);
	if (strncmp(name, "net_bonding", 11) != 0 || strlen(name) >= 64)
		return set_stage_error(VIO4WD_STAGE_BOND, EINVAL,
				       "bond name '%s' must start with net_bonding (at most 63 characters)", name);
	if (mode > BONDING_MODE_ALB)
		return set_stage_error(VIO4WD_STAGE_BOND, EINVAL, "bond mode %u is not one of 0-6", mode);
	/* Split the members. */
	char devargs[VIO4WD_MAX_BOND_MEMBERS][256];
	char names[VIO4WD_MAX_BOND_MEMBERS][128];
	unsigned n = 0;
	for (const char *p = members_nl; *p != '\0';) {
		size_t len = strcspn(p, "\n");
		if (n == VIO4WD_MAX_BOND_MEMBERS || len >= sizeof(devargs[0]))
			return set_stage_error(VIO4WD_STAGE_BOND, EINVAL, "a bond takes 2-%d members of < 256 characters",
					       VIO4WD_MAX_BOND_MEMBERS);
		memcpy(devargs[n], p, len);
		devargs[n][len] = '\0';
		int ret = device_name(devargs[n], names[n], sizeof(names[n]));
		if (ret != 0)
			return ret;
		n++;
		p += len + (p[len] == '\n');
	}
	if (n < 2)
		return set_stage_error(VIO4WD_STAGE_BOND, EINVAL, "a bond needs at least 2 members, got %u", n);

	struct relay_ctl *c = &g_ctl[relay];
	struct relay_dp *dp = &g_dp[relay];
	pthread_mutex_lock(&c->lock);
	int ret = 0;
	unsigned probed = 0;
	uint16_t port, member;
	if (dp->port != NO_PORT) {
		ret = set_error(EEXIST, "relay %u already has a VF (%s); remove it first", relay, c->devargs);
		goto out;
	}
	if (rte_eth_dev_get_port_by_name(name, &port) == 0) {
		ret = set_stage_error(VIO4WD_STAGE_BOND, EEXIST, "device %s is already in use by another relay", name);
		goto out;
	}
	for (; probed < n; probed++) {
		if ((ret = probe_device(devargs[probed], names[probed], &member)) != 0) {
			char why[512];
			snprintf(why, sizeof(why), "%s", vio4wd_last_error());
			set_stage_error(VIO4WD_STAGE_MEMBER, -ret, "bond %s member: %s", name, why);
			goto undo;
		}
	}
	int numa = SOCKET_ID_ANY;
	if (rte_eth_dev_get_port_by_name(names[0], &member) == 0 && rte_eth_dev_socket_id(member) >= 0)
		numa = rte_eth_dev_socket_id(member);
	int bond = rte_eth_bond_create(name, (uint8_t)mode, (uint8_t)(numa < 0 ? 0 : numa));
	if (bond < 0) {
		ret = set_stage_error(VIO4WD_STAGE_BOND, -bond, "cannot create bond %s: %s", name, rte_strerror(-bond));
		goto undo;
	}
	port = (uint16_t)bond;
	for (unsigned i = 0; i < n; i++) {
		rte_eth_dev_get_port_by_name(names[i], &member);
		if ((ret = rte_eth_bond_slave_add(port, member)) != 0) {
			ret = set_stage_error(VIO4WD_STAGE_MEMBER, -ret, "cannot add %s to bond %s: %s", names[i], name,
					      rte_strerror(-ret));
			goto undo_bond;
		}
	}
	if ((ret = start_port(relay, port, name, mtu)) != 0)
		goto undo_bond;
	snprintf(c->devargs, sizeof(c->devargs), "%s", name);
	snprintf(c->devname, sizeof(c->devname), "%s", name);
	_Static_assert(sizeof(c->members) == sizeof(names), "bond member name arrays differ");
	memcpy(c->members, names, sizeof(names));
	c->nmembers = n;
	__atomic_store_n(&dp->port, port, __ATOMIC_RELEASE);
	goto out;
undo_bond:
	remove_bond(name, names, n);
	relay_release_pool_if_idle(relay);
	goto out;
undo:
	for (unsigned i = 0; i < probed; i++)
		remove_device(names[i]);
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

API int vio4wd_vf_detach(uint32_t relay)
{
	if (relay >= VIO4WD_MAX_RELAYS)
		return set_error(EINVAL, "relay %u is out of range 0-%d", relay, VIO4WD_MAX_RELAYS - 1);
	struct relay_ctl *c = &g_ctl[relay];
	struct relay_dp *dp = &g_dp[relay];
	pthread_mutex_lock(&c->lock);
	uint16_t port = dp->port;
	if (port == NO_PORT) {
		pthread_mutex_unlock(&c->lock);
		return set_error(ENOENT, "relay %u has no VF", relay);
	}
	__atomic_store_n(&dp->port, NO_PORT, __ATOMIC_RELEASE);
	int ret = quiesce(dp->cpu);
	rte_eth_dev_stop(port);
	if (c->nmembers > 0)
		remove_bond(c->devname, c->members, c->nmembers);
	else
		remove_device(c->devname);
	c->devargs[0] = c->devname[0] = '\0';
	c->nmembers = 0;
	relay_release_pool_if_idle(relay);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

void vf_detach_all(void)
{
	for (uint32_t r = 0; r < VIO4WD_MAX_RELAYS; r++)
		if (g_dp[r].port != NO_PORT)
			vio4wd_vf_detach(r);
}

static bool link_up(uint16_t port)
{
	struct rte_eth_link link;
	return rte_eth_link_get_nowait(port, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

API void vio4wd_bonds_supervise(void)
{
	for (uint32_t r = 0; r < VIO4WD_MAX_RELAYS; r++) {
		struct relay_ctl *c = &g_ctl[r];
		if (c->nmembers == 0 || pthread_mutex_trylock(&c->lock) != 0)
			continue;
		uint16_t bond = g_dp[r].port;
		int primary = bond == NO_PORT ? -1 : rte_eth_bond_primary_get(bond);
		if (primary >= 0 && rte_eth_bond_mode_get(bond) == BONDING_MODE_ACTIVE_BACKUP &&
		    !link_up((uint16_t)primary)) {
			int lost = -1, next = -1;
			for (unsigned i = 0; i < c->nmembers; i++) {
				uint16_t m;
				if (rte_eth_dev_get_port_by_name(c->members[i], &m) != 0)
					continue;
				if (m == primary)
					lost = (int)i;
				else if (next < 0 && link_up(m) && rte_eth_bond_primary_set(bond, m) == 0)
					next = (int)i;
			}
			if (next >= 0)
				push_event(VIO4WD_EV_BOND_FAILOVER, r, next, (uint32_t)lost, 0);
		}
		pthread_mutex_unlock(&c->lock);
	}
}

API uint32_t vio4wd_relay_state(uint32_t relay)
{
	if (relay >= VIO4WD_MAX_RELAYS)
		return 0;
	uint32_t s = 0;
	if (g_ctl[relay].registered)
		s |= VIO4WD_STATE_SOCKET;
	if (__atomic_load_n(&g_dp[relay].vid, __ATOMIC_ACQUIRE) != NO_VID)
		s |= VIO4WD_STATE_VM;
	uint16_t port = __atomic_load_n(&g_dp[relay].port, __ATOMIC_ACQUIRE);
	if (port != NO_PORT) {
		s |= VIO4WD_STATE_VF;
		struct rte_eth_link link;
		if (rte_eth_link_get_nowait(port, &link) == 0 && link.link_status)
			s |= VIO4WD_STATE_VF_LINK;
	}
	return s;
}

API int32_t vio4wd_relay_mbufs_in_use(uint32_t relay)
{
	if (relay >= VIO4WD_MAX_RELAYS)
		return -1;
	pthread_mutex_lock(&g_ctl[relay].lock);
	struct rte_mempool *mp = g_dp[relay].pool;
	int32_t n = mp == NULL ? -1 : (int32_t)rte_mempool_in_use_count(mp);
	pthread_mutex_unlock(&g_ctl[relay].lock);
	return n;
}

API int32_t vio4wd_relay_numa_node(uint32_t relay)
{
	return relay < VIO4WD_MAX_RELAYS ? g_ctl[relay].numa_node : -1;
}
