/*
 * vio4wd shim: the whole API of the C data path over DPDK.
 *
 * Threading rule: every function here is called from one control thread (the daemon's JS
 * thread, which EAL makes the main lcore). vhost callbacks run on DPDK's vhost thread; they and
 * the control calls serialise per relay on the relay's mutex (relay.c). Worker lcores never take a
 * lock: each reads only its own work list, which the control side rebuilds and publishes (lists.c)
 * and then waits for a worker quiescent point (its pass counter advancing) before it tears
 * anything down. docs/architecture.md has the whole picture.
 *
 * Return values: 0 (or a non-negative result) on success, a negative errno on failure; the
 * failing step's message is then in vio4wd_last_error().
 */
#ifndef VIO4WD_SHIM_H
#define VIO4WD_SHIM_H

#include <stdint.h>

#define VIO4WD_SHIM_ABI 7
#define VIO4WD_MAX_RELAYS 64
#define VIO4WD_MAX_WORKERS 64
#define VIO4WD_MAX_QUEUE_PAIRS 32
#define VIO4WD_BURST 32

/* Counters of one direction of one relay; one writer (the worker serving it). 64 bytes. */
struct vio4wd_dir_stats {
	uint64_t rx_pkts;          /* taken from the source (VF RX or virtio TX ring) */
	uint64_t rx_bytes;
	uint64_t tx_pkts;          /* accepted by the destination */
	uint64_t tx_bytes;
	uint64_t drop_full_pkts;   /* destination queue full: freed */
	uint64_t drop_full_bytes;
	uint64_t drop_unavail_pkts;/* destination not connected: freed */
	uint64_t drop_unavail_bytes;
} __attribute__((aligned(64)));

/* Per relay: VF->VM then VM->VF. */
struct vio4wd_relay_stats {
	struct vio4wd_dir_stats vf_to_vm;
	struct vio4wd_dir_stats vm_to_vf;
};

/*
 * Per worker lcore, one writer (the worker), as OVS accounts its PMD threads: each pass's TSC
 * cycles (from its start to the next pass's start: an idle-mode sleep counts as idle) go to
 * busy_cycles when it moved packets, to idle_cycles when it moved none; a pass that moved packets
 * but took over 50 us per burst it moved (far more than a burst costs: the worker was interrupted
 * or descheduled) is counted in long_passes and its cycles in neither. Cycles per packet =
 * busy_cycles / rx_pkts.
 */
struct vio4wd_worker_stats {
	uint64_t passes;
	uint64_t busy_passes;
	uint64_t lcore;            /* the CPU, or UINT64_MAX when the slot is unused */
	uint64_t busy_cycles;
	uint64_t idle_cycles;
	uint64_t rx_pkts;          /* packets taken in, both directions */
	uint64_t bursts;           /* receive calls that returned packets */
	uint64_t long_passes;
	/* Where the busy cycles went (enum vio4wd_step), counted only by a shim built with
	 * `make STEPS=1` (two TSC reads per call; zero otherwise). The rest of busy_cycles is the
	 * loop itself: counting, hashing, the pass's bookkeeping. */
	uint64_t step_cycles[8];
} __attribute__((aligned(64)));

/* The steps of a busy pass that step_cycles[] splits its cycles into. */
enum vio4wd_step {
	VIO4WD_STEP_VF_RX = 0,       /* rte_eth_rx_burst that returned packets */
	VIO4WD_STEP_VM_ENQUEUE = 1,  /* rte_vhost_enqueue_burst (the copy into the guest), retries */
	VIO4WD_STEP_MBUF_FREE = 2,   /* freeing what was copied into the guest */
	VIO4WD_STEP_VM_DEQUEUE = 3,  /* rte_vhost_dequeue_burst that returned packets (copy out) */
	VIO4WD_STEP_VF_TX = 4,       /* rte_eth_tx_burst, retries, offloads done in software */
	VIO4WD_STEP_EMPTY_POLL = 5,  /* receive calls that returned nothing, in passes that moved some */
	VIO4WD_STEPS = 6,
};

