/*
 * What the shim's files share; not part of the API. One section per file, and calls go one way
 * (a file calls only those to its right or below it):
 *
 *   eal.c -> vhost.c -> vf.c -> pool.c -> lists.c -> relay.c
 *            vhost.c -> frontdoor.c (the public vhost-user sockets), which calls only DPDK
 *                                   \---> events.c -> relay.c
 *   worker.c -> lists.c (the work lists only), offload.c
 *   vf.c -> quirks.c (DPDK 22.11 driver bugs worked around), which calls only DPDK
 *   every file -> state.c (errors, the shared memory, process-wide settings), which calls none
 *
 * (eal.c also calls each of them at init and shutdown.) relay.c owns every relay's state (struct
 * relay); lists.c turns it into the per-worker work lists the workers read; no other file keeps
 * relay state of its own.
 */
#ifndef VIO4WD_INTERNAL_H
#define VIO4WD_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>
#include <stdint.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "vio4wd_shim.h"

#define API __attribute__((visibility("default")))
#define NO_PORT UINT16_MAX
#define NO_VID (-1)
#ifndef VIRTIO_F_RING_PACKED
#define VIRTIO_F_RING_PACKED 34
#endif

/* Fault injection, in the tests' build only (make FAULTS=1): whether the environment asks for
 * fault `name` (a VIO4WD_FAULT_* variable set non-empty). Always false in the shipped build. */
#ifdef VIO4WD_FAULTS
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static inline bool fault(const char *name)
{
	const char *v = getenv(name);
	return v != NULL && *v != '\0';
}
/* Whether the file VIO4WD_FAULT_FILE names says `stage` (its first line) now: the tests make one
 * step fail at a time while the daemon runs, where no stand-in fails for real (a device's
 * configure, its queue setups, an unplug, a socket's unregistration). */
static inline bool fault_at(const char *stage)
{
	const char *path = getenv("VIO4WD_FAULT_FILE");
	FILE *f = path != NULL ? fopen(path, "r") : NULL;
	if (f == NULL)
		return false;
	char line[64] = "";
	size_t n = strlen(stage);
	bool hit = fgets(line, sizeof(line), f) != NULL && strncmp(line, stage, n) == 0 &&
		   (line[n] == '\n' || line[n] == '\0');
	fclose(f);
	return hit;
}
#else
#define fault(name) false
#define fault_at(stage) false
#endif
#define VF_TO_VM 0
#define VM_TO_VF 1
/* Descriptors of a VF's RX and TX queue (vf.c sets them up, pool.c again when the pool moves), as
 * the original: room for a burst the guest is slow to take while the relay holds the one before. */
#define VF_RING_DESC 1024
/* A guest's TSO packet is at most 64 KiB: 128 segments cover MSS values down to 512. */
#define MAX_SEGMENTS 128

/*
 * What a destination refused, kept for the next pass instead of dropped (the original's
 * backpressure): one per relay direction. Only the worker polling that direction touches it;
 * lists.c hands it over with the work item and frees what is left once the direction has no
 * source or destination any more (VM or VF gone). A new burst is taken only when it is empty.
 */
struct hold {
	uint16_t first, n;       /* pkts[first..n) wait, in arrival order */
	uint16_t ready;          /* VM->VF: pkts[first..ready) are prepared for the VF (offloads done) */
	uint16_t seg_first, seg_n; /* VM->VF: segs[seg_first..seg_n) of a packet segmented here wait */
	uint64_t stuck_since;    /* TSC since when the destination has taken none of it, 0: it took some */
	uint64_t received_at;    /* VF->VM of a mode-4 bond: TSC of the last receive from the bond */
	struct rte_mbuf *pkts[VIO4WD_BURST];
	struct rte_mbuf *segs[MAX_SEGMENTS];
};

/* Frees pkts[from..to) and counts them in `st` as drops for an unavailable destination. */
static inline void drop_unavailable(struct rte_mbuf **pkts, uint16_t from, uint16_t to, struct vio4wd_dir_stats *st)
{
	for (uint16_t i = from; i < to; i++)
		st->drop_unavail_bytes += rte_pktmbuf_pkt_len(pkts[i]);
	st->drop_unavail_pkts += (uint16_t)(to - from);
	if (to > from)
		rte_pktmbuf_free_bulk(&pkts[from], (unsigned)(to - from));
}

