/* The VF side of relays: any DPDK ethdev given as devargs (or a bond of them), probed, configured,
 * started and removed; and the supervision of active-backup bonds. */
/* rte_devargs_reset(), the only way to free what rte_devargs_parse() allocated, is experimental in 22.11. */
#define ALLOW_EXPERIMENTAL_API
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_errno.h>
#include <rte_eth_bond.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_vhost.h>

#include "internal.h"

/* Stops `port` (what it is for the log); a failure is logged: the port is left as the driver left it. */
static void stop_port(uint16_t port, const char *what)
{
	int ret = rte_eth_dev_stop(port);
	if (ret != 0 && ret != -ENOTSUP)
		RTE_LOG(WARNING, USER1, "vio4wd: %s: stop: %s\n", what, rte_strerror(-ret));
}

/* Puts `port` in promiscuous mode where the device has it (not every one does; not fatal). */
static void promiscuous(uint16_t port, const char *what)
{
	int ret = rte_eth_promiscuous_enable(port);
	if (ret != 0)
		RTE_LOG(INFO, USER1, "vio4wd: %s: no promiscuous mode (%s)\n", what, rte_strerror(-ret));
}

/* Stops and closes `port` (what it is for the log). */
static void close_port(uint16_t port, const char *what)
{
	stop_port(port, what); /* a bond that failed to start may have started it */
	int ret = rte_eth_dev_close(port);
	if (ret != 0)
		RTE_LOG(WARNING, USER1, "vio4wd: %s: close: %s\n", what, rte_strerror(-ret));
}

/* Removes the device whose port is named `devname` (nothing when there is none): closes that port
 * and every other port of the device (a device may have several, and its driver's remove may
 * release only the one named like the device), then unplugs the device. Returns 0, or -errno when
 * the device stays plugged (its ports are closed all the same). */
static int remove_device(const char *devname)
{
	uint16_t port, p;
	struct rte_eth_dev_info info;
	if (rte_eth_dev_get_port_by_name(devname, &port) != 0)
		return 0;
	struct rte_device *dev = rte_eth_dev_info_get(port, &info) == 0 ? info.device : NULL;
	struct memif_listener memif;
	bool memif_server = memif_listener_of(port, &memif);
	close_port(port, devname);
	if (dev == NULL) {
		RTE_LOG(ERR, USER1, "vio4wd: %s: no device behind its port; only the port was closed\n", devname);
		return -ENODEV;
	}
	RTE_ETH_FOREACH_DEV_OF(p, dev)
		close_port(p, devname);
	int ret = fault_at("unplug") ? -EBUSY : rte_dev_remove(dev);
	if (ret != 0)
		RTE_LOG(ERR, USER1, "vio4wd: %s could not be unplugged (%s): it stays in use until the daemon restarts\n",
			devname, rte_strerror(-ret));
	else if (memif_server)
		memif_listener_disarm(&memif);
	return ret;
}

/* The name devargs give their device: up to the first ','. The device's port may be named
 * otherwise (probe_device() tells). */
static int device_name(const char *devargs, char *name, size_t size)
{
	size_t len = strcspn(devargs, ",");
	if (len == 0 || len >= size)
		return set_error(EINVAL, "'%s' is not a DPDK device (give a PCI address or vdev devargs)", devargs);
	memcpy(name, devargs, len);
	name[len] = '\0';
	return 0;
}

/*
 * Probes one device that must not exist yet. Its port is the first new one the probe made, whatever
 * its name: a PCI address written another way than DPDK writes it, or a driver that names its
 * ports itself (net_ring's nodeaction), gives a port name other than the devargs'; a device with
 * several ports gives several (the others stay unused and go with the device). Returns the port in
 * *port and its name in name[size] (in: the devargs' name).
 */
