/* The relays: one struct relay each, holding all of its state, and the report the daemon reads. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_ethdev.h>

#include "internal.h"

static struct relay g_relays[VIO4WD_MAX_RELAYS];
/* Guards every relay's `path`. Held only for a copy or a compare, never while waiting for
 * anything: the vhost callbacks look relays up under it while DPDK holds virtqueue locks. */
static pthread_mutex_t g_path_lock = PTHREAD_MUTEX_INITIALIZER;

void relays_reset(void)
{
	for (unsigned i = 0; i < VIO4WD_MAX_RELAYS; i++) {
		struct relay *r = &g_relays[i];
		memset(r, 0, sizeof(*r));
		pthread_mutex_init(&r->lock, NULL);
		r->numa_node = -1;
		r->vid = NO_VID;
		r->mask_vid = NO_VID;
		r->port = NO_PORT;
		r->cpu[VF_TO_VM] = r->cpu[VM_TO_VF] = -1;
		__atomic_store_n(&g_shared.vm_queue_pairs[i], 0, __ATOMIC_RELEASE);
	}
}

struct relay *relay_get(uint32_t id)
{
	if (id >= VIO4WD_MAX_RELAYS) {
		set_error(EINVAL, "relay %u is out of range 0-%d", id, VIO4WD_MAX_RELAYS - 1);
		return NULL;
	}
	return &g_relays[id];
}

int relay_of_path(const char *path)
{
	int found = -1;
	pthread_mutex_lock(&g_path_lock);
	for (int i = 0; i < VIO4WD_MAX_RELAYS && found < 0; i++)
		if (g_relays[i].path[0] != '\0' && strcmp(g_relays[i].path, path) == 0)
			found = i;
	pthread_mutex_unlock(&g_path_lock);
	return found;
}

void relay_set_path(struct relay *r, const char *path)
{
	pthread_mutex_lock(&g_path_lock);
	snprintf(r->path, sizeof(r->path), "%s", path);
	pthread_mutex_unlock(&g_path_lock);
}

API int vio4wd_relay_report(uint32_t id, struct vio4wd_relay_report *out)
{
	struct relay *r = relay_get(id);
	if (r == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&r->lock);
	if (r->registered)
		out->state |= VIO4WD_STATE_SOCKET;
	if (r->vid != NO_VID) {
		out->state |= VIO4WD_STATE_VM;
		out->queue_pairs = r->queue_pairs;
		out->rxq_mask = r->rx_enabled;
		out->txq_mask = r->tx_enabled;
	}
	out->vf_rx_missed = out->vf_rx_nombuf = UINT64_MAX;
	if (r->port != NO_PORT) {
		out->state |= VIO4WD_STATE_VF;
		struct rte_eth_stats es;
		if (rte_eth_stats_get(r->port, &es) == 0) {
			out->vf_rx_missed = es.imissed;
			out->vf_rx_nombuf = es.rx_nombuf;
		}
		if (r->vf_running)
			out->state |= VIO4WD_STATE_VF_RUNNING;
		struct rte_eth_link link;
		if (r->vf_running && rte_eth_link_get_nowait(r->port, &link) == 0 && link.link_status)
			out->state |= VIO4WD_STATE_VF_LINK;
	}
	out->numa_node = r->numa_node;
	out->mbufs_in_use = r->pool == NULL ? -1 : (int32_t)rte_mempool_in_use_count(r->pool);
	out->cpu[VF_TO_VM] = r->cpu[VF_TO_VM];
	out->cpu[VM_TO_VF] = r->cpu[VM_TO_VF];
	pthread_mutex_unlock(&r->lock);
	return 0;
}

_Static_assert(sizeof(struct vio4wd_relay_report) == 48, "relay report is 48 bytes");