/* The memory the daemon reads directly (vio4wd_shared()). */
struct vio4wd_shared {
	uint32_t n_workers;        /* slots of workers[] in use */
	uint32_t pad0;
	uint64_t event_overflows;  /* events dropped because the queue was full (events.c) */
	uint64_t tsc_hz;           /* the workers' cycle counter frequency (rte_get_tsc_hz) */
	uint64_t pad1[5];
	struct vio4wd_relay_stats relays[VIO4WD_MAX_RELAYS];
	struct vio4wd_worker_stats workers[VIO4WD_MAX_WORKERS];
	/* Per relay, the queue pairs of its connected VM, 0 without one (the vhost thread stores it,
	 * release, once the VM is set up or gone): the daemon reads relay state here every tick
	 * instead of mirroring it from events. */
	uint32_t vm_queue_pairs[VIO4WD_MAX_RELAYS];
};

/* Events produced by vhost callbacks, read by the daemon with vio4wd_next_event(). */
enum vio4wd_event_type {
	VIO4WD_EV_VM_CONNECTED = 1,    /* value: number of queue pairs */
	VIO4WD_EV_VM_DISCONNECTED = 2,
	VIO4WD_EV_VRING_STATE = 3,     /* value: queue id; detail: enabled 0/1 */
	VIO4WD_EV_VM_REJECTED = 4,     /* value: -errno */
	VIO4WD_EV_LIVE_MIGRATION = 5,
	VIO4WD_EV_BOND_FAILOVER = 6,   /* value: member index now active; detail: member index that lost its link */
	VIO4WD_EV_VF_FAILED = 7,       /* the VF could not be started for its VM (or its RX queue set up again
					* on a moved pool): it stays stopped; value: -errno */
	VIO4WD_EV_VF_RESET = 8,        /* the VF's device asks to be reset (RTE_ETH_EVENT_INTR_RESET, e.g. its PF
					* was reset): the daemon calls vio4wd_vf_reset() */
	VIO4WD_EV_VF_REMOVED = 9,      /* the VF's device went away (RTE_ETH_EVENT_INTR_RMV, hot-unplug): the
					* daemon detaches it */
};

struct vio4wd_event {
	uint32_t type;
	uint32_t relay;
	int32_t value;
	uint32_t detail;           /* VRING_STATE: enabled 0/1; BOND_FAILOVER: the member that lost its link */
	int32_t numa_node;         /* VM_CONNECTED: the guest memory's node, -1 unknown */
	uint32_t pad;
};

/* Flags for vio4wd_socket_register(). */
#define VIO4WD_SOCK_CLIENT (1u << 0)   /* connect (with reconnect) instead of listen */
#define VIO4WD_SOCK_MRGBUF (1u << 1)   /* offer VIRTIO_NET_F_MRG_RXBUF */
#define VIO4WD_SOCK_TSO (1u << 2)      /* offer HOST_TSO4/6 */
#define VIO4WD_SOCK_ADOPT (1u << 3)    /* the socket comes from another daemon (vio4wd_handover_adopt) */

/* Stages of vio4wd_vf_attach() a failure is reported from. */
#define VIO4WD_STAGE_OTHER 0
#define VIO4WD_STAGE_PROBE 1     /* device missing, not bound, already in use, port limit */
#define VIO4WD_STAGE_INFO 2      /* rte_eth_dev_info_get */
#define VIO4WD_STAGE_POOL 3      /* mbuf pool allocation */
#define VIO4WD_STAGE_CONFIGURE 4 /* rte_eth_dev_configure (MTU) */
#define VIO4WD_STAGE_RXQ 5
#define VIO4WD_STAGE_TXQ 6
#define VIO4WD_STAGE_START 7
#define VIO4WD_STAGE_BOND 8      /* bad bond name/mode, rte_eth_bond_create */
#define VIO4WD_STAGE_MEMBER 9    /* a bond member: probe or add (EEXIST: already in use) */