static int probe_device(const char *devargs, char *name, size_t size, uint16_t *port)
{
	if (rte_eth_dev_get_port_by_name(name, port) == 0)
		return set_stage_error(VIO4WD_STAGE_PROBE, EEXIST, "device %s is already in use by another relay", name);
	if (rte_eth_dev_count_avail() >= RTE_MAX_ETHPORTS)
		return set_stage_error(VIO4WD_STAGE_PROBE, ENOSPC,
				       "DPDK allows %d ports per process (RTE_MAX_ETHPORTS) and all are in use",
				       RTE_MAX_ETHPORTS);
	bool before[RTE_MAX_ETHPORTS];
	for (uint16_t p = 0; p < RTE_MAX_ETHPORTS; p++)
		before[p] = rte_eth_dev_is_valid_port(p); /* bond members too, which FOREACH_DEV skips */
	int ret = rte_dev_probe(devargs);
	if (ret == -EEXIST)
		return set_stage_error(VIO4WD_STAGE_PROBE, EEXIST, "device '%s' is already in use by another relay",
				       devargs);
	if (ret != 0)
		return set_stage_error(VIO4WD_STAGE_PROBE, -ret, "cannot probe device '%s': %s", devargs,
				       rte_strerror(-ret));
	int found = -1;
	for (uint16_t p = 0; p < RTE_MAX_ETHPORTS && found < 0; p++)
		if (!before[p] && rte_eth_dev_is_valid_port(p))
			found = p;
	char port_name[RTE_ETH_NAME_MAX_LEN];
	if (found < 0 || rte_eth_dev_get_name_by_port((uint16_t)found, port_name) != 0) {
		struct rte_devargs da;
		if (rte_devargs_parse(&da, devargs) == 0) {
			if (rte_eal_hotplug_remove(rte_bus_name(da.bus), da.name) != 0)
				RTE_LOG(ERR, USER1, "vio4wd: %s could not be unplugged\n", devargs);
			rte_devargs_reset(&da);
		}
		return set_stage_error(VIO4WD_STAGE_PROBE, ENODEV, "device '%s' was probed but has no ethdev port",
				       devargs);
	}
	*port = (uint16_t)found;
	snprintf(name, size, "%s", port_name);
	return 0;
}

static int configure_port(struct relay *r, uint16_t port, const char *name, uint64_t tx_offloads);

#ifdef VIO4WD_FAULTS
#include <rte_ip.h>
/* Fault build: VIO4WD_FAULT_VF_HW_TSO makes every VF a NIC that segments TCP over IPv4 and writes
 * IPv4 checksums, as real VFs do (no stand-in here segments: net_tap refuses a guest's TSO packets,
 * memif and virtio_user pass them on whole). The relay is told the VF has TCP_TSO and IPV4_CKSUM; a
 * TX callback plays the NIC on each TSO packet as far as a capture can judge it: it makes the first
 * segment's IPv4 header (total length of headers + one MSS) and, when asked for the IP checksum,
 * writes it as NICs do, summing the header with the field as they find it (hence the mbuf API's
 * "zero the field"). A TSO packet sent without IP_CKSUM, or with the guest's checksum left in,
 * leaves with a wrong checksum; the frame itself stays whole (its tail past the total length). */
static uint64_t fault_vf_claims(void)
{
	return fault("VIO4WD_FAULT_VF_HW_TSO") ? RTE_ETH_TX_OFFLOAD_TCP_TSO | RTE_ETH_TX_OFFLOAD_IPV4_CKSUM : 0;
}

static uint16_t fault_nic_tx(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n, void *arg)
{
	(void)port, (void)queue, (void)arg;
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		if (!(m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) || !(m->ol_flags & RTE_MBUF_F_TX_IPV4) ||
		    m->data_len < m->l2_len + m->l3_len)
			continue;
		struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, m->l2_len);
		ip->total_length = rte_cpu_to_be_16((uint16_t)(m->l3_len + m->l4_len + m->tso_segsz));
		if (m->ol_flags & RTE_MBUF_F_TX_IP_CKSUM)
			ip->hdr_checksum = rte_ipv4_cksum(ip);
	}
	return n;
}

/* Plays the NIC on `port`'s TX queue 0 (once per port: a second callback would sum again). */
static void fault_nic(uint16_t port)
{
	static bool playing[RTE_MAX_ETHPORTS];
	if (fault_vf_claims() == 0 || playing[port])
		return;
	if (rte_eth_add_tx_callback(port, 0, fault_nic_tx, NULL) == NULL)
		RTE_LOG(ERR, USER1, "vio4wd: VIO4WD_FAULT_VF_HW_TSO: no TX callback on port %u\n", port);
	else
		playing[port] = true;
}
#else
#define fault_vf_claims() 0
#define fault_nic(port) ((void)(port))
#endif

