/* The shim's lifecycle: EAL init and shutdown, limits, version; the top of the call graph (internal.h). */
/* rte_intr_instance_alloc and the handle setters are experimental in 22.11 (the park below) */
#define ALLOW_EXPERIMENTAL_API
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <semaphore.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_interrupts.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_version.h>

#include "internal.h"

static bool g_initialized;

/* EAL's interrupt thread (alarms, link, reset and removal events, some PMDs' sockets) runs until
 * the process ends: rte_eal_cleanup does not stop it. A PMD that leaves an interrupt source
 * registered after its device is gone (22.11's memif leaves its listener's: memif_socket.c frees
 * the socket without unregistering it) leaves the thread an interrupt handle in hugepage memory,
 * and cleanup unmaps that memory: the thread's next wake (a peer connecting, an alarm) reads the
 * handle and the process dies after a clean stop. So just before cleanup the thread is parked in
 * a callback of ours that never returns, and no DPDK code runs in it again. */
static struct rte_intr_handle *g_park_handle;
static int g_park_fd = -1;
static sem_t g_parked;

static void park_interrupt_thread(void *arg)
{
	(void)arg;
	sem_post(&g_parked);
	for (;;)
		pause();
}

static void park_register(void)
{
	sem_init(&g_parked, 0, 0);
	g_park_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	g_park_handle = g_park_fd >= 0 ? rte_intr_instance_alloc(RTE_INTR_INSTANCE_F_PRIVATE) : NULL;
	if (g_park_handle == NULL || rte_intr_type_set(g_park_handle, RTE_INTR_HANDLE_EXT) != 0 ||
	    rte_intr_fd_set(g_park_handle, g_park_fd) != 0 ||
	    rte_intr_callback_register(g_park_handle, park_interrupt_thread, NULL) != 0) {
		RTE_LOG(WARNING, USER1, "vio4wd: cannot watch EAL's interrupt thread for the stop; a driver "
					"that leaves an interrupt source behind may crash the process at exit\n");
		rte_intr_instance_free(g_park_handle);
		g_park_handle = NULL;
	}
}

/* Parks the interrupt thread (above); waits for it at most 2 s (it may be in a driver's callback). */
static void park(void)
{
	if (fault("VIO4WD_FAULT_NO_PARK")) { /* the tests' check that the hazard is real: no core file */
		setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
		return;
	}
	if (g_park_handle == NULL)
		return;
	uint64_t one = 1;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 2;
	if (write(g_park_fd, &one, sizeof(one)) != (ssize_t)sizeof(one) || sem_timedwait(&g_parked, &until) != 0)
		RTE_LOG(WARNING, USER1, "vio4wd: EAL's interrupt thread did not stop within 2 s; cleaning up anyway\n");
}

API const char *vio4wd_version(void) { return rte_version(); }
API struct vio4wd_shared *vio4wd_shared(void) { return &g_shared; }

API uint64_t vio4wd_hugepage_bytes_used(void)
{
	uint64_t used = 0;
	struct rte_malloc_socket_stats st;
	for (unsigned int i = 0; i < rte_socket_count(); i++)
		if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &st) == 0)
			used += st.heap_allocsz_bytes;
	return used;
}

API void vio4wd_log_to_fd(int fd)
{
	FILE *f = fdopen(dup(fd), "w");
	if (f != NULL) {
		setvbuf(f, NULL, _IOLBF, 0);
		rte_openlog_stream(f);
	}
}

API void vio4wd_limits(struct vio4wd_limits *out)
{
	*out = (struct vio4wd_limits){
		.abi = VIO4WD_SHIM_ABI,
		.max_relays = VIO4WD_MAX_RELAYS,
		.max_workers = VIO4WD_MAX_WORKERS,
		.max_queue_pairs = VIO4WD_MAX_QUEUE_PAIRS,
		.max_bond_members = VIO4WD_MAX_BOND_MEMBERS,
		.max_ports = RTE_MAX_ETHPORTS,
		.event_queue_cap = events_default_cap(),
		.pool_mbufs = POOL_MBUFS,
	};
}

