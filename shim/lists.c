/*
 * What each worker polls: a compact list of the relay directions assigned to it that have their
 * source connected, with everything the loop needs copied in (port, vid, pool, offloads,
 * counters, and where to read the enabled queue pairs). The control side rebuilds the lists from the relays after every
 * change and swaps them in; a worker never looks at a relay itself.
 *
 * Each worker has two lists: the one it polls, and a spare the next rebuild writes into. After a
 * swap, lists_publish() waits until the worker has started a pass over the new list, so that the
 * old one is unused (it becomes the spare) and nothing that was removed is still being polled.
 *
 * The handshake is message passing, not a counter: at the start of each pass the worker loads
 * `current` and stores it in `in_use` (release), after everything its previous pass read; the
 * publisher waits until it reads its new list back from `in_use` (acquire). So whatever the worker
 * did with the old list happens before what the publisher does next (free a pool, stop a port),
 * with no store-load ordering to get right on either side (a pass counter compared to the
 * counter's value after the swap needs a full fence on both sides, as Dekker's algorithm does).
 */
#include <errno.h>
#include <unistd.h>

#include <inttypes.h>

#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_log.h>

#include "internal.h"

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)

struct worker_lists {
	struct work_list lists[2];
	struct work_list *current; /* what the worker is to poll (release store, acquire load) */
	const struct work_list *in_use; /* what it polls in its pass now (written by the worker, release) */
};

static struct worker_lists g_lists[VIO4WD_MAX_WORKERS];
/* Serialises rebuilds (the control thread and the vhost thread both publish). Taken after a
 * relay's lock, never before one. */
static pthread_mutex_t g_publish_lock = PTHREAD_MUTEX_INITIALIZER;

int worker_slot(unsigned lcore)
{
	for (unsigned i = 0; i < g_shared.n_workers; i++)
		if (g_shared.workers[i].lcore == lcore)
			return (int)i;
	return -1;
}

void lists_init(void)
{
	for (unsigned i = 0; i < VIO4WD_MAX_WORKERS; i++) {
		g_lists[i].lists[0].n = g_lists[i].lists[1].n = 0;
		g_lists[i].current = &g_lists[i].lists[0];
		g_lists[i].in_use = NULL;
	}
}

const struct work_list *lists_current(unsigned slot)
{
	return LOAD(g_lists[slot].current);
}

struct work_list *lists_enter(unsigned slot)
{
	struct work_list *l = LOAD(g_lists[slot].current);
	__atomic_store_n(&g_lists[slot].in_use, l, __ATOMIC_RELEASE);
	return l;
}

/* The counters of direction `dir` of relay `id` in the shared memory. */
static struct vio4wd_dir_stats *dir_stats(uint32_t id, int dir)
{
	return dir == VF_TO_VM ? &g_shared.relays[id].vf_to_vm : &g_shared.relays[id].vm_to_vf;
}

/* Whether direction `dir` of the relay has its source: a running VF (VF->VM), a VM and a pool to
 * dequeue into (VM->VF). Without it the direction is polled by no worker. */
static bool has_source(struct relay *r, int dir)
{
	if (dir == VF_TO_VM)
		return LOAD(r->vf_running) && LOAD(r->port) != NO_PORT;
	return LOAD(r->vid) != NO_VID && LOAD(r->pool) != NULL;
}

/* Appends the relay's direction `dir` to `l` when it belongs on lcore `lcore` and has a source. */
static void add_item(struct work_list *l, struct relay *r, uint32_t id, int dir, int lcore)
{
	if (LOAD(r->cpu[dir]) != lcore || !has_source(r, dir))
		return;
	struct work_item *it = &l->items[l->n++];
	it->dir = (uint8_t)dir;
	/* a VF counts only while it runs: a stopped one is neither polled nor sent to */
	it->port = LOAD(r->vf_running) ? LOAD(r->port) : NO_PORT;
	it->vid = LOAD(r->vid);
	it->queues = dir == VF_TO_VM ? &r->rx_enabled : &r->tx_enabled;
	it->last = VIO4WD_MAX_QUEUE_PAIRS - 1;
	it->pool = LOAD(r->pool);
	it->tx_offloads = LOAD(r->tx_offloads);
	it->stats = dir_stats(id, dir);
	it->hold = &r->hold[dir];
	it->room_known = !LOAD(r->ring_packed);
	it->lacp = LOAD(r->lacp);
}

/* Frees the held packets of every direction that lost its source (no worker polls it: the caller
 * has quiesced every worker whose list changed), counted as drops for an unavailable destination:
 * the VM they were for left, or the VM they came from did and its VF relay stopped. A direction
 * that only moves between workers keeps them. */
static void flush_sourceless_holds(void)
{
	for (uint32_t id = 0; id < VIO4WD_MAX_RELAYS; id++) {
		struct relay *r = relay_get(id);
		for (int dir = 0; dir < 2; dir++) {
			struct hold *h = &r->hold[dir];
			if (has_source(r, dir) || hold_empty(h))
				continue;
			hold_drop_all(h, dir_stats(id, dir));
		}
	}
}

