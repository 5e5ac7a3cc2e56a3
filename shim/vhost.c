/* vhost-user sockets of relays (rte_vhost on a private path, behind the front door, frontdoor.c)
 * and the device callbacks, which only update the relay, republish the work lists and post events. */
#include <errno.h>
#include <grp.h>
#include <linux/virtio_net.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_vhost.h>

#include "internal.h"

#ifndef VHOST_F_LOG_ALL
#define VHOST_F_LOG_ALL 26
#endif

/* The connection `vid` no longer owns the relay's queue masks: they are cleared for the next one
 * (a no-op when another connection owns them). */
static void release_masks(struct relay *r, int vid)
{
	int owner = vid;
	if (!__atomic_compare_exchange_n(&r->mask_vid, &owner, NO_VID, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return;
	__atomic_store_n(&r->rx_enabled, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&r->tx_enabled, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&r->ring_seen, false, __ATOMIC_RELEASE);
}

/* The relay whose socket the device came in on, or -1. */
static int relay_of_vid(int vid)
{
	char path[256];
	return rte_vhost_get_ifname(vid, path, sizeof(path)) == 0 ? relay_of_path(path) : -1;
}

static int on_new_device(int vid)
{
	int id = relay_of_vid(vid);
	if (id < 0)
		return -1;
	struct relay *r = relay_get((uint32_t)id);
	pthread_mutex_lock(&r->lock);
	int ret = 0;
	uint16_t nr = rte_vhost_get_vring_num(vid);
	uint32_t pairs = nr / 2;
	int numa = rte_vhost_get_numa_node(vid);
	if (r->vid != NO_VID) {
		ret = -EBUSY;
	} else if (pairs == 0 || pairs > VIO4WD_MAX_QUEUE_PAIRS) {
		ret = -E2BIG;
	} else if (pool_ensure(r, (uint32_t)id, numa, 1) != 0) {
		ret = -ENOMEM;
	} else {
		pool_rehome(r, (uint32_t)id, numa); /* a VF came first: follow the VM's memory */
	}
	if (ret != 0) {
		release_masks(r, vid); /* a refused device never gets destroy_device */
		pthread_mutex_unlock(&r->lock);
		push_event(VIO4WD_EV_VM_REJECTED, (uint32_t)id, ret, 0, 0);
		return -1;
	}
	/* the workers poll: the guest need not kick (a queue that keeps kicking only costs its guest exits) */
	for (uint16_t q = 0; q < nr; q++)
		if (rte_vhost_enable_guest_notification(vid, q, 0) != 0)
			RTE_LOG(DEBUG, USER1, "vio4wd: relay %d: queue %u keeps guest notifications on\n", id, q);
	int owner = NO_VID;
	__atomic_compare_exchange_n(&r->mask_vid, &owner, vid, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
	if (!__atomic_load_n(&r->ring_seen, __ATOMIC_ACQUIRE) || (owner != NO_VID && owner != vid)) {
		/* no state change of this connection's: every queue of it is enabled */
		__atomic_store_n(&r->mask_vid, vid, __ATOMIC_RELEASE);
		uint32_t all = pairs >= 32 ? UINT32_MAX : ((1u << pairs) - 1);
		__atomic_store_n(&r->rx_enabled, all, __ATOMIC_RELEASE);
		__atomic_store_n(&r->tx_enabled, all, __ATOMIC_RELEASE);
	}
	r->queue_pairs = pairs;
	uint64_t features = 0; /* unreadable (never after new_device): split rings assumed */
	if (rte_vhost_get_negotiated_features(vid, &features) != 0)
		RTE_LOG(WARNING, USER1, "vio4wd: relay %d: the guest's features cannot be read\n", id);
	__atomic_store_n(&r->ring_packed, (features & (1ULL << VIRTIO_F_RING_PACKED)) != 0, __ATOMIC_RELEASE);
	__atomic_store_n(&r->vid, vid, __ATOMIC_RELEASE);
	lists_publish();
	vf_run(r, (uint32_t)id, true); /* the VF runs while the VM is there */
	__atomic_store_n(&g_shared.vm_queue_pairs[id], pairs, __ATOMIC_RELEASE); /* what the daemon reads */
	pthread_mutex_unlock(&r->lock);
	push_event(VIO4WD_EV_VM_CONNECTED, (uint32_t)id, (int32_t)pairs, 1, numa);
	return 0;
}

static void on_destroy_device(int vid)
{
	int id = relay_of_vid(vid);
	if (id < 0)
		return;
	struct relay *r = relay_get((uint32_t)id);
	pthread_mutex_lock(&r->lock);
	if (r->vid != vid) {
		pthread_mutex_unlock(&r->lock);
		return;
	}
	__atomic_store_n(&r->vid, NO_VID, __ATOMIC_RELEASE);
	__atomic_store_n(&g_shared.vm_queue_pairs[id], 0, __ATOMIC_RELEASE);
	lists_publish(); /* no worker touches the device after this */
	vf_run(r, (uint32_t)id, false);
	release_masks(r, vid);
	r->queue_pairs = 0;
	pool_release_if_idle(r);
	pthread_mutex_unlock(&r->lock);
	push_event(VIO4WD_EV_VM_DISCONNECTED, (uint32_t)id, 0, 0, 0);
}

/* Runs with DPDK's virtqueue locks held: no relay lock, no waiting, atomics only (see internal.h). */
static int on_vring_state_changed(int vid, uint16_t queue_id, int enable)
{
	int id = relay_of_vid(vid);
	uint32_t pair = queue_id / 2;
	if (id < 0 || pair >= VIO4WD_MAX_QUEUE_PAIRS)
		return 0;
	struct relay *r = relay_get((uint32_t)id);
	/* only the connection the masks are of: the live device's, or the first one setting up; a
	 * second connection (refused at new_device) must not flip the live guest's queues */
	int owner = NO_VID;
	if (!__atomic_compare_exchange_n(&r->mask_vid, &owner, vid, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
	    owner != vid)
		return 0;
	if (!__atomic_exchange_n(&r->ring_seen, true, __ATOMIC_ACQ_REL)) {
		/* the first state change of a connection: from now on the masks are the guest's */
		__atomic_store_n(&r->rx_enabled, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&r->tx_enabled, 0, __ATOMIC_RELEASE);
	}
	uint32_t *set = (queue_id % 2 == 0) ? &r->rx_enabled : &r->tx_enabled;
	/* The workers read the word in place: no republishing. */
	if (enable)
		__atomic_fetch_or(set, 1u << pair, __ATOMIC_RELEASE);
	else
		__atomic_fetch_and(set, ~(1u << pair), __ATOMIC_RELEASE);
	push_event(VIO4WD_EV_VRING_STATE, (uint32_t)id, queue_id, enable ? 1 : 0, 0);
	return 0;
}

static int on_features_changed(int vid, uint64_t features)
{
	int id = relay_of_vid(vid);
	if (id >= 0 && (features & (1ULL << VHOST_F_LOG_ALL)))
		push_event(VIO4WD_EV_LIVE_MIGRATION, (uint32_t)id, 0, 1, 0);
	return 0;
}

/* A connection closed (whether or not it became a device): its claim on the queue masks goes. */
static void on_destroy_connection(int vid)
{
	int id = relay_of_vid(vid);
	if (id >= 0)
		release_masks(relay_get((uint32_t)id), vid);
}

static const struct rte_vhost_device_ops g_ops = {
	.new_device = on_new_device,
	.destroy_device = on_destroy_device,
	.destroy_connection = on_destroy_connection,
	.vring_state_changed = on_vring_state_changed,
	.features_changed = on_features_changed,
};

/* A user (group: false) or group name or number as its id; -ENOENT when there is no such account. */
static int resolve_id(const char *name, bool group, unsigned *id)
{
	char *end;
	unsigned long n = strtoul(name, &end, 10);
	if (*end == '\0') {
		*id = (unsigned)n;
		return 0;
	}
	char buf[4096];
	if (group) {
		struct group gr, *res = NULL;
		if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) != 0 || res == NULL)
			return -ENOENT;
		*id = res->gr_gid;
	} else {
		struct passwd pw, *res = NULL;
		if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
			return -ENOENT;
		*id = res->pw_uid;
	}
	return 0;
}

/* The socket's owner and group ("": keep, -1); an error names the variable to fix. */
static int resolve_ids(const char *owner, const char *group, uid_t *uid, gid_t *gid)
{
	unsigned id;
	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (owner[0] != '\0') {
		if (resolve_id(owner, false, &id) != 0)
			return set_error(ENOENT, "socket owner '%s' does not exist (set VIRTIOFWD_SOCKET_OWNER to an existing user, or blank)", owner);
		*uid = (uid_t)id;
	}
	if (group[0] != '\0') {
		if (resolve_id(group, true, &id) != 0)
			return set_error(ENOENT, "socket group '%s' does not exist (set VIRTIOFWD_SOCKET_GROUP to an existing group, or blank)", group);
		*gid = (gid_t)id;
	}
	return 0;
}

/*
 * A socket file found where a relay's server socket goes is removed only when it is a leftover
 * of ours: created by root or handed to the configured socket owner, and with nobody listening
 * on it. A live socket, or one another user made, belongs to somebody else and stays.
 * Requires the caller to have checked that `st` is a socket.
 */
static int check_stale_socket(const char *path, const struct stat *st, uid_t owner)
{
	if (st->st_uid != 0 && st->st_uid != owner)
		return set_error(EEXIST, "'%s' is a socket of uid %u, not a leftover of this daemon; not removing it "
				 "(remove it by hand if it is stale, or use another path)", path, (unsigned)st->st_uid);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return set_error(errno, "socket(): %s", strerror(errno));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	if (live)
		return set_error(EEXIST, "'%s' is a socket another program is listening on; not removing it "
				 "(stop that program or use another path)", path);
	return 0;
}

/* Undoes a registration that went no further (nothing else to do if DPDK refuses: logged). */
static void unregister_new(const char *path)
{
	if (rte_vhost_driver_unregister(path) != 0)
		RTE_LOG(WARNING, USER1, "vio4wd: %s: cannot unregister\n", path);
}

API int vio4wd_socket_register(uint32_t id, const char *path, uint32_t flags, const char *owner,
			       const char *group)
{
	struct relay *c = relay_get(id);
	if (c == NULL)
		return -EINVAL;
	if (strlen(path) >= sizeof(c->path) || strlen(path) >= 108)
		return set_error(ENAMETOOLONG, "socket path '%s' is too long for a unix socket (max 107)", path);
	int other = relay_of_path(path);
	if (other >= 0)
		return set_error(EEXIST, "socket '%s' is already used by relay %d", path, other);
	uid_t uid;
	gid_t gid;
	int ret = resolve_ids(owner, group, &uid, &gid);
	if (ret != 0)
		return ret;
	bool client = flags & VIO4WD_SOCK_CLIENT, adopt = flags & VIO4WD_SOCK_ADOPT;
	pthread_mutex_lock(&c->lock);
	if (c->registered) {
		pthread_mutex_unlock(&c->lock);
		return set_error(EEXIST, "relay %u already has socket '%s'", id, c->path);
	}
	struct stat st;
	if (!client && !adopt && lstat(path, &st) == 0) { /* adopting: the file is the other daemon's */
		if (!S_ISSOCK(st.st_mode)) {
			pthread_mutex_unlock(&c->lock);
			return set_error(EEXIST, "'%s' already exists and is not a socket; remove it or change VIRTIOFWD_SOCKET_DIR", path);
		}
		ret = check_stale_socket(path, &st, uid);
		if (ret != 0) {
			pthread_mutex_unlock(&c->lock);
			return ret;
		}
		unlink(path); /* a leftover of an earlier run */
	}
	/* rte_vhost listens on the relay's private path; the front door owns `path` (frontdoor.c) */
	char private_path[108];
	frontdoor_private_path(id, private_path, sizeof(private_path));
	unlink(private_path); /* a leftover of a run of this file prefix that crashed */
	ret = rte_vhost_driver_register(private_path, 0);
	if (ret != 0) {
		pthread_mutex_unlock(&c->lock);
		return set_error(EIO, "rte_vhost_driver_register('%s') failed", private_path);
	}
	/* Never UFO: DPDK segments a guest's UFO datagram into IP fragments whose first mbuf holds
	 * only L2+L3, which no VF offload takes and software checksums cannot finish; without it the
	 * guest fragments in software and every fragment arrives (as OVS-DPDK does). */
	uint64_t off = (1ULL << VIRTIO_NET_F_CTRL_RX) | (1ULL << VIRTIO_NET_F_HOST_UFO);
	if (!(flags & VIO4WD_SOCK_MRGBUF))
		off |= 1ULL << VIRTIO_NET_F_MRG_RXBUF;
	if (!(flags & VIO4WD_SOCK_TSO))
		off |= (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_HOST_TSO6);
	if (rte_vhost_driver_disable_features(private_path, off) != 0 ||
	    rte_vhost_driver_callback_register(private_path, &g_ops) != 0) {
		pthread_mutex_unlock(&c->lock);
		unregister_new(private_path);
		return set_error(EIO, "cannot set up vhost-user socket '%s' (features or callbacks refused)", path);
	}
	relay_set_path(c, private_path);
	if (rte_vhost_driver_start(private_path) != 0)
		ret = set_error(EIO, "cannot start rte_vhost on '%s'", private_path);
	else
		ret = frontdoor_open(id, path, client, adopt, uid, gid);
	if (ret != 0) {
		relay_set_path(c, "");
		pthread_mutex_unlock(&c->lock);
		unregister_new(private_path);
		unlink(private_path);
		return ret;
	}
	c->registered = true;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

API int vio4wd_socket_unregister(uint32_t id)
{
	struct relay *c = relay_get(id);
	if (c == NULL)
		return -EINVAL;
	char path[256];
	pthread_mutex_lock(&c->lock);
	if (!c->registered) {
		pthread_mutex_unlock(&c->lock);
		return set_error(ENOENT, "relay %u has no socket", id);
	}
	snprintf(path, sizeof(path), "%s", c->path);
	c->registered = false;
	pthread_mutex_unlock(&c->lock);
	/* The VM's connections first (rte_vhost sees them close: destroy_device), then rte_vhost's
	 * socket. Not under the lock: on_destroy_device takes it. */
	frontdoor_close(id);
	int ret;
	for (int retries = 0;; retries++) { /* busy while a connection is being set up: 100 retries, 10 ms apart */
		ret = fault_at("unregister") ? -EBUSY : rte_vhost_driver_unregister(path);
		if (ret == 0 || retries == 100)
			break;
		usleep(10000);
	}
	pthread_mutex_lock(&c->lock);
	relay_set_path(c, "");
	pthread_mutex_unlock(&c->lock);
	unlink(path); /* the private socket, in the runtime directory */
	if (ret != 0)
		return set_error(EBUSY, "rte_vhost_driver_unregister('%s') kept failing", path);
	return 0;
}

void vhost_unregister_all(void)
{
	for (uint32_t id = 0; id < VIO4WD_MAX_RELAYS; id++)
		vio4wd_socket_unregister(id); /* ENOENT for relays without one */
}

/* ---- hot upgrade (docs/hot-upgrade.md): the front door's steps, reasons into `why` ---- */

static int handover_result(const char *failure, int err, char *why, uint32_t why_size)
{
	if (failure == NULL)
		return 0;
	snprintf(why, why_size, "%s", failure);
	return -err;
}

API int vio4wd_handover_check(uint32_t relay, char *why, uint32_t why_size)
{
	return handover_result(frontdoor_check(relay), EPERM, why, why_size);
}

API int vio4wd_handover_quiesce(uint32_t relay, char *why, uint32_t why_size)
{
	const char *failure = frontdoor_quiesce(relay);
	return handover_result(failure, failure != NULL && strcmp(failure, "busy") == 0 ? EBUSY : EPERM, why,
			       why_size);
}

API void vio4wd_handover_resume(uint32_t relay)
{
	frontdoor_resume(relay);
}

API int vio4wd_handover_send(uint32_t relay, const char *path, char *why, uint32_t why_size)
{
	return handover_result(frontdoor_send(relay, path), EIO, why, why_size);
}

API int vio4wd_handover_listen(const char *path)
{
	return frontdoor_handover_listen(path);
}

API int vio4wd_handover_adopt(uint32_t relay, uint32_t timeout_ms, char *why, uint32_t why_size)
{
	return handover_result(frontdoor_adopt(relay, timeout_ms), EIO, why, why_size);
}
