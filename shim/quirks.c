/*
 * Driver bugs of Debian's DPDK 22.11 that the shim works around, each named after its driver.
 * Calls only DPDK and libc (and RTE_LOG).
 *
 * memif (the tests' and the demo's VF stand-in): when the last device of a server socket goes,
 * memif_socket_remove_device() frees the socket but neither unregisters its listener from EAL's
 * interrupt thread nor closes it. The listening socket stays bound, so the same devargs cannot be
 * added again ("Address already in use"), and a peer that connects to it (an abstract socket: any
 * local user can) runs memif's accept handler on the freed socket. After the removal the shim
 * puts an eventfd that never fires in the listener's place (dup2): the address is free again, the
 * descriptor number EAL still watches stays taken by something inert, and nothing reaches the
 * handler. EAL's entry keeps its copy of the handle until cleanup, where eal.c parks the thread.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_ethdev.h>
#include <rte_kvargs.h>
#include <rte_log.h>

#include "internal.h"

/* memif's defaults in 22.11: role server, socket /run/memif.sock, an abstract address. */
static bool memif_server_address(struct rte_device *dev, struct memif_listener *out)
{
	const struct rte_devargs *da = dev != NULL ? rte_dev_devargs(dev) : NULL;
	struct rte_kvargs *kv = rte_kvargs_parse(da != NULL && da->args != NULL ? da->args : "", NULL);
	if (kv == NULL)
		return false;
	const char *role = rte_kvargs_get(kv, "role");
	const char *path = rte_kvargs_get(kv, "socket");
	const char *abstract = rte_kvargs_get(kv, "socket-abstract");
	bool server = role == NULL || strcmp(role, "server") == 0 || strcmp(role, "master") == 0;
	out->abstract = abstract == NULL || strcmp(abstract, "no") != 0;
	snprintf(out->path, sizeof(out->path), "%s", path != NULL ? path : "/run/memif.sock");
	rte_kvargs_free(kv);
	return server;
}

bool memif_listener_of(uint16_t port, struct memif_listener *out)
{
	struct rte_eth_dev_info info;
	if (rte_eth_dev_info_get(port, &info) != 0 || info.driver_name == NULL ||
	    strcmp(info.driver_name, "net_memif") != 0)
		return false;
	return memif_server_address(info.device, out);
}

static bool same_listener(const struct memif_listener *a, const struct memif_listener *b)
{
	return a->abstract == b->abstract && strcmp(a->path, b->path) == 0;
}

/* Whether fd is a listening SEQPACKET unix socket bound to l's address. */
static bool is_listener(int fd, const struct memif_listener *l)
{
	struct sockaddr_un un;
	socklen_t len = sizeof(un);
	int type = 0, listening = 0;
	socklen_t ilen = sizeof(int);
	if (getsockname(fd, (struct sockaddr *)&un, &len) != 0 || un.sun_family != AF_UNIX ||
	    len <= offsetof(struct sockaddr_un, sun_path))
		return false;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ilen) != 0 || type != SOCK_SEQPACKET)
		return false;
	ilen = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) != 0 || !listening)
		return false;
	size_t n = len - offsetof(struct sockaddr_un, sun_path);
	const char *name = un.sun_path;
	if (l->abstract) {
		if (name[0] != '\0')
			return false;
		name++;
		n--;
	}
	return strnlen(name, n) == strlen(l->path) && strncmp(name, l->path, n) == 0;
}

void memif_listener_disarm(const struct memif_listener *gone)
{
	uint16_t p;
	struct memif_listener other;
	if (fault("VIO4WD_FAULT_NO_MEMIF_DISARM")) /* the tests' way to keep the bug for eal.c's park */
		return;
	RTE_ETH_FOREACH_DEV(p)
		if (memif_listener_of(p, &other) && same_listener(&other, gone))
			return; /* another device still listens there: the socket is memif's, alive */
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (*end != '\0' || e->d_name[0] == '\0' || fd == dirfd(d) || !is_listener((int)fd, gone))
			continue;
		int inert = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (inert >= 0 && dup2(inert, (int)fd) == (int)fd)
			RTE_LOG(INFO, USER1, "vio4wd: memif left its listener on %s%s open and registered after the "
					     "removal (DPDK 22.11); closed it\n",
				gone->abstract ? "@" : "", gone->path);
		else
			RTE_LOG(WARNING, USER1, "vio4wd: memif left its listener on %s%s open; cannot close it: %s\n",
				gone->abstract ? "@" : "", gone->path, strerror(errno));
		if (inert >= 0)
			close(inert);
	}
	closedir(d);
}