static bool same_list(const struct work_list *a, const struct work_list *b)
{
	if (a->n != b->n)
		return false;
	for (uint32_t i = 0; i < a->n; i++) {
		const struct work_item *x = &a->items[i], *y = &b->items[i];
		if (x->dir != y->dir || x->port != y->port || x->vid != y->vid || x->queues != y->queues ||
		    x->pool != y->pool || x->tx_offloads != y->tx_offloads || x->stats != y->stats ||
		    x->hold != y->hold || x->room_known != y->room_known || x->lacp != y->lacp)
			return false;
	}
	return true;
}

/*
 * Waits until the worker in `slot` has started a pass over its new list (so it is done with the old
 * one), however long that takes: the caller stops a port, frees a pool or returns a guest's memory
 * to QEMU next, which must not happen under a worker that still polls them. A worker descheduled
 * for long (its CPU shared with a busy process of higher priority) is waited for and logged once a
 * second.
 */
static void quiesce_slot(unsigned slot)
{
	const struct work_list *want = g_lists[slot].current; /* stored by this thread, under the lock */
	uint64_t hz = rte_get_timer_hz(), since = rte_get_timer_cycles(), said = 0;
	while (LOAD(g_lists[slot].in_use) != want) {
		usleep(5);
		uint64_t waited = (rte_get_timer_cycles() - since) / hz; /* whole seconds */
		if (waited > said) {
			said = waited;
			RTE_LOG(WARNING, USER1,
				"vio4wd: worker on CPU %u has not finished a pass for %" PRIu64 " s; waiting for it "
				"before releasing what it polled\n",
				(unsigned)g_shared.workers[slot].lcore, waited);
		}
	}
}

void lists_publish(void)
{
	bool changed[VIO4WD_MAX_WORKERS] = {false};
	pthread_mutex_lock(&g_publish_lock);
	for (unsigned s = 0; s < g_shared.n_workers; s++) {
		struct worker_lists *w = &g_lists[s];
		struct work_list *cur = w->current;
		struct work_list *spare = cur == &w->lists[0] ? &w->lists[1] : &w->lists[0];
		int lcore = (int)g_shared.workers[s].lcore;
		spare->n = 0;
		/* Other relays than the caller's are read without their locks: each publishes again after
		 * its own change, and every field is stored atomically in an order that is safe to
		 * see half-way (a source appears last and disappears first). */
		for (uint32_t id = 0; id < VIO4WD_MAX_RELAYS; id++) {
			struct relay *r = relay_get(id);
			add_item(spare, r, id, VF_TO_VM, lcore);
			add_item(spare, r, id, VM_TO_VF, lcore);
		}
		if (same_list(spare, cur))
			continue;
#ifdef VIO4WD_FAULTS
		if (spare->n < cur->n)
			fault_stall_worker(s); /* something is removed from under a worker that stalls */
#endif
		/* keep the worker's queue position where the item is the same one */
		for (uint32_t i = 0; i < spare->n && i < cur->n; i++)
			if (spare->items[i].stats == cur->items[i].stats)
				spare->items[i].last = cur->items[i].last;
		__atomic_store_n(&w->current, spare, __ATOMIC_RELEASE);
		changed[s] = true;
	}
	for (unsigned s = 0; s < g_shared.n_workers; s++)
		if (changed[s])
			quiesce_slot(s);
	flush_sourceless_holds();
	pthread_mutex_unlock(&g_publish_lock);
}

API int vio4wd_relay_set_cpus(uint32_t id, int32_t vf_to_vm_cpu, int32_t vm_to_vf_cpu)
{
	struct relay *r = relay_get(id);
	if (r == NULL)
		return -EINVAL;
	int32_t want[2] = {vf_to_vm_cpu, vm_to_vf_cpu};
	for (int d = 0; d < 2; d++)
		if (want[d] >= 0 && worker_slot((unsigned)want[d]) < 0)
			return set_error(EINVAL, "CPU %d is not a worker CPU of this daemon", want[d]);
	pthread_mutex_lock(&r->lock);
	/* Two steps, so that no two workers ever poll one direction at once: the old worker lets go
	 * (its new list published and entered), then the new one takes it. */
	bool moved = false;
	for (int d = 0; d < 2; d++) {
		if (r->cpu[d] != want[d] && r->cpu[d] >= 0) {
			__atomic_store_n(&r->cpu[d], -1, __ATOMIC_RELEASE);
			moved = true;
		}
	}
	if (moved)
		lists_publish();
	for (int d = 0; d < 2; d++)
		__atomic_store_n(&r->cpu[d], want[d], __ATOMIC_RELEASE);
	lists_publish();
	pthread_mutex_unlock(&r->lock);
	return 0;
}