/* Relay state bits of struct vio4wd_relay_report. */
#define VIO4WD_STATE_SOCKET (1u << 0)
#define VIO4WD_STATE_VM (1u << 1)
#define VIO4WD_STATE_VF (1u << 2)
#define VIO4WD_STATE_VF_LINK (1u << 3)
#define VIO4WD_STATE_VF_RUNNING (1u << 4) /* the VF is started (only while its VM is there) */

/* What the shim can hold: the daemon takes these from here and repeats none of them. */
struct vio4wd_limits {
	uint32_t abi;              /* VIO4WD_SHIM_ABI */
	uint32_t max_relays;
	uint32_t max_workers;
	uint32_t max_queue_pairs;
	uint32_t max_bond_members;
	uint32_t max_ports;        /* DPDK ethdev ports per process (RTE_MAX_ETHPORTS) */
	uint32_t event_queue_cap;  /* default capacity of the event queue */
	uint32_t pool_mbufs;       /* mbufs of a relay's pool per VF port (a bond: per member) */
};

/* One relay as the shim has it: the daemon reconciles its table from this. 48 bytes. */
struct vio4wd_relay_report {
	uint32_t state;            /* VIO4WD_STATE_* */
	uint32_t queue_pairs;      /* of the connected VM, 0 without one */
	uint32_t rxq_mask;         /* enabled virtio RX queue pairs (VF->VM destinations) */
	uint32_t txq_mask;         /* enabled virtio TX queue pairs (VM->VF sources) */
	int32_t numa_node;         /* node of the relay's mbuf pool, -1 any / none */
	int32_t mbufs_in_use;      /* of the relay's pool, -1 without a pool */
	int32_t cpu[2];            /* worker CPU of [VF->VM, VM->VF], -1 unassigned */
	/* The VF's own receive losses (rte_eth_stats), UINT64_MAX without a VF: packets its RX ring had
	 * no room for (the relay holds a burst the guest has not taken yet) and receives that found
	 * no mbuf. Where loss shows when a guest is slower than its traffic. */
	uint64_t vf_rx_missed;
	uint64_t vf_rx_nombuf;
};

const char *vio4wd_version(void);          /* DPDK's rte_version() */
const char *vio4wd_last_error(void);
/* Where the last VF attach failed (VIO4WD_STAGE_*): callers map it to their own error codes. */
int vio4wd_last_error_stage(void);
struct vio4wd_shared *vio4wd_shared(void);

/* Flags for vio4wd_init(). */
#define VIO4WD_INIT_VF_TSO (1u << 0)   /* ask VFs for TCP/UDP TSO (the guest is offered HOST_TSO4/6) */

/* The limits; callable before vio4wd_init(). */
void vio4wd_limits(struct vio4wd_limits *out);
/* EAL init from '\n'-separated arguments (argv[0] first); starts a worker on every non-main lcore.
 * event_queue_cap: capacity of the event queue, 0..limits.event_queue_cap (tests make it small to
 * overflow it on purpose); UINT32_MAX for the default. */
int vio4wd_init(const char *args_nl, uint32_t mbuf_data_size, uint32_t flags, uint32_t event_queue_cap);
/* Stops workers, removes all relays' sockets and VFs, frees pools, rte_eal_cleanup(). */
int vio4wd_shutdown(void);
/* Logs DPDK's own messages into this file descriptor's stream (stderr = 2). */
void vio4wd_log_to_fd(int fd);

/* vhost-user socket of a relay; owner/group may be "" (keep). Server mode removes a stale socket. */
int vio4wd_socket_register(uint32_t relay, const char *path, uint32_t flags, const char *owner,
			   const char *group);
int vio4wd_socket_unregister(uint32_t relay);