API int vio4wd_init(const char *args_nl, uint32_t mbuf_data_size, uint32_t flags, uint32_t event_queue_cap)
{
	if (g_initialized)
		return set_error(EALREADY, "DPDK EAL is already initialised in this process");
	char *copy = strdup(args_nl);
	char *argv[128];
	int argc = 0;
	for (char *save = NULL, *tok = strtok_r(copy, "\n", &save); tok != NULL && argc < 127;
	     tok = strtok_r(NULL, "\n", &save))
		argv[argc++] = tok;
	argv[argc] = NULL;

	for (unsigned i = 0; i < VIO4WD_MAX_WORKERS; i++)
		g_shared.workers[i].lcore = UINT64_MAX;
	relays_reset();
	events_reset(event_queue_cap == UINT32_MAX ? events_default_cap() : event_queue_cap);
	g_mbuf_data_size = mbuf_data_size;
	g_vf_tso = (flags & VIO4WD_INIT_VF_TSO) != 0;

	int ret = rte_eal_init(argc, argv);
	/* argv strings stay referenced by EAL; copy is intentionally kept. */
	if (ret < 0)
		return set_error(rte_errno, "rte_eal_init failed: %s", rte_strerror(rte_errno));
	g_initialized = true;
	worker_quit(false);

	unsigned lcore, n = 0;
	RTE_LCORE_FOREACH_WORKER(lcore) {
		g_shared.workers[n].lcore = lcore;
		n++;
	}
	g_shared.n_workers = n;
	g_shared.tsc_hz = rte_get_tsc_hz();
	lists_init();
	if ((ret = frontdoor_start()) != 0)
		return ret;
	park_register();
	vf_events_register();
	RTE_LCORE_FOREACH_WORKER(lcore) {
		ret = rte_eal_remote_launch(worker_main, NULL, lcore);
		if (ret != 0)
			return set_error(-ret, "cannot start the worker on CPU %u: %s", lcore, strerror(-ret));
	}
	return 0;
}

#ifdef VIO4WD_FAULTS
#include <sys/socket.h>
#include <sys/un.h>
/* In the tests' fault build: VIO4WD_FAULT_CONNECT_AFTER_CLEANUP=<path> connects to the abstract
 * unix socket <path> (where a memif server listened) just after cleanup and gives the interrupt
 * thread 300 ms to wake on it: what a VF stand-in's peer reconnecting during a stop does. */
static void fault_after_cleanup(void)
{
	const char *path = getenv("VIO4WD_FAULT_CONNECT_AFTER_CLEANUP");
	if (path == NULL || *path == '\0')
		return;
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	strncpy(un.sun_path + 1, path, sizeof(un.sun_path) - 2);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(un.sun_path + 1));
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&un, len) != 0)
		RTE_LOG(ERR, USER1, "vio4wd: VIO4WD_FAULT_CONNECT_AFTER_CLEANUP: %s\n", strerror(errno));
	usleep(300 * 1000);
	if (fd >= 0)
		close(fd);
}
#else
#define fault_after_cleanup() ((void)0)
#endif

API int vio4wd_shutdown(void)
{
	if (!g_initialized)
		return 0;
	vhost_unregister_all();
	frontdoor_stop();
	vf_detach_all();
	worker_quit(true);
	rte_eal_mp_wait_lcore();
	pools_free_all();
	g_initialized = false;
	park();
	int ret = rte_eal_cleanup();
	if (ret != 0)
		return set_error(rte_errno, "rte_eal_cleanup failed: %s", rte_strerror(rte_errno));
	fault_after_cleanup();
	return 0;
}

/* The layout ffi/shim.ts reads; change both together. */
_Static_assert(offsetof(struct vio4wd_shared, relays) == 64, "shared header is 64 bytes");
_Static_assert(sizeof(struct vio4wd_relay_stats) == 128, "relay stats are 128 bytes");
_Static_assert(offsetof(struct vio4wd_shared, workers) == 64 + 128 * VIO4WD_MAX_RELAYS, "workers follow relays");
_Static_assert(sizeof(struct vio4wd_shared) == 64 + 128 * 64 + 128 * 64 + 4 * 64, "shared size");
_Static_assert(sizeof(struct vio4wd_event) == 24, "event size");
_Static_assert(offsetof(struct vio4wd_shared, event_overflows) == 8, "event_overflows at 8");
_Static_assert(offsetof(struct vio4wd_shared, tsc_hz) == 16, "tsc_hz at 16");
_Static_assert(sizeof(struct vio4wd_worker_stats) == 128, "worker stats are 128 bytes");
_Static_assert(sizeof(struct vio4wd_limits) == 32, "limits are 32 bytes");