/* Configures and starts the relay's port (one RX and one TX queue on the relay's pool). */
/* Requires lock. `ports`: the ports the VF side has (a bond's members) for the pool's size. */
static int start_port(struct relay *r, uint32_t id, uint16_t port, const char *name, uint32_t mtu, unsigned ports)
{
	int ret;
	struct rte_eth_dev_info info;
	if ((ret = rte_eth_dev_info_get(port, &info)) != 0)
		return set_stage_error(VIO4WD_STAGE_INFO, -ret, "cannot read device info of %s: %s", name,
				       rte_strerror(-ret));
	int numa = rte_eth_dev_socket_id(port);
	if ((ret = pool_ensure(r, id, r->numa_node >= 0 ? r->numa_node : numa, ports)) != 0)
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
	/* As the original: checksum offloads where the device has them, TSO when asked for; what the
	 * VF lacks, the worker does in software (offload.c). TX offloads are narrowed to what the
	 * guest negotiated when it connects (vf_run). */
	uint64_t tx = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM |
		      RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	if (g_vf_tso)
		tx |= RTE_ETH_TX_OFFLOAD_TCP_TSO | RTE_ETH_TX_OFFLOAD_UDP_TSO;
	r->mtu = mtu;
	r->tx_offload_capa = (info.tx_offload_capa | fault_vf_claims()) & tx;
	if ((ret = configure_port(r, port, name, r->tx_offload_capa)) != 0)
		return ret;
	fault_nic(port);
	promiscuous(port, name);
	if ((ret = rte_eth_dev_start(port)) != 0)
		return set_stage_error(VIO4WD_STAGE_START, -ret, "cannot start %s: %s", name, rte_strerror(-ret));
	return 0;
}

/* Requires lock; the port stopped. Configures the relay's port (MTU r->mtu, RX checksum offloads
 * where it has them, `tx_offloads`) with one RX queue on the relay's pool and one TX queue. */
static int configure_port(struct relay *r, uint16_t port, const char *name, uint64_t tx_offloads)
{
	int ret;
	struct rte_eth_dev_info info;
	if ((ret = rte_eth_dev_info_get(port, &info)) != 0)
		return set_stage_error(VIO4WD_STAGE_INFO, -ret, "cannot read device info of %s: %s", name,
				       rte_strerror(-ret));
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	/* a device that can tell of its removal (hot-unplug) does so: VIO4WD_EV_VF_REMOVED */
	conf.intr_conf.rmv = info.dev_flags != NULL && (*info.dev_flags & RTE_ETH_DEV_INTR_RMV) != 0;
	conf.rxmode.mtu = r->mtu;
	conf.rxmode.offloads = info.rx_offload_capa & (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM |
						       RTE_ETH_RX_OFFLOAD_TCP_CKSUM);
	/* A frame of the MTU that does not fit one mbuf must be received into several: PMDs such as
	 * mlx5 and virtio refuse the RX queue without scattered RX (the default MTU 2100 is over the
	 * 2048-byte buffers). */
	uint32_t frame = r->mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN + 2 * RTE_VLAN_HLEN;
	uint32_t room = rte_pktmbuf_data_room_size(r->pool) - RTE_PKTMBUF_HEADROOM;
	bool scatter = frame > room && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER);
	if (scatter)
		conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
	/* (what the device lacks is the worker's: only the fault build's pretend NIC claims more) */
	conf.txmode.offloads = tx_offloads & info.tx_offload_capa;
	if ((ret = fault_at("configure") ? -EIO : rte_eth_dev_configure(port, 1, 1, &conf)) != 0)
		return set_stage_error(VIO4WD_STAGE_CONFIGURE, -ret, "cannot configure %s: %s", name,
				       rte_strerror(-ret));
	uint16_t nrx = VF_RING_DESC, ntx = VF_RING_DESC;
	if ((ret = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrx, &ntx)) != 0)
		return set_stage_error(VIO4WD_STAGE_CONFIGURE, -ret, "cannot size the rings of %s: %s", name,
				       rte_strerror(-ret));
	int numa = rte_eth_dev_socket_id(port);
	unsigned sock = numa < 0 ? (unsigned)SOCKET_ID_ANY : (unsigned)numa;
	if ((ret = fault_at("rxq") ? -EIO : rte_eth_rx_queue_setup(port, 0, nrx, sock, NULL, r->pool)) != 0)
		return set_stage_error(VIO4WD_STAGE_RXQ, -ret, "cannot set up the RX queue of %s: %s", name,
				       rte_strerror(-ret));
	if ((ret = fault_at("txq") ? -EIO : rte_eth_tx_queue_setup(port, 0, ntx, sock, NULL)) != 0)
		return set_stage_error(VIO4WD_STAGE_TXQ, -ret, "cannot set up the TX queue of %s: %s", name,
				       rte_strerror(-ret));
	__atomic_store_n(&r->tx_offloads, tx_offloads, __ATOMIC_RELEASE);
	return 0;
}

