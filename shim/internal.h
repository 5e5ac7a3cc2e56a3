/* Shared state of the shim's files; not part of the API. */
#ifndef VIO4WD_INTERNAL_H
#define VIO4WD_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "vio4wd_shim.h"

#define API __attribute__((visibility("default")))
#define NO_PORT UINT16_MAX
#define NO_VID (-1)

/* What a worker reads each pass; written by the control side with release stores. */
struct relay_dp {
	int vid;                 /* vhost device id, NO_VID when no VM */
	uint16_t port;           /* VF ethdev port, NO_PORT when no VF */
	int32_t cpu[2];          /* [0] VF->VM lcore, [1] VM->VF lcore; -1 unassigned */
	uint32_t rxq_mask;       /* enabled virtio RX queue pairs (VF->VM destinations) */
	uint32_t txq_mask;       /* enabled virtio TX queue pairs (VM->VF sources) */
	struct rte_mempool *pool;
	uint16_t next_txq;       /* round robin over txq_mask, worker-private */
	uint64_t tx_offloads;    /* RTE_ETH_TX_OFFLOAD_* the VF port was configured with */
} __attribute__((aligned(64)));

/* Control-side state of a relay, guarded by lock. */
struct relay_ctl {
	pthread_mutex_t lock;
	char path[256];          /* vhost socket, "" when none */
	bool registered;
	bool client;            /* socket in client mode: the file is QEMU's */
	char devargs[256];
	char devname[128];       /* rte_device name of the VF (or the bond), for removal */
	char members[VIO4WD_MAX_BOND_MEMBERS][128]; /* a bond's member devices */
	unsigned nmembers;       /* 0: not a bond */
	int numa_node;           /* node of the pool, -1 any */
	struct rte_mempool *retired; /* a pool replaced while some of its mbufs were still out */
	uint32_t mtu;
	bool lm_pending;
};

extern struct relay_dp g_dp[VIO4WD_MAX_RELAYS];
extern struct relay_ctl g_ctl[VIO4WD_MAX_RELAYS];
extern struct vio4wd_shared g_shared;
extern volatile bool g_quit;
extern uint32_t g_mbuf_data_size;
extern bool g_vf_tso; /* VIO4WD_INIT_VF_TSO */

int set_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* set_error() with the VIO4WD_STAGE_* it happened in. */
int set_stage_error(int stage, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void push_event(uint32_t type, uint32_t relay, int32_t value, uint32_t enabled, uint32_t numa);

/* worker.c */
int worker_main(void *arg);
int worker_slot(unsigned lcore);
int quiesce(const int32_t cpus[2]);
/* offload.c: VM->VF offloads the VF lacks, done in software */
#define OFFLOAD_TX_FLAGS \
	(RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG)
/* The OFFLOAD_TX_FLAGS any of the packets carries. */
uint64_t offload_flags_of(struct rte_mbuf **pkts, uint16_t n);
/* Whether `m` asks for segmentation the port (configured with tx_offloads) cannot do. */
bool offload_needs_segmenting(const struct rte_mbuf *m, uint64_t tx_offloads);
/* Completes the checksums `m` asks for that tx_offloads lacks; -EINVAL when its headers are unreadable. */
int offload_sw_checksums(struct rte_mbuf *m, uint64_t tx_offloads);
/* Segments `m` in software into segs[] (checksums complete) and frees it; returns the segment
 * count, or a negative errno with `m` untouched (-ENOTSUP: UDP over IPv6). */
int offload_segment(struct rte_mbuf *m, struct rte_mempool *pool, struct rte_mbuf **segs, uint16_t max);
/* pool.c-ish helpers in vf.c */
int relay_ensure_pool(uint32_t relay, int numa);
void relay_release_pool_if_idle(uint32_t relay);
/* Moves the relay's pool to `numa` (the VM's node) when it is elsewhere; caller holds the lock
 * and has not yet published the VM. The VF, if any, is restarted on the new pool. */
void relay_rehome_pool(uint32_t relay, int numa);
void vhost_unregister_all(void);
void vf_detach_all(void);

#endif