/* Hot upgrade (docs/hot-upgrade.md): a relay's vhost-user sockets handed to another daemon. Each
 * returns 0 or -errno with the reason in `why` (these may run on a thread of their own, where the
 * caller's last error is not). Old daemon: check (-EPERM: not now, e.g. a live migration),
 * quiesce (rings stopped, sockets unwatched; -EBUSY: an exchange in flight, again soon), then
 * send to the new daemon's handover socket (blocks until it answers or ends; on failure the relay
 * runs here again), or resume. New daemon: listen once, register the relay's socket with
 * VIO4WD_SOCK_ADOPT, then adopt (blocks up to timeout_ms for the old daemon to connect). */
int vio4wd_handover_check(uint32_t relay, char *why, uint32_t why_size);
int vio4wd_handover_quiesce(uint32_t relay, char *why, uint32_t why_size);
void vio4wd_handover_resume(uint32_t relay);
int vio4wd_handover_send(uint32_t relay, const char *path, char *why, uint32_t why_size);
int vio4wd_handover_listen(const char *path);
int vio4wd_handover_adopt(uint32_t relay, uint32_t timeout_ms, char *why, uint32_t why_size);

/* VF side: devargs (PCI address or vdev string) probed, configured and started. */
int vio4wd_vf_attach(uint32_t relay, const char *devargs, uint32_t mtu);
int vio4wd_vf_detach(uint32_t relay);
/* Drops what the relay's VF received while stopped when it starts next (its VM connects): what a
 * VF shared with the daemon it takes over from (AF_PACKET: each socket gets a copy) queued while
 * the other one relayed. */
int vio4wd_vf_flush_at_start(uint32_t relay);
/* Resets the relay's VF after VIO4WD_EV_VF_RESET (rte_eth_dev_reset where the driver has it),
 * configures it again as it was and starts it again if its VM is there. */
int vio4wd_vf_reset(uint32_t relay);
/* VF side as a bonding device: `name` (net_bonding...), mode 0-6, 2-8 member devices ('\n'-separated
 * PCI addresses or devargs), each probed, then bonded; removed with vio4wd_vf_detach(). */
#define VIO4WD_MAX_BOND_MEMBERS 8
int vio4wd_bond_attach(uint32_t relay, const char *name, uint32_t mode, const char *members_nl, uint32_t mtu);

/* Idle mode: after IDLE_AFTER_PASSES passes without a packet a worker sleeps `us` microseconds
 * between passes until traffic returns (0: always poll). Takes effect at once. */
void vio4wd_set_idle_sleep(uint32_t us);
/* Moves every thread of the process but the workers (Deno's, libzmq's, DPDK's control threads) to
 * the main lcore's CPUs, so that none preempts a worker; threads they start later inherit it.
 * Returns the threads moved, or -errno. */
int vio4wd_place_threads(void);

/* Active-backup bonds whose active member lost its link while the bonding driver did not notice
 * (members whose driver raises no link event): the first member with link becomes active.
 * Called periodically from the control thread; each switch is a VIO4WD_EV_BOND_FAILOVER. */
void vio4wd_bonds_supervise(void);

/* Worker CPUs of a relay's two directions (-1 = unassigned); waits until the old worker lets go. */
int vio4wd_relay_set_cpus(uint32_t relay, int32_t vf_to_vm_cpu, int32_t vm_to_vf_cpu);
/* Fills *out with the relay's state as the shim has it. */
int vio4wd_relay_report(uint32_t relay, struct vio4wd_relay_report *out);
/* Bytes of hugepage memory allocated from DPDK's heaps (pools, rings, vhost), all NUMA nodes. */
uint64_t vio4wd_hugepage_bytes_used(void);

/* 1 and fills *ev when an event is pending, 0 when none. A full queue drops new events and counts
 * them in vio4wd_shared()->event_overflows: the daemon then reconciles from vio4wd_relay_report(). */
int vio4wd_next_event(struct vio4wd_event *ev);

#endif