/*
 * The TX offloads the VF needs for what the guest may send: checksums only when it negotiated
 * VIRTIO_NET_F_CSUM (else its packets are complete; asking a vhost-user VF for them anyway
 * makes it checksum in software), TSO only with HOST_TSO4/6. Multi-segment always.
 */
static uint64_t guest_tx_offloads(const struct relay *r)
{
	uint64_t features = 0, want = RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	if (r->vid == NO_VID || rte_vhost_get_negotiated_features(r->vid, &features) != 0)
		return r->tx_offload_capa;
	if (features & (1ULL << VIRTIO_NET_F_CSUM))
		want |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
	if (features & ((1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_HOST_TSO6)))
		want |= RTE_ETH_TX_OFFLOAD_TCP_TSO;
	if (features & (1ULL << VIRTIO_NET_F_HOST_UFO))
		want |= RTE_ETH_TX_OFFLOAD_UDP_TSO;
	return r->tx_offload_capa & want;
}

/* Removes a bond and its members (members[0..n-1] are device names). The bond is closed like any
 * device (rte_eth_bond_free() alone closes only a bond that is started: a stopped one left its
 * queue structures and VLAN bitmap behind on every detach). Returns 0, or the first member's
 * remove_device() failure. */
static int remove_bond(const char *name, char (*members)[128], unsigned n)
{
	uint16_t port, member;
	int ret = 0;
	if (rte_eth_dev_get_port_by_name(name, &port) == 0) {
		stop_port(port, name);
		/* The bonding driver refuses to free a bond that still has members. */
		for (unsigned i = 0; i < n; i++)
			if (rte_eth_dev_get_port_by_name(members[i], &member) == 0 &&
			    rte_eth_bond_slave_remove(port, member) != 0)
				RTE_LOG(WARNING, USER1, "vio4wd: bond %s: member %s could not be removed\n", name,
					members[i]);
		ret = remove_device(name);
	} else if (rte_eth_bond_free(name) != 0) {
		RTE_LOG(WARNING, USER1, "vio4wd: bond %s could not be freed\n", name);
	}
	for (unsigned i = 0; i < n; i++) {
		int failed = remove_device(members[i]);
		if (ret == 0)
			ret = failed;
	}
	return ret;
}

/* Requires lock: the configured port becomes the relay's VF side, running only while a VM is
 * there (start_port started it once to check that it can start, as the original does). */
static void publish_port(struct relay *r, uint16_t port)
{
	bool run = port != NO_PORT && r->vid != NO_VID;
	if (port != NO_PORT && !run)
		stop_port(port, r->devname[0] != '\0' ? r->devname : "the VF");
	__atomic_store_n(&r->vf_running, run, __ATOMIC_RELEASE);
	__atomic_store_n(&r->port, port, __ATOMIC_RELEASE);
	lists_publish();
}

#ifdef VIO4WD_FAULTS
#include <stdlib.h>
#include <rte_alarm.h>
/* What a PMD calls to raise an event (exported by ethdev; its header, ethdev_driver.h, is not installed). */
struct rte_eth_dev;
struct rte_eth_dev *rte_eth_dev_allocated(const char *name);
int rte_eth_dev_callback_process(struct rte_eth_dev *dev, enum rte_eth_event_type event, void *ret_param);

static void raise_vf_event(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;
	char name[RTE_ETH_NAME_MAX_LEN];
	struct rte_eth_dev *dev;
	if (rte_eth_dev_get_name_by_port(port, name) != 0 || (dev = rte_eth_dev_allocated(name)) == NULL)
		return;
	bool rmv = strcmp(getenv("VIO4WD_FAULT_VF_EVENT"), "remove") == 0;
	(void)rte_eth_dev_callback_process(dev, rmv ? RTE_ETH_EVENT_INTR_RMV : RTE_ETH_EVENT_INTR_RESET, NULL);
}