/* Whether `h` holds nothing. */
static inline bool hold_empty(const struct hold *h)
{
	return h->first == h->n && h->seg_first == h->seg_n;
}

/* Makes the (emptied) `h` empty from its start, with no wait running. */
static inline void hold_reset(struct hold *h)
{
	h->first = h->n = h->ready = h->seg_first = h->seg_n = 0;
	h->stuck_since = 0;
}

/* Frees everything `h` holds (its destination is gone), counted in `st`. */
static inline void hold_drop_all(struct hold *h, struct vio4wd_dir_stats *st)
{
	drop_unavailable(h->segs, h->seg_first, h->seg_n, st);
	drop_unavailable(h->pkts, h->first, h->n, st);
	hold_reset(h);
}

/* ---- state.c: errors (per thread) and process-wide settings; calls nothing ---- */

int set_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* set_error() with the VIO4WD_STAGE_* it happened in. */
int set_stage_error(int stage, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
extern struct vio4wd_shared g_shared;
extern uint32_t g_mbuf_data_size;
extern bool g_vf_tso; /* VIO4WD_INIT_VF_TSO */

/* ---- frontdoor.c: the public vhost-user sockets, relayed to rte_vhost; calls only DPDK ---- */

int frontdoor_start(void);
void frontdoor_stop(void);
/* Where rte_vhost listens for relay `id` (the DPDK runtime directory: root only). */
void frontdoor_private_path(uint32_t id, char *out, size_t size);
/* Serves `public_path` for relay `id`: listens there (server mode: the socket made, owned by
 * uid:gid, mode 0660) or connects to it and reconnects (client mode). */
int frontdoor_open(uint32_t id, const char *public_path, bool client, bool adopt, uid_t uid, gid_t gid);
/* Closes relay `id`'s connections and socket (server mode: removes the file it made); returns
 * once done. */
void frontdoor_close(uint32_t id);
/* The hot upgrade's steps (docs/hot-upgrade.md); each returns NULL or why not. A door opened with
 * `adopt` neither listens nor dials until frontdoor_adopt() gives it another daemon's sockets. */
const char *frontdoor_check(uint32_t id);     /* whether relay `id`'s socket can be handed over now */
const char *frontdoor_quiesce(uint32_t id);   /* its rings stopped, its sockets unwatched; "busy": again */
void frontdoor_resume(uint32_t id);           /* undoes frontdoor_quiesce() */
const char *frontdoor_send(uint32_t id, const char *path); /* hands them over; else resumes */
int frontdoor_handover_listen(const char *path); /* the socket frontdoor_adopt() takes them on */
const char *frontdoor_adopt(uint32_t id, uint32_t timeout_ms);

/* ---- quirks.c: work-arounds for DPDK 22.11 driver bugs; calls only DPDK ---- */

/* The address a memif server device listens on (its devargs, memif's defaults). */
struct memif_listener {
	bool abstract;
	char path[108];
};
/* Whether `port` is a memif server; its address in *out. */
bool memif_listener_of(uint16_t port, struct memif_listener *out);
/* After the device that listened on `gone` was removed: closes the listener memif left open (the
 * file's comment), unless another memif device still listens there. */
void memif_listener_disarm(const struct memif_listener *gone);

/* ---- relay.c: the relays ---- */

/*
 * Everything the shim knows about one relay. Fields marked "lock" are read and written only with
 * `lock` held (a plain mutex: control calls and the new/destroy device callbacks take it, never a
 * worker, and no code path takes it twice). The data-path fields are the relay's side of what
 * lists.c publishes to the workers; they change only under `lock` followed by lists_publish().
 *
 * The vring callback takes no relay lock: DPDK runs it with virtqueue locks held that a worker may
 * be waiting for, while a control call may hold `lock` and wait for that worker. It touches only
 * the atomic queue fields, and all vhost callbacks run on DPDK's one vhost thread.
 */
struct relay {
	pthread_mutex_t lock;
	/* vhost side (lock) */
	char path[256];          /* rte_vhost's (private) socket, "" when none (lock, and written with relay_set_path) */
	bool registered;
	uint32_t rx_enabled;     /* vrings the guest enabled (bit q: pair q); atomic, read by the workers */
	uint32_t tx_enabled;
	bool ring_seen;          /* a vring state change came in: the masks above are the guest's (atomic) */
	int mask_vid;            /* the connection the masks are of (its vring changes come before new_device);
				  * NO_VID: none yet. Another connection's changes are ignored (atomic) */
	uint32_t queue_pairs;
	bool ring_packed;        /* the guest's rings are packed (rte_vhost_avail_entries reads split rings only) */
	bool lm_pending;
	/* VF side (lock) */
	char devargs[256];
	char devname[128];       /* rte_device name of the VF (or the bond), for removal */
	char members[VIO4WD_MAX_BOND_MEMBERS][128]; /* a bond's member devices */
	unsigned nmembers;       /* 0: not a bond */
	uint32_t mtu;
	/* pool (lock) */
	int numa_node;           /* node of the pool, -1 any */
	struct rte_mempool *retired; /* a pool replaced while some of its mbufs were still out */
	/* data path (lock, then lists_publish()); vid, port and pool are also read without the lock
	 * by vio4wd_relay_report() and the vhost callbacks, hence atomic stores */
	int vid;                 /* vhost device id, NO_VID when no VM */
	uint16_t port;           /* VF ethdev port, NO_PORT when no VF */
	bool vf_running;         /* the VF is started: only while a VM is connected, as the original */
	bool flush_rx_at_start; /* drop what the VF's RX queue holds when it starts next (vio4wd_vf_flush_at_start) */
	bool lacp;               /* the VF side is a mode-4 (802.3ad) bond: LACP rides its bursts */
	int32_t cpu[2];          /* worker lcore of [VF_TO_VM, VM_TO_VF]; -1 unassigned */
	struct rte_mempool *pool;
	uint64_t tx_offloads;    /* RTE_ETH_TX_OFFLOAD_* the VF port was configured with */
	uint64_t tx_offload_capa; /* what of them the VF has (the most it is ever configured with) */
	/* held packets of [VF_TO_VM, VM_TO_VF]: the polling worker's, see struct hold */
	struct hold hold[2];
};

/* Sets every relay to "nothing there". */
void relays_reset(void);
/* The relay, or NULL (with set_error()) when `id` is out of range. */
struct relay *relay_get(uint32_t id);
/* The relay whose socket is `path`, or -1. Takes only the path lock. */
int relay_of_path(const char *path);
/* Requires lock. Sets the relay's socket path ("" none) under the path lock. */
void relay_set_path(struct relay *r, const char *path);

/* ---- events.c: the event queue ---- */

uint32_t events_default_cap(void);
/* Empties the queue and sets its capacity (at most events_default_cap()). */
void events_reset(uint32_t cap);
void push_event(uint32_t type, uint32_t relay, int32_t value, uint32_t detail, int32_t numa);

/* ---- lists.c: what each worker polls ---- */

/*
 * One direction of one relay as a worker polls it: a copy of the relay's data-path fields, and a
 * pointer to the word of enabled queue pairs of its virtio side, which the vhost callbacks update
 * in place. vring_state_changed runs with DPDK's virtqueue locks held, which the worker's
 * enqueue waits for: it must not wait for the worker, so queue changes are not republished.
 */
struct work_item {
	uint8_t dir;             /* VF_TO_VM or VM_TO_VF */
	uint16_t port;           /* NO_PORT: VF gone (VM->VF counts drops) */
	int vid;                 /* NO_VID: VM gone (VF->VM counts drops) */
	uint16_t last;           /* VM->VF: the pair polled last (worker-private) */
	const uint32_t *queues;  /* enabled pairs of the virtio side (bit q: pair q), atomic loads */
	struct rte_mempool *pool;
	uint64_t tx_offloads;
	struct vio4wd_dir_stats *stats;
	struct hold *hold;       /* the direction's held packets (worker-owned while listed) */
	bool room_known;         /* VF->VM: the guest's split RX rings tell how many entries are free */
	bool lacp;               /* the port is a mode-4 bond: rx and tx bursts at least every 50 ms */
};

/* A worker's list: the items it polls, in relay order. */
struct work_list {
	uint32_t n;
	struct work_item items[2 * VIO4WD_MAX_RELAYS];
};

/* Registers the workers (the lcores EAL started) and empties their lists. */
void lists_init(void);
/* The list worker `slot` is to poll (acquire load). */
const struct work_list *lists_current(unsigned slot);
/* For worker `slot` at the start of a pass: the list to poll, recorded as in use (lists_publish()
 * waits for that before it reuses the list it replaced). */
struct work_list *lists_enter(unsigned slot);
#ifdef VIO4WD_FAULTS
/* Fault build: has worker `slot` stall mid-pass (VIO4WD_FAULT_STALL_WORKER_MS), once; returns once it does. */
void fault_stall_worker(unsigned slot);
#endif
/* Rebuilds every worker's list from the relays and publishes it; returns once every worker whose
 * list changed has started a pass over its new list (so nothing removed is still polled), however
 * long that takes. Requires the lock of the relay whose data-path fields changed. */
void lists_publish(void);
/* The worker slot of `lcore`, or -1 when it is not a worker. */
int worker_slot(unsigned lcore);

/* ---- pool.c: the relays' mbuf pools ---- */

/* Per port of the VF side (a bond has one per member), as the original: a 1024-descriptor RX ring,
 * what the relay holds, the TX ring and the per-lcore caches. 64 relays x 4095 mbufs of ~2.3 KiB
 * take about 590 MiB of hugepages (2.3 GiB with jumbo frames or TSO), within the original's
 * budget of 768 (2750) MiB per node. */
#define POOL_MBUFS 4095

/* Requires lock. Makes sure the relay has a pool for a VF side of `ports` ports (a bond: one per
 * member; 1 for a plain VF or a VM alone) on `numa` (-1 any): creates it, or replaces a smaller one. */
int pool_ensure(struct relay *r, uint32_t id, int numa, unsigned ports);
/* Requires lock. Moves the pool to `numa` (the VM's node) when it is elsewhere and the VM is not
 * yet published; the VF's RX queue, if any, moves to the new pool. */
void pool_rehome(struct relay *r, uint32_t id, int numa);
/* Requires lock. Frees the pool once neither a VM nor a VF uses it. */
void pool_release_if_idle(struct relay *r);
/* Frees every pool (workers stopped). */
void pools_free_all(void);

/* ---- vf.c ---- */

/* Requires lock. Starts (the VM came) or stops (it left) the relay's VF, if it has one; the work
 * lists follow. A stopped VF leaves traffic to the NIC, which drops it, instead of the CPU. */
void vf_run(struct relay *r, uint32_t id, bool run);
void vf_detach_all(void);
/* Has the VFs' reset and removal events (any port) reported as VIO4WD_EV_VF_RESET/REMOVED. */
void vf_events_register(void);

/* ---- vhost.c ---- */

void vhost_unregister_all(void);

/* ---- worker.c ---- */

int worker_main(void *arg);
/* Tells the workers to return from worker_main() (true) or lets them run (false). */
void worker_quit(bool quit);

/* ---- offload.c: VM->VF offloads the VF lacks, done in software ---- */

#define OFFLOAD_TX_FLAGS \
	(RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG)
/* The OFFLOAD_TX_FLAGS any of the packets carries. */
uint64_t offload_flags_of(struct rte_mbuf **pkts, uint16_t n);
/* Whether `m` asks for segmentation the port (configured with tx_offloads) cannot do, IPv4
 * checksums of the segments included. */
bool offload_needs_segmenting(const struct rte_mbuf *m, uint64_t tx_offloads);
/* Completes the checksums `m` asks for that tx_offloads lacks; -EINVAL when its headers are unreadable.
 * A packet the VF segments keeps its L4 request, and over IPv4 asks for its segments' IP checksums. */
int offload_sw_checksums(struct rte_mbuf *m, uint64_t tx_offloads);
/* Segments `m` in software into segs[] (checksums complete) and frees it; returns the segment
 * count, or a negative errno with `m` untouched (-ENOTSUP: UDP over IPv6). */
/* Segments that offload_segment() made but could not finish (freed): the caller counts them. */
struct offload_losses {
	uint32_t pkts;
	uint64_t bytes;
};
int offload_segment(struct rte_mbuf *m, struct rte_mempool *pool, struct rte_mbuf **segs, uint16_t max,
		    struct offload_losses *lost);

#endif