/* In the tests' fault build: VIO4WD_FAULT_VF_EVENT=reset|remove has the first VF started raise that
 * event VIO4WD_FAULT_VF_EVENT_MS (default 1000) ms later, once, from EAL's interrupt thread as its
 * driver would (no stand-in here raises either: only hardware PMDs such as iavf and mlx5 do). */
static void fault_vf_event(uint16_t port)
{
	static bool done;
	const char *which = getenv("VIO4WD_FAULT_VF_EVENT");
	if (done || which == NULL || *which == '\0')
		return;
	done = true;
	const char *ms = getenv("VIO4WD_FAULT_VF_EVENT_MS");
	uint64_t us = (ms != NULL ? strtoull(ms, NULL, 10) : 1000) * 1000;
	if (rte_eal_alarm_set(us, raise_vf_event, (void *)(uintptr_t)port) != 0)
		RTE_LOG(ERR, USER1, "vio4wd: VIO4WD_FAULT_VF_EVENT: cannot set the alarm\n");
}
#else
#define fault_vf_event(port) ((void)(port))
#endif

void vf_run(struct relay *r, uint32_t id, bool run)
{
	if (r->port == NO_PORT || r->vf_running == run)
		return;
	if (run) {
		uint64_t tx = guest_tx_offloads(r), was = r->tx_offloads;
		if (tx != was) {
			if (configure_port(r, r->port, r->devname, tx) != 0)
				RTE_LOG(WARNING, USER1, "vio4wd: relay %u: cannot set its VF's offloads for the guest: %s\n",
					id, vio4wd_last_error()); /* what the VF lacks, the worker does in software */
			else
				RTE_LOG(INFO, USER1, "relay %u: VF TX offloads 0x%" PRIx64 " -> 0x%" PRIx64 " for the guest's features\n",
					id, was, tx);
		}
		int ret = fault("VIO4WD_FAULT_VF_START") ? -EIO : rte_eth_dev_start(r->port);
		if (ret != 0) {
			/* the VM is there and its VF is not: the daemon says so and shows the relay inactive */
			RTE_LOG(ERR, USER1, "vio4wd: relay %u: cannot start its VF %s: %s\n", id, r->devname,
				rte_strerror(-ret));
			push_event(VIO4WD_EV_VF_FAILED, id, ret, 0, 0);
			return;
		}
		if (r->flush_rx_at_start) { /* no worker polls it yet */
			struct rte_mbuf *stale[32];
			for (int bursts = 0; bursts < 1024; bursts++) {
				uint16_t n = rte_eth_rx_burst(r->port, 0, stale, RTE_DIM(stale));
				rte_pktmbuf_free_bulk(stale, n);
				if (n == 0)
					break;
			}
			r->flush_rx_at_start = false;
		}
		__atomic_store_n(&r->vf_running, true, __ATOMIC_RELEASE);
		lists_publish();
		fault_vf_event(r->port);
	} else {
		__atomic_store_n(&r->vf_running, false, __ATOMIC_RELEASE);
		lists_publish(); /* no worker polls or sends to it after this */
		stop_port(r->port, r->devname);
	}
}

API int vio4wd_vf_flush_at_start(uint32_t id)
{
	struct relay *r = relay_get(id);
	if (r == NULL)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	r->flush_rx_at_start = true;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

API int vio4wd_vf_attach(uint32_t id, const char *devargs, uint32_t mtu)
{
	struct relay *r = relay_get(id);
	if (r == NULL)
		return -EINVAL;
	char name[128];
	int ret = device_name(devargs, name, sizeof(name));
	if (ret != 0)
		return ret;
	pthread_mutex_lock(&r->lock);
	uint16_t port;
	if (r->port != NO_PORT) {
		ret = set_error(EEXIST, "relay %u already has a VF (%s); remove it first", id, r->devargs);
		goto out;
	}
	if ((ret = probe_device(devargs, name, sizeof(name), &port)) != 0)
		goto out;
	if ((ret = start_port(r, id, port, name, mtu, 1)) != 0) {
		remove_device(name);
		pool_release_if_idle(r);
		goto out;
	}
	snprintf(r->devargs, sizeof(r->devargs), "%s", devargs);
	snprintf(r->devname, sizeof(r->devname), "%s", name);
	r->nmembers = 0;
	__atomic_store_n(&r->lacp, false, __ATOMIC_RELEASE);
	publish_port(r, port);
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

API int vio4wd_bond_attach(uint32_t id, const char *name, uint32_t mode, const char *members_nl, uint32_t mtu)
{
	struct relay *r = relay_get(id);
	if (r == NULL)
		return -EINVAL;
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

	pthread_mutex_lock(&r->lock);
	int ret = 0;
	unsigned probed = 0;
	uint16_t port, member;
	if (r->port != NO_PORT) {
		ret = set_error(EEXIST, "relay %u already has a VF (%s); remove it first", id, r->devargs);
		goto out;
	}
	if (rte_eth_dev_get_port_by_name(name, &port) == 0) {
		ret = set_stage_error(VIO4WD_STAGE_BOND, EEXIST, "device %s is already in use by another relay", name);
		goto out;
	}
	for (; probed < n; probed++) {
		if ((ret = probe_device(devargs[probed], names[probed], sizeof(names[probed]), &member)) != 0) {
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
		if ((ret = rte_eth_dev_get_port_by_name(names[i], &member)) != 0 ||
		    (ret = rte_eth_bond_slave_add(port, member)) != 0) {
			ret = set_stage_error(VIO4WD_STAGE_MEMBER, -ret, "cannot add %s to bond %s: %s", names[i], name,
					      rte_strerror(-ret));
			goto undo_bond;
		}
	}
	if ((ret = start_port(r, id, port, name, mtu, n)) != 0)
		goto undo_bond;
	snprintf(r->devargs, sizeof(r->devargs), "%s", name);
	snprintf(r->devname, sizeof(r->devname), "%s", name);
	_Static_assert(sizeof(r->members) == sizeof(names), "bond member name arrays differ");
	memcpy(r->members, names, sizeof(names));
	r->nmembers = n;
	__atomic_store_n(&r->lacp, mode == BONDING_MODE_8023AD, __ATOMIC_RELEASE);
	publish_port(r, port);
	goto out;
undo_bond:
	remove_bond(name, names, n);
	pool_release_if_idle(r);
	goto out;
undo:
	for (unsigned i = 0; i < probed; i++)
		remove_device(names[i]);
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

API int vio4wd_vf_detach(uint32_t id)
{
	struct relay *r = relay_get(id);
	if (r == NULL)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	uint16_t port = r->port;
	if (port == NO_PORT) {
		pthread_mutex_unlock(&r->lock);
		return set_error(ENOENT, "relay %u has no VF", id);
	}
	vf_run(r, id, false);
	publish_port(r, NO_PORT); /* no worker polls the port after this */
	int ret = r->nmembers > 0 ? remove_bond(r->devname, r->members, r->nmembers) : remove_device(r->devname);
	if (ret != 0) /* the relay has lost it all the same */
		ret = set_error(-ret, "relay %u: %s was closed but could not be unplugged: it stays in use until the daemon "
				"restarts", id, r->devname);
	r->devargs[0] = r->devname[0] = '\0';
	r->nmembers = 0;
	pool_release_if_idle(r);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* The relay whose VF side is `port` (or has it as a bond member: *member its index, else -1), or -1. */
static int relay_of_port(uint16_t port, int *member)
{
	char name[RTE_ETH_NAME_MAX_LEN];
	bool named = rte_eth_dev_get_name_by_port(port, name) == 0;
	for (uint32_t id = 0; id < VIO4WD_MAX_RELAYS; id++) {
		struct relay *r = relay_get(id);
		if (__atomic_load_n(&r->port, __ATOMIC_ACQUIRE) == port) {
			*member = -1;
			return (int)id;
		}
		/* members are written under the relay's lock, which this (interrupt) thread must not wait for */
		if (pthread_mutex_trylock(&r->lock) != 0)
			continue;
		for (unsigned i = 0; named && i < r->nmembers; i++) {
			if (strcmp(r->members[i], name) == 0) {
				pthread_mutex_unlock(&r->lock);
				*member = (int)i;
				return (int)id;
			}
		}
		pthread_mutex_unlock(&r->lock);
	}
	return -1;
}

/* Runs on the thread that raised the event (EAL's interrupt thread): must not reset or remove the
 * port itself, so it only reports; the daemon acts on the event from its own thread. A bond member's
 * event is logged: the bond goes on with its other members (active-backup bonds are moved off a
 * member without link by vio4wd_bonds_supervise()). */
static int vf_event(uint16_t port, enum rte_eth_event_type type, void *arg, void *out)
{
	(void)arg;
	(void)out;
	int member;
	int id = relay_of_port(port, &member);
	const char *what = type == RTE_ETH_EVENT_INTR_RESET ? "reset" : "removal";
	if (id < 0) {
		RTE_LOG(WARNING, USER1, "vio4wd: port %u (no relay's) reports a %s\n", port, what);
	} else if (member >= 0) {
		RTE_LOG(WARNING, USER1, "vio4wd: relay %d: bond member %d (port %u) reports a %s; the bond goes on "
			"with its other members\n", id, member, port, what);
	} else {
		push_event(type == RTE_ETH_EVENT_INTR_RESET ? VIO4WD_EV_VF_RESET : VIO4WD_EV_VF_REMOVED, (uint32_t)id, 0,
			   0, 0);
	}
	return 0;
}

void vf_events_register(void)
{
	static const enum rte_eth_event_type types[] = {RTE_ETH_EVENT_INTR_RESET, RTE_ETH_EVENT_INTR_RMV};
	for (unsigned i = 0; i < RTE_DIM(types); i++) {
		int ret = rte_eth_dev_callback_register(RTE_ETH_ALL, types[i], vf_event, NULL);
		if (ret != 0)
			RTE_LOG(ERR, USER1, "vio4wd: cannot watch the VFs for resets and removals: %s\n",
				rte_strerror(-ret));
	}
}

API int vio4wd_vf_reset(uint32_t id)
{
	struct relay *r = relay_get(id);
	if (r == NULL)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	int ret = 0;
	if (r->port == NO_PORT || r->nmembers > 0) {
		ret = set_error(ENOENT, "relay %u has no VF to reset", id);
		goto out;
	}
	bool was_running = r->vf_running;
	vf_run(r, id, false); /* no worker polls it after this */
	ret = rte_eth_dev_reset(r->port);
	if (ret == -ENOTSUP) { /* the driver has no reset: stopped and configured again is the most there is */
		RTE_LOG(INFO, USER1, "vio4wd: relay %u: %s has no reset; configuring it again\n", id, r->devname);
	} else if (ret != 0) {
		ret = set_error(-ret, "relay %u: cannot reset %s: %s", id, r->devname, rte_strerror(-ret));
		goto out;
	}
	if ((ret = configure_port(r, r->port, r->devname, r->tx_offloads)) != 0)
		goto out;
	promiscuous(r->port, r->devname);
	if (was_running) {
		vf_run(r, id, true);
		if (!r->vf_running)
			ret = set_error(EIO, "relay %u: %s did not start again after its reset", id, r->devname);
	}
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void vf_detach_all(void)
{
	for (uint32_t id = 0; id < VIO4WD_MAX_RELAYS; id++)
		if (__atomic_load_n(&relay_get(id)->port, __ATOMIC_ACQUIRE) != NO_PORT)
			vio4wd_vf_detach(id);
}

static bool link_up(uint16_t port)
{
	struct rte_eth_link link;
	return rte_eth_link_get_nowait(port, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

API void vio4wd_bonds_supervise(void)
{
	for (uint32_t id = 0; id < VIO4WD_MAX_RELAYS; id++) {
		struct relay *r = relay_get(id);
		if (pthread_mutex_trylock(&r->lock) != 0)
			continue;
		if (r->nmembers == 0) {
			pthread_mutex_unlock(&r->lock);
			continue;
		}
		uint16_t bond = r->port;
		int primary = bond == NO_PORT || !r->vf_running ? -1 : rte_eth_bond_primary_get(bond);
		if (primary >= 0 && rte_eth_bond_mode_get(bond) == BONDING_MODE_ACTIVE_BACKUP &&
		    !link_up((uint16_t)primary)) {
			int lost = -1, next = -1;
			for (unsigned i = 0; i < r->nmembers; i++) {
				uint16_t m;
				if (rte_eth_dev_get_port_by_name(r->members[i], &m) != 0)
					continue;
				if (m == primary)
					lost = (int)i;
				else if (next < 0 && link_up(m) && rte_eth_bond_primary_set(bond, m) == 0)
					next = (int)i;
			}
			if (next >= 0)
				push_event(VIO4WD_EV_BOND_FAILOVER, id, next, (uint32_t)lost, 0);
		}
		pthread_mutex_unlock(&r->lock);
	}
}
