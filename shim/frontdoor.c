/*
 * The front door (docs/hot-upgrade.md): one thread owns every relay's public vhost-user socket
 * (server mode: it listens in the socket directory; client mode: it connects to QEMU's socket and
 * reconnects) and relays each connection's messages, with their descriptors, to rte_vhost, which
 * listens on the relay's private path in the DPDK runtime directory (root only). While relaying it
 * keeps each connection's replay record: what a fresh rte_vhost needs to reach the same state.
 * Only control messages pass here; rings and buffers are guest memory, used by the workers.
 *
 * A peer is checked as rte_vhost checks it: a message bigger than the protocol's largest, or
 * carrying more descriptors than any message takes, ends its connection; so does a peer that
 * does not read what it is sent (a send that would block). Nothing a peer sends holds the thread.
 *
 * Threads: the JS thread opens doors (creating the listening socket itself, to report errors) and
 * asks for them to be closed; only the front door thread closes and frees what it polls.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_log.h>

#include "internal.h"

#define HEADER 12
/* The protocol's largest message body is a memory table of 8 regions (264 bytes) or a config
 * space (268); rte_vhost refuses anything bigger than its payload union. */
#define MAX_PAYLOAD 4096
#define MAX_FDS 8
#define MAX_SESSIONS 8
#define RECONNECT_MS 250
#define F_VERSION 0x1
#define F_REPLY 0x4
#define F_NEED_REPLY 0x8
/* How long a replay waits for rte_vhost's answer, or for the front-end's exchange in flight. */
#define REPLAY_WAIT_MS 1000

/* vhost-user requests the record keeps (front-end to back-end) */
enum {
	GET_FEATURES = 1, GET_VRING_BASE = 11, GET_PROTOCOL_FEATURES = 15,
	SET_FEATURES = 2, SET_OWNER = 3, RESET_OWNER = 4, SET_MEM_TABLE = 5, SET_LOG_BASE = 6, SET_LOG_FD = 7,
	SET_VRING_NUM = 8, SET_VRING_ADDR = 9, SET_VRING_BASE = 10, SET_VRING_KICK = 12, SET_VRING_CALL = 13,
	SET_VRING_ERR = 14, SET_PROTOCOL_FEATURES = 16, SET_VRING_ENABLE = 18, NET_SET_MTU = 20,
	SET_SLAVE_REQ_FD = 21, IOTLB_MSG = 22, POSTCOPY_ADVISE = 28, SET_INFLIGHT_FD = 32, SET_STATUS = 39,
};
#define MAX_RINGS (2 * VIO4WD_MAX_QUEUE_PAIRS)

/* One message being read: header and body, and the descriptors that came with it. */
struct inbox {
	uint8_t data[HEADER + MAX_PAYLOAD];
	size_t have;
	int fds[MAX_FDS];
	int nfds;
};

/* A ring's state messages (u32 index, u32 value) and descriptor messages (u64: index, flags),
 * each kept as sent: state[RING_NUM] is SET_VRING_NUM's, fd[RING_KICK] SET_VRING_KICK's, ... */
enum { RING_NUM, RING_BASE, RING_ENABLE, RING_STATES };
enum { RING_KICK, RING_CALL, RING_ERR, RING_FDS }; /* SET_VRING_KICK + k */

/* A ring as the front-end set it up. */
struct ring_record {
	uint8_t state[RING_STATES][8], addr[40];
	bool has_state[RING_STATES], has_addr;
	int fd[RING_FDS]; /* -1: none (or given without a descriptor: polling) */
	uint8_t fd_msg[RING_FDS][8];
	bool has_fd[RING_FDS];
};

/* What a fresh rte_vhost needs to reach the session's state (docs/hot-upgrade.md). */
struct record {
	uint64_t features, protocol_features, mtu, status;
	bool has_features, has_protocol_features, has_mtu, has_status, owner;
	uint8_t mem_table[MAX_PAYLOAD];
	uint32_t mem_table_len;
	int mem_fds[MAX_FDS];
	int n_mem_fds;
	int slave_req_fd;
	struct ring_record rings[MAX_RINGS];
	const char *not_upgradable; /* why not, or NULL */
};

struct door;
struct endpoint {
	struct door *door;
	struct session *session; /* NULL: the door's listening socket */
	int side;                /* 0: the front-end (QEMU), 1: rte_vhost */
};

struct session {
	int fd[2];
	int awaiting; /* the front-end's requests whose reply has not come back yet */
	uint32_t bases[MAX_RINGS]; /* each ring's position when its rings were stopped (stop_rings) */
	struct inbox in[2];
	struct endpoint ep[2];
	struct record rec;
	struct session *next;
};

/* A door's part in a handover (docs/hot-upgrade.md). Only an open door listens or dials. */
enum door_state {
	DOOR_OPEN,     /* serving its sockets */
	DOOR_ADOPTING, /* opened to take another daemon's sockets: neither listens nor dials yet */
	DOOR_STOPPED,  /* its rings stopped and its sockets unwatched, to be handed over */
	DOOR_HANDED,   /* its sockets handed over: holds nothing, does nothing */
};

struct door {
	bool used, client, closing;
	enum door_state state;
	char public_path[108], private_path[108];
	int listen_fd;
	struct endpoint listen_ep;
	dev_t dev; /* the public socket file made here (server mode): removed only if still this one */
	ino_t ino;
	uint64_t next_try_ms;
	struct session *sessions;
	int nsessions;
};

static struct door g_doors[VIO4WD_MAX_RELAYS];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_closed = PTHREAD_COND_INITIALIZER;
static int g_epoll = -1, g_wake = -1;
static bool g_quit;
static pthread_t g_thread;
static bool g_running;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- the replay record ---- */

static const char DIRTY_LOGGING[] = "a live migration (dirty logging)";

static void record_init(struct record *r)
{
	memset(r, 0, sizeof(*r));
	r->slave_req_fd = -1;
	for (unsigned i = 0; i < MAX_RINGS; i++)
		for (int k = 0; k < RING_FDS; k++)
			r->rings[i].fd[k] = -1;
}

/* The record's descriptors in a fixed order: the memory regions, the request channel, each ring's
 * kick, call and err; pointers into the record, so that the receiver can fill them in. */
static int record_fds(struct record *r, int **out)
{
	int n = 0;
	for (int i = 0; i < r->n_mem_fds; i++)
		out[n++] = &r->mem_fds[i];
	if (r->slave_req_fd >= 0)
		out[n++] = &r->slave_req_fd;
	for (uint32_t i = 0; i < MAX_RINGS; i++)
		for (int k = 0; k < RING_FDS; k++)
			if (r->rings[i].fd[k] >= 0)
				out[n++] = &r->rings[i].fd[k];
	return n;
}
#define MAX_RECORD_FDS (MAX_FDS + 1 + RING_FDS * MAX_RINGS)

static void record_free(struct record *r)
{
	int *fds[MAX_RECORD_FDS];
	for (int i = 0, n = record_fds(r, fds); i < n; i++)
		close_fd(fds[i]);
	record_init(r);
}

/* The ring a payload names (its first u32, or the low byte of a u64 for kick/call/err), or NULL
 * when out of range (the record then no longer describes the session). */
static struct ring_record *ring_of(struct record *r, uint32_t index)
{
	if (index < MAX_RINGS)
		return &r->rings[index];
	r->not_upgradable = "a ring index beyond the relay's queue pairs";
	return NULL;
}

/* Takes the front-end's message (already forwarded). Descriptors it keeps become the record's;
 * the others are closed. */
static void record_message(struct record *r, uint32_t req, const uint8_t *p, uint32_t size, int *fds, int nfds)
{
	uint64_t u64 = 0;
	uint32_t u32 = 0;
	if (size >= 8)
		memcpy(&u64, p, 8);
	if (size >= 4)
		memcpy(&u32, p, 4);
	struct ring_record *ring = NULL;
	switch (req) {
	case SET_FEATURES:
		r->features = u64;
		r->has_features = true;
		if (u64 & (1ULL << 26)) /* VHOST_F_LOG_ALL */
			r->not_upgradable = DIRTY_LOGGING;
		else if (r->not_upgradable == DIRTY_LOGGING)
			r->not_upgradable = NULL; /* the migration was cancelled: logging is off again */
		if (u64 & (1ULL << 33)) /* VIRTIO_F_IOMMU_PLATFORM */
			r->not_upgradable = "an IOMMU (VIRTIO_F_IOMMU_PLATFORM)";
		break;
	case SET_PROTOCOL_FEATURES:
		r->protocol_features = u64;
		r->has_protocol_features = true;
		if (u64 & (1ULL << 8)) /* VHOST_USER_PROTOCOL_F_PAGEFAULT */
			r->not_upgradable = "postcopy migration (the PAGEFAULT protocol feature)";
		break;
	case SET_OWNER:
		r->owner = true;
		break;
	case RESET_OWNER:
		record_free(r);
		break;
	case SET_MEM_TABLE:
		if (size <= sizeof(r->mem_table)) {
			for (int i = 0; i < r->n_mem_fds; i++)
				close_fd(&r->mem_fds[i]);
			memcpy(r->mem_table, p, size);
			r->mem_table_len = size;
			for (int i = 0; i < nfds; i++) {
				r->mem_fds[i] = fds[i];
				fds[i] = -1;
			}
			r->n_mem_fds = nfds;
		}
		break;
	case SET_SLAVE_REQ_FD:
		if (nfds == 1) {
			close_fd(&r->slave_req_fd);
			r->slave_req_fd = fds[0];
			fds[0] = -1;
		}
		break;
	case NET_SET_MTU:
		r->mtu = u64;
		r->has_mtu = true;
		break;
	case SET_STATUS:
		r->status = u64;
		r->has_status = true;
		break;
	case SET_VRING_NUM:
	case SET_VRING_BASE:
	case SET_VRING_ENABLE:
		if (size >= 8 && (ring = ring_of(r, u32)) != NULL) {
			int k = req == SET_VRING_NUM ? RING_NUM : req == SET_VRING_BASE ? RING_BASE : RING_ENABLE;
			memcpy(ring->state[k], p, 8);
			ring->has_state[k] = true;
		}
		break;
	case SET_VRING_ADDR:
		if (size >= sizeof(ring->addr) && (ring = ring_of(r, u32)) != NULL) {
			memcpy(ring->addr, p, sizeof(ring->addr));
			ring->has_addr = true;
		}
		break;
	case SET_VRING_KICK:
	case SET_VRING_CALL:
	case SET_VRING_ERR:
		if (size >= 8 && (ring = ring_of(r, (uint32_t)(u64 & 0xff))) != NULL) {
			uint32_t k = req - SET_VRING_KICK;
			close_fd(&ring->fd[k]);
			if (!(u64 & 0x100) && nfds == 1) {
				ring->fd[k] = fds[0];
				fds[0] = -1;
			}
			memcpy(ring->fd_msg[k], p, 8);
			ring->has_fd[k] = true;
		}
		break;
	case SET_LOG_BASE:
	case SET_LOG_FD:
		r->not_upgradable = DIRTY_LOGGING;
		break;
	case IOTLB_MSG:
		r->not_upgradable = "an IOMMU (IOTLB messages)";
		break;
	case POSTCOPY_ADVISE:
		r->not_upgradable = "postcopy migration";
		break;
	case SET_INFLIGHT_FD:
		r->not_upgradable = "in-flight tracking";
		break;
	default:
		break;
	}
	for (int i = 0; i < nfds; i++)
		close_fd(&fds[i]);
}

/* ---- sessions ---- */

static void session_close(struct door *d, struct session *s)
{
	for (int side = 0; side < 2; side++) {
		if (s->fd[side] >= 0)
			epoll_ctl(g_epoll, EPOLL_CTL_DEL, s->fd[side], NULL);
		close_fd(&s->fd[side]);
		for (int i = 0; i < s->in[side].nfds; i++)
			close_fd(&s->in[side].fds[i]);
	}
	record_free(&s->rec);
	for (struct session **p = &d->sessions; *p != NULL; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	d->nsessions--;
	free(s);
	d->next_try_ms = now_ms() + RECONNECT_MS;
}

static int watch(int fd, struct endpoint *ep)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = ep};
	return epoll_ctl(g_epoll, EPOLL_CTL_ADD, fd, &ev);
}

/* A session for the front-end connection `front`: rte_vhost is connected on the relay's private
 * path (it accepts in its own thread; what is sent waits in the socket until then). */
static void session_open(struct door *d, int front)
{
	if (d->nsessions >= MAX_SESSIONS) {
		RTE_LOG(WARNING, USER1, "vio4wd: %s: more than %d connections at once; closing the new one\n",
			d->public_path, MAX_SESSIONS);
		close(front);
		return;
	}
	struct session *s = calloc(1, sizeof(*s));
	int back = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->private_path);
	if (s == NULL || back < 0 || connect(back, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		RTE_LOG(ERR, USER1, "vio4wd: %s: cannot reach rte_vhost on %s: %s\n", d->public_path, d->private_path,
			strerror(errno));
		free(s);
		if (back >= 0)
			close(back);
		close(front);
		return;
	}
	record_init(&s->rec);
	s->fd[0] = front;
	s->fd[1] = back;
	for (int side = 0; side < 2; side++)
		s->ep[side] = (struct endpoint){.door = d, .session = s, .side = side};
	s->next = d->sessions;
	d->sessions = s;
	d->nsessions++;
	if (watch(front, &s->ep[0]) != 0 || watch(back, &s->ep[1]) != 0)
		session_close(d, s);
}

/* Sends one message with its descriptors, whole or not at all (a peer that does not read). */
static bool send_message(int fd, const uint8_t *data, size_t len, const int *fds, int nfds)
{
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds > 0) {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	ssize_t n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	return n == (ssize_t)len;
}

/* Passes `in`'s whole message on to `to`; the record takes the front-end's. */
static bool deliver(struct door *d, struct session *s, int side)
{
	struct inbox *in = &s->in[side];
	uint32_t req, size;
	memcpy(&req, in->data, 4);
	memcpy(&size, in->data + 8, 4);
	if (!send_message(s->fd[1 - side], in->data, in->have, in->fds, in->nfds)) {
		RTE_LOG(ERR, USER1, "vio4wd: %s: cannot pass a message to %s (%s); closing\n", d->public_path,
			side == 0 ? "rte_vhost" : "the VM", strerror(errno));
		return false;
	}
	uint32_t flags;
	memcpy(&flags, in->data + 4, 4);
	if (side == 0) {
		/* requests named GET_*, and those asking for an acknowledgement, are answered */
		if ((flags & F_NEED_REPLY) || req == GET_FEATURES || req == GET_PROTOCOL_FEATURES || req == GET_VRING_BASE ||
		    req == 17 /* GET_QUEUE_NUM */ || req == 24 /* GET_CONFIG */ || req == 31 /* GET_INFLIGHT_FD */ ||
		    req == 40 /* GET_STATUS */ || req == SET_LOG_BASE || req == POSTCOPY_ADVISE)
			s->awaiting++;
		record_message(&s->rec, req, in->data + HEADER, size, in->fds, in->nfds);
	} else {
		if ((flags & F_REPLY) && s->awaiting > 0)
			s->awaiting--;
		for (int i = 0; i < in->nfds; i++)
			close_fd(&in->fds[i]);
	}
	in->have = 0;
	in->nfds = 0;
	return true;
}

/* Keeps the descriptors a read brought (closing those beyond a message's most); false when there
 * were more than that (the kernel closed what did not fit the buffer: MSG_CTRUNC). */
static bool take_fds(struct inbox *in, struct msghdr *mh)
{
	bool fits = (mh->msg_flags & MSG_CTRUNC) == 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (in->nfds < MAX_FDS) {
				in->fds[in->nfds++] = fd;
			} else {
				close(fd);
				fits = false;
			}
		}
	}
	return fits;
}

/* Reads what `side` has, a header first and then exactly the body it announces, and passes on
 * each whole message: at most 64 per call, so that a peer that keeps sending gets its turn like
 * the others (epoll reports it again). False: the session ends. */
static bool session_read(struct door *d, struct session *s, int side)
{
	struct inbox *in = &s->in[side];
	for (int delivered = 0;;) {
		size_t want = HEADER;
		if (in->have >= HEADER) {
			uint32_t size;
			memcpy(&size, in->data + 8, 4);
			if (size > MAX_PAYLOAD) {
				RTE_LOG(ERR, USER1, "vio4wd: %s: a vhost-user message of %u bytes from %s; closing\n",
					d->public_path, size, side == 0 ? "the VM" : "rte_vhost");
				return false;
			}
			want = HEADER + size;
			if (in->have == want) {
				if (!deliver(d, s, side))
					return false;
				if (++delivered == 64)
					return true; /* nothing half-read is left behind: the buffer is empty */
				continue;
			}
		}
		union {
			char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {.iov_base = in->data + in->have, .iov_len = want - in->have};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
				    .msg_controllen = sizeof(ctl.buf)};
		ssize_t n = recvmsg(s->fd[side], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		if (n == 0 || !take_fds(in, &mh))
			return false; /* the peer closed, or sent more descriptors than a message takes */
		in->have += (size_t)n;
	}
}

/* Client mode: connects to QEMU's socket when the door has no session and it is time. */
static void door_dial(struct door *d, uint64_t now)
{
	if (!d->client || d->closing || d->state != DOOR_OPEN || d->sessions != NULL || now < d->next_try_ms)
		return;
	d->next_try_ms = now + RECONNECT_MS;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->public_path);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd); /* not there yet (ENOENT, ECONNREFUSED): the next try */
		return;
	}
	session_open(d, fd);
}

static void door_free(struct door *d)
{
	while (d->sessions != NULL)
		session_close(d, d->sessions);
	if (d->listen_fd >= 0) {
		epoll_ctl(g_epoll, EPOLL_CTL_DEL, d->listen_fd, NULL);
		close_fd(&d->listen_fd);
		struct stat st;
		/* only the socket made here: not one somebody put in its place since */
		if (lstat(d->public_path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == d->ino && st.st_dev == d->dev)
			unlink(d->public_path);
	}
	d->used = d->closing = false;
}

/* ---- replay (docs/hot-upgrade.md) ---- */

/* Sends a message of the replay; a descriptor of -1 is not sent. */
static bool put(int fd, uint32_t req, const void *payload, uint32_t size, const int *fds, int nfds)
{
	uint8_t buf[HEADER + MAX_PAYLOAD];
	uint32_t flags = F_VERSION;
	memcpy(buf, &req, 4);
	memcpy(buf + 4, &flags, 4);
	memcpy(buf + 8, &size, 4);
	memcpy(buf + HEADER, payload, size);
	int real[MAX_FDS], n = 0;
	for (int i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			real[n++] = fds[i];
	return send_message(fd, buf, HEADER + size, real, n);
}

/* Reads exactly `len` bytes within `wait_ms`; descriptors that come are closed. */
static bool get_exact(int fd, void *out, size_t len, unsigned wait_ms)
{
	uint8_t *buf = out;
	uint64_t until = now_ms() + wait_ms;
	size_t have = 0;
	while (have < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t now = now_ms();
		if (now >= until || poll(&p, 1, (int)(until - now)) <= 0)
			return false;
		union {
			char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {.iov_base = buf + have, .iov_len = len - have};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
				    .msg_controllen = sizeof(ctl.buf)};
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
			return false;
		struct inbox sink = {.nfds = 0};
		take_fds(&sink, &mh);
		for (int i = 0; i < sink.nfds; i++)
			close(sink.fds[i]);
		if (n > 0)
			have += (size_t)n;
	}
	return true;
}

/* Asks `req` (a GET_* with a u64 or ring-state answer); the answer's payload in *out. */
static bool ask(int fd, uint32_t req, const void *payload, uint32_t size, uint8_t out[8])
{
	uint8_t head[HEADER];
	uint32_t rreq, rsize;
	if (!put(fd, req, payload, size, NULL, 0) || !get_exact(fd, head, HEADER, REPLAY_WAIT_MS))
		return false;
	memcpy(&rreq, head, 4);
	memcpy(&rsize, head + 8, 4);
	return rreq == req && rsize == 8 && get_exact(fd, out, 8, REPLAY_WAIT_MS);
}

/* A ring the back-end runs: address, kick and call given. */
static bool started(const struct ring_record *r)
{
	return r->has_addr && r->has_fd[RING_KICK] && r->has_fd[RING_CALL];
}

/* Brings the new rte_vhost connection `fd` to the record's state, rings at `bases`; NULL or why not. */
static const char *replay_into(int fd, const struct record *r, const uint32_t *bases)
{
	uint8_t got[8];
	uint64_t offered;
	if (!ask(fd, GET_FEATURES, NULL, 0, got))
		return "no answer to GET_FEATURES";
	memcpy(&offered, got, 8);
	if (r->features & ~offered)
		return "features the session negotiated are not offered";
	if (r->has_protocol_features) {
		if (!ask(fd, GET_PROTOCOL_FEATURES, NULL, 0, got))
			return "no answer to GET_PROTOCOL_FEATURES";
		memcpy(&offered, got, 8);
		if (r->protocol_features & ~offered)
			return "protocol features the session negotiated are not offered";
		if (!put(fd, SET_PROTOCOL_FEATURES, &r->protocol_features, 8, NULL, 0))
			return "SET_PROTOCOL_FEATURES";
	}
	if (r->owner && !put(fd, SET_OWNER, NULL, 0, NULL, 0))
		return "SET_OWNER";
	if (r->slave_req_fd >= 0 && !put(fd, SET_SLAVE_REQ_FD, NULL, 0, &r->slave_req_fd, 1))
		return "SET_SLAVE_REQ_FD";
	if (r->has_features && !put(fd, SET_FEATURES, &r->features, 8, NULL, 0))
		return "SET_FEATURES";
	if (r->mem_table_len > 0 && !put(fd, SET_MEM_TABLE, r->mem_table, r->mem_table_len, r->mem_fds, r->n_mem_fds))
		return "SET_MEM_TABLE";
	if (r->has_mtu && !put(fd, NET_SET_MTU, &r->mtu, 8, NULL, 0))
		return "NET_SET_MTU";
	for (uint32_t i = 0; i < MAX_RINGS; i++) {
		const struct ring_record *q = &r->rings[i];
		uint32_t state[2] = {i, bases[i]};
		bool ok = (!q->has_state[RING_NUM] || put(fd, SET_VRING_NUM, q->state[RING_NUM], 8, NULL, 0)) &&
			  (started(q) ? put(fd, SET_VRING_BASE, state, 8, NULL, 0) :
					!q->has_state[RING_BASE] || put(fd, SET_VRING_BASE, q->state[RING_BASE], 8, NULL, 0)) &&
			  (!q->has_addr || put(fd, SET_VRING_ADDR, q->addr, sizeof(q->addr), NULL, 0));
		for (uint32_t k = 0; ok && k < RING_FDS; k++)
			ok = !q->has_fd[k] || put(fd, SET_VRING_KICK + k, q->fd_msg[k], 8, &q->fd[k], 1);
		if (!ok || (q->has_state[RING_ENABLE] && !put(fd, SET_VRING_ENABLE, q->state[RING_ENABLE], 8, NULL, 0)))
			return "a ring's messages";
	}
	if (r->has_status && !put(fd, SET_STATUS, &r->status, 8, NULL, 0))
		return "SET_STATUS";
	return NULL;
}

/*
 * Stops session `s`'s rings in rte_vhost and drops that connection: reads each started ring's
 * base (GET_VRING_BASE, which stops the ring there: destroy_device) into bases[] and closes the
 * private link. The front-end's socket is not touched. NULL, "busy" (an exchange of the
 * front-end's in flight: try again) or why not; nothing is changed unless it returns NULL.
 */
static const char *stop_rings(struct session *s, uint32_t bases[MAX_RINGS], uint32_t *nrings)
{
	if (s->rec.not_upgradable != NULL)
		return s->rec.not_upgradable;
	if (s->awaiting > 0 || s->in[0].have > 0 || s->in[1].have > 0)
		return "busy";
	memset(bases, 0, sizeof(uint32_t) * MAX_RINGS);
	*nrings = 0;
	for (uint32_t i = 0; i < MAX_RINGS; i++) {
		if (!started(&s->rec.rings[i]))
			continue;
		uint32_t state[2] = {i, 0};
		uint8_t got[8];
		if (!ask(s->fd[1], GET_VRING_BASE, state, 8, got))
			return "no answer to GET_VRING_BASE";
		memcpy(&bases[i], got + 4, 4);
		(*nrings)++;
	}
	epoll_ctl(g_epoll, EPOLL_CTL_DEL, s->fd[1], NULL);
	close_fd(&s->fd[1]);
	return NULL;
}

/*
 * Connects session `s` (no private link) to door `d`'s rte_vhost and replays its record there at
 * `bases`, then writes each ring's call eventfd once (a guest that suppressed interrupts looks at
 * its used rings again) and watches the new link. NULL or why not.
 */
static const char *attach(struct door *d, struct session *s, const uint32_t bases[MAX_RINGS])
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->private_path);
	int back = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (back < 0 || connect(back, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (back >= 0)
			close(back);
		return "cannot connect to rte_vhost";
	}
	s->fd[1] = back;
	const char *why = replay_into(back, &s->rec, bases);
	if (why != NULL || watch(back, &s->ep[1]) != 0)
		return why != NULL ? why : "cannot watch the new connection";
	uint64_t one = 1;
	for (uint32_t i = 0; i < MAX_RINGS; i++)
		if (s->rec.rings[i].fd[RING_CALL] >= 0 && write(s->rec.rings[i].fd[RING_CALL], &one, sizeof(one)) < 0)
			RTE_LOG(WARNING, USER1, "vio4wd: %s: cannot kick ring %u's call eventfd: %s\n", d->public_path, i,
				strerror(errno));
	return NULL;
}

/* Replays session `s` into a fresh connection to the same rte_vhost (docs/hot-upgrade.md): the
 * mechanism's test. After a failure past stop_rings the session has no private link (its caller
 * ends it). */
__attribute__((unused)) static const char *session_replay(struct door *d, struct session *s, uint32_t *nrings)
{
	const char *why = stop_rings(s, s->bases, nrings);
	return why != NULL ? why : attach(d, s, s->bases);
}

/* ---- handover to another daemon (docs/hot-upgrade.md, steps 3.1-3.6) ----
 * A door goes as: its header (how many sessions, whether it listens), its listening socket, then
 * each session: its record and bases, then its descriptors (the front-end's socket first). The
 * receiver answers one word: 'R' (running there) or 'F' (not taken: the sender takes it back). */

#define HANDOVER_MAGIC 0x31304f4844573456ULL /* "V4WDHO01": the record's format */
#define FD_CHUNK MAX_FDS /* send_message() takes at most MAX_FDS descriptors per message */
#define HANDOVER_WAIT_MS 5000 /* how long the receiver waits for each part: header, record, descriptors */

/* What goes before a session's descriptors: the record (its descriptor fields are meaningless
 * across processes: the descriptors follow in record_fds() order) and the bases read. */
struct handover {
	uint64_t magic;
	uint32_t bases[MAX_RINGS];
	struct record rec;
};

/* What goes before a door's sessions. */
struct door_handover {
	uint64_t magic;
	uint32_t sessions, listening;
};

static bool send_all(int sock, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = send(sock, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* Descriptors, FD_CHUNK per 1-byte message. */
static bool send_fd_list(int sock, const int *fds, int n)
{
	uint8_t one = 'F';
	for (int at = 0; at < n; at += FD_CHUNK) {
		int k = RTE_MIN(FD_CHUNK, n - at);
		if (!send_message(sock, &one, 1, fds + at, k))
			return false;
	}
	return true;
}

/* Receives the `want` descriptors send_fd_list() sends, into fds[]; what comes beyond them is
 * closed. On failure those received are closed. */
static bool recv_fds(int sock, int *fds, int want)
{
	int got = 0;
	while (got < want) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * FD_CHUNK)];
			struct cmsghdr align;
		} ctl;
		uint8_t one;
		struct iovec iov = {.iov_base = &one, .iov_len = 1};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
				    .msg_controllen = sizeof(ctl.buf)};
		struct pollfd p = {.fd = sock, .events = POLLIN};
		struct inbox chunk = {.nfds = 0};
		bool ok = poll(&p, 1, HANDOVER_WAIT_MS) == 1 && recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) == 1 &&
			  take_fds(&chunk, &mh);
		for (int i = 0; i < chunk.nfds; i++) {
			if (got < want)
				fds[got++] = chunk.fds[i];
			else
				close(chunk.fds[i]);
		}
		if (!ok) {
			RTE_LOG(ERR, USER1, "vio4wd: handover: %d of %d descriptors came (%s)\n", got, want,
				(mh.msg_flags & MSG_CTRUNC) ? "cut short: over the process's limit?" : strerror(errno));
			for (int i = 0; i < got; i++)
				close(fds[i]);
			return false;
		}
	}
	return true;
}

/* Sends stopped session `s`: its record and bases, then its front-end socket and the record's
 * descriptors. */
static bool session_send(int sock, struct session *s)
{
	struct handover *h = malloc(sizeof(*h));
	if (h == NULL)
		return false;
	h->magic = HANDOVER_MAGIC;
	memcpy(h->bases, s->bases, sizeof(h->bases));
	h->rec = s->rec;
	int *slots[MAX_RECORD_FDS];
	int all[1 + MAX_RECORD_FDS], n = record_fds(&s->rec, slots);
	all[0] = s->fd[0];
	for (int i = 0; i < n; i++)
		all[1 + i] = *slots[i];
	bool ok = send_all(sock, h, sizeof(*h)) && send_fd_list(sock, all, 1 + n);
	free(h);
	return ok;
}

/* Receives a session session_send() sent, for door `d` (not linked in, not watched); NULL and
 * *why when it did not come whole. The other daemon's numbers are read, never trusted. */
static struct session *session_receive(struct door *d, int sock, const char **why)
{
	struct session *s = calloc(1, sizeof(*s));
	struct handover *h = malloc(sizeof(*h));
	int *slots[MAX_RECORD_FDS];
	int fds[1 + MAX_RECORD_FDS], n = 0;
	*why = NULL;
	if (s == NULL || h == NULL)
		*why = "no memory";
	else if (!get_exact(sock, h, sizeof(*h), HANDOVER_WAIT_MS))
		*why = "the handover's record did not come";
	else if (h->magic != HANDOVER_MAGIC)
		*why = "the handover's record is of another format";
	else if (h->rec.n_mem_fds < 0 || h->rec.n_mem_fds > MAX_FDS || h->rec.mem_table_len > sizeof(h->rec.mem_table))
		*why = "the handover's record is out of bounds";
	if (*why == NULL) {
		h->rec.not_upgradable = NULL;
		n = record_fds(&h->rec, slots);
		if (n > MAX_RECORD_FDS || !recv_fds(sock, fds, 1 + n))
			*why = "the handover's descriptors did not come";
	}
	if (*why != NULL) {
		free(h);
		free(s);
		return NULL;
	}
	s->rec = h->rec; /* the sender's descriptor numbers, replaced by this process's own: */
	memcpy(s->bases, h->bases, sizeof(s->bases));
	free(h);
	record_fds(&s->rec, slots);
	for (int i = 0; i < n; i++)
		*slots[i] = fds[1 + i];
	s->fd[0] = fds[0];
	s->fd[1] = -1;
	for (int side = 0; side < 2; side++)
		s->ep[side] = (struct endpoint){.door = d, .session = s, .side = side};
	return s;
}

static void session_link(struct door *d, struct session *s)
{
	s->next = d->sessions;
	d->sessions = s;
	d->nsessions++;
}

/* Watches `fd` (again): already watched is fine. */
static bool rewatch(int fd, struct endpoint *ep)
{
	return watch(fd, ep) == 0 || errno == EEXIST;
}

/* Ends session `s` here: the descriptors closed are this process's copies. */
static void session_drop(struct door *d, struct session *s)
{
	for (int side = 0; side < 2; side++)
		if (s->fd[side] >= 0)
			epoll_ctl(g_epoll, EPOLL_CTL_DEL, s->fd[side], NULL);
	session_close(d, s);
}

/* Takes door `d`'s stopped sessions back into this daemon's rte_vhost (the rollback): a session
 * that cannot be taken back is closed (QEMU sees it close: today's reconnect). */
static void door_resume(struct door *d)
{
	for (struct session *s = d->sessions, *next; s != NULL; s = next) {
		next = s->next;
		const char *why = s->fd[1] >= 0 ? NULL : attach(d, s, s->bases);
		if (why == NULL && !rewatch(s->fd[0], &s->ep[0]))
			why = "cannot watch the front-end";
		if (why != NULL) {
			RTE_LOG(ERR, USER1, "vio4wd: %s: a connection could not be taken back (%s); closing it\n",
				d->public_path, why);
			session_drop(d, s);
		}
	}
	if (d->listen_fd >= 0 && !rewatch(d->listen_fd, &d->listen_ep))
		RTE_LOG(ERR, USER1, "vio4wd: %s: cannot watch the listening socket again\n", d->public_path);
	d->state = DOOR_OPEN;
}

/* Step 3.1-3.2 for door `d`: every session's rings stopped (bases read), its sockets unwatched.
 * NULL, "busy" (an exchange in flight: try again) or why not; on failure the door runs on. */
static const char *door_stop(struct door *d)
{
	if (d->state != DOOR_OPEN)
		return "the relay's socket is not in service here";
	for (struct session *s = d->sessions; s != NULL; s = s->next) {
		if (s->rec.not_upgradable != NULL)
			return s->rec.not_upgradable;
		if (s->awaiting > 0 || s->in[0].have > 0 || s->in[1].have > 0)
			return "busy";
	}
	d->state = DOOR_STOPPED;
	for (struct session *s = d->sessions; s != NULL; s = s->next) {
		uint32_t n;
		const char *why = stop_rings(s, s->bases, &n);
		if (why != NULL) {
			door_resume(d);
			return why;
		}
	}
	for (struct session *s = d->sessions; s != NULL; s = s->next)
		epoll_ctl(g_epoll, EPOLL_CTL_DEL, s->fd[0], NULL);
	if (d->listen_fd >= 0)
		epoll_ctl(g_epoll, EPOLL_CTL_DEL, d->listen_fd, NULL);
	return NULL;
}

/* Step 3.4 and 3.6 for stopped door `d`: sends its sockets on `sock` and waits for the word.
 * On 'R' the door holds nothing any more (its socket file stays: the other daemon serves it);
 * else, or when `sock` ends, it takes its sessions back. No timeout: taking them back while the
 * other daemon may still start their rings would have both run them; whoever drives the handover
 * ends a daemon that hangs. */
static const char *door_send(struct door *d, int sock)
{
	if (d->state != DOOR_STOPPED)
		return "the relay's socket was not quiesced";
	struct door_handover h = {.magic = HANDOVER_MAGIC, .sessions = (uint32_t)d->nsessions,
				  .listening = d->listen_fd >= 0};
	bool sent = send_all(sock, &h, sizeof(h)) && (d->listen_fd < 0 || send_fd_list(sock, &d->listen_fd, 1));
	for (struct session *s = d->sessions; sent && s != NULL; s = s->next)
		sent = session_send(sock, s);
	if (!sent) {
		RTE_LOG(ERR, USER1, "vio4wd: %s: cannot hand its sockets over: %s\n", d->public_path, strerror(errno));
		shutdown(sock, SHUT_WR); /* the other daemon sees the end, and answers 'F' or ends */
	}
	/* sent or not, the other daemon may hold the descriptors: only its word or its end decides */
	uint8_t word = 0;
	bool taken = recv(sock, &word, 1, 0) == 1 && word == 'R';
	if (taken) {
		while (d->sessions != NULL)
			session_close(d, d->sessions);
		close_fd(&d->listen_fd); /* not unlinked: it is the other daemon's now */
		d->state = DOOR_HANDED;
	} else {
		door_resume(d);
	}
	return taken ? NULL : "the other daemon did not take the relay's sockets; they run here again";
}

/* Step 3.5 for door `d` (opened to adopt): receives what door_send() sends, replays each session
 * into this daemon's rte_vhost, serves the sockets and answers 'R'; or closes what came and
 * answers 'F'. NULL or why not. */
static const char *door_adopt(struct door *d, int sock)
{
	struct door_handover h;
	int listen_fd = -1;
	struct session *got = NULL;
	const char *why = NULL;
	if (!get_exact(sock, &h, sizeof(h), HANDOVER_WAIT_MS))
		why = "the handover's header did not come";
	else if (h.magic != HANDOVER_MAGIC)
		why = "the handover is of another format";
	else if (h.sessions > MAX_SESSIONS || h.listening > 1)
		why = "the handover's header is out of bounds";
	else if (h.listening && !recv_fds(sock, &listen_fd, 1))
		why = "the listening socket did not come";
	for (uint32_t i = 0; why == NULL && i < h.sessions; i++) {
		struct session *s = session_receive(d, sock, &why);
		if (s != NULL) {
			s->next = got;
			got = s;
		}
	}
	if (why == NULL && d->state != DOOR_ADOPTING)
		why = "the relay's socket was not opened to adopt";
	while (got != NULL) {
		struct session *s = got;
		got = s->next;
		session_link(d, s);
	}
	if (why == NULL && fault("VIO4WD_FAULT_ADOPT_REFUSE"))
		why = "refused (fault build)";
#ifdef VIO4WD_FAULTS
	/* the tests' new daemon killed half-way: this relay's sockets received, no answer given */
	const char *die = getenv("VIO4WD_FAULT_ADOPT_DIE");
	if (why == NULL && die != NULL && *die != '\0' && atoi(die) == (int)(d - g_doors))
		raise(SIGKILL);
#endif
	for (struct session *s = d->sessions; why == NULL && s != NULL; s = s->next) {
		why = attach(d, s, s->bases);
		if (why == NULL && watch(s->fd[0], &s->ep[0]) != 0)
			why = "cannot watch the front-end";
	}
	struct stat st;
	if (why == NULL && listen_fd >= 0) {
		if (watch(listen_fd, &d->listen_ep) != 0)
			why = "cannot watch the listening socket";
		else if (lstat(d->public_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
			d->dev = st.st_dev; /* removed at the end as a socket made here */
			d->ino = st.st_ino;
		}
	}
	if (why == NULL) {
		d->listen_fd = listen_fd;
		d->state = DOOR_OPEN;
	} else { /* the other daemon takes them back: only the copies here are closed */
		while (d->sessions != NULL)
			session_drop(d, d->sessions);
		if (listen_fd >= 0) {
			epoll_ctl(g_epoll, EPOLL_CTL_DEL, listen_fd, NULL);
			close(listen_fd);
		}
	}
	uint8_t word = why == NULL ? 'R' : 'F';
	if (send(sock, &word, 1, MSG_NOSIGNAL) != 1 && why == NULL) {
		/* the other daemon takes the relay back when the socket ends: none of it may run here */
		why = "cannot answer the other daemon";
		while (d->sessions != NULL)
			session_drop(d, d->sessions);
		if (d->listen_fd >= 0) {
			epoll_ctl(g_epoll, EPOLL_CTL_DEL, d->listen_fd, NULL);
			close_fd(&d->listen_fd);
		}
		d->state = DOOR_ADOPTING;
	}
	return why;
}

#ifdef VIO4WD_FAULTS
/* Writes the fault file's answer: what happened. */
static void fault_answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fault_answer(const char *fmt, ...)
{
	FILE *f = fopen(getenv("VIO4WD_FAULT_FILE"), "w");
	if (f == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

/*
 * The replay on its own, in the tests' fault build: VIO4WD_FAULT_FILE saying "replay" has every
 * session replayed into this daemon's rte_vhost; the file is then rewritten with what happened:
 * "replayed <sessions> <rings> <ms>" or "failed <why>".
 */
static void fault_replay(void)
{
	if (!fault_at("replay"))
		return;
	uint64_t t0 = rte_get_tsc_cycles();
	unsigned sessions = 0, rings = 0;
	const char *why = NULL;
	for (uint32_t id = 0; id < VIO4WD_MAX_RELAYS && why == NULL; id++) {
		struct door *d = &g_doors[id];
		for (struct session *t = d->used ? d->sessions : NULL, *next; t != NULL && why == NULL; t = next) {
			next = t->next;
			uint32_t n = 0;
			for (int tries = 0; tries < 100; tries++) {
				why = session_replay(d, t, &n);
				if (why == NULL || strcmp(why, "busy") != 0)
					break;
				usleep(10000);
				if (!session_read(d, t, 0) || !session_read(d, t, 1)) {
					why = "the session ended";
					break;
				}
			}
			if (why != NULL && t->fd[1] < 0)
				session_close(d, t);
			sessions++;
			rings += n;
		}
	}
	double ms = (double)(rte_get_tsc_cycles() - t0) * 1000.0 / (double)rte_get_tsc_hz();
	if (why != NULL)
		fault_answer("failed %s\n", why);
	else
		fault_answer("replayed %u %u %.1f\n", sessions, rings, ms);
}
#else
#define fault_replay() ((void)0)
#endif

static void wake(void)
{
	uint64_t one = 1;
	if (write(g_wake, &one, sizeof(one)) < 0 && errno != EAGAIN)
		RTE_LOG(WARNING, USER1, "vio4wd: front door: cannot wake its thread: %s\n", strerror(errno));
}

/* Relay `id`'s door if it is in use (not being closed), or NULL; the lock held. */
static struct door *door_in_use(uint32_t id)
{
	return id < VIO4WD_MAX_RELAYS && g_doors[id].used && !g_doors[id].closing ? &g_doors[id] : NULL;
}

/*
 * The handover's steps run on the door thread, between two rounds of events: a step run by
 * another thread would leave the door thread events it collected before the step (a reply the step
 * read itself, a session the step freed). The caller waits; one step at a time.
 */
enum request_kind { REQ_QUIESCE, REQ_RESUME, REQ_SEND, REQ_ADOPT };
struct door_request {
	enum request_kind kind;
	struct door *door;
	int sock;
	const char *why;
	bool done;
};
static struct door_request *g_request;
static pthread_cond_t g_request_done = PTHREAD_COND_INITIALIZER;

/* On the door thread, the lock held. */
static void serve_request(void)
{
	struct door_request *q = g_request;
	if (q == NULL)
		return;
	struct door *d = q->door;
	if (g_quit)
		q->why = "the front door is stopping";
	else if (q->kind == REQ_QUIESCE)
		q->why = door_stop(d);
	else if (q->kind == REQ_RESUME && d->state == DOOR_STOPPED)
		door_resume(d);
	else if (q->kind == REQ_SEND)
		q->why = door_send(d, q->sock);
	else if (q->kind == REQ_ADOPT)
		q->why = door_adopt(d, q->sock);
	q->done = true;
	g_request = NULL;
	pthread_cond_broadcast(&g_request_done);
}

/* Has the door thread run step `kind` for relay `id`'s door; NULL or why not. */
static const char *door_request(enum request_kind kind, uint32_t id, int sock)
{
	pthread_mutex_lock(&g_lock);
	while (g_request != NULL)
		pthread_cond_wait(&g_request_done, &g_lock);
	struct door *d = door_in_use(id);
	if (d == NULL || !g_running) {
		pthread_mutex_unlock(&g_lock);
		return "the relay has no socket";
	}
	struct door_request q = {.kind = kind, .door = d, .sock = sock};
	g_request = &q;
	wake();
	while (!q.done)
		pthread_cond_wait(&g_request_done, &g_lock);
	pthread_mutex_unlock(&g_lock);
	return q.why;
}

/* Event tags that are not an endpoint: the wake-up, and an event of a session closed earlier in
 * the same batch. */
static struct endpoint g_wake_ep, g_gone_ep;

static void *door_thread(void *arg)
{
	(void)arg;
	struct epoll_event evs[32];
	for (;;) {
		int n = epoll_wait(g_epoll, evs, 32, 100);
		pthread_mutex_lock(&g_lock);
		if (g_quit) {
			serve_request(); /* answered: the front door is stopping */
			pthread_mutex_unlock(&g_lock);
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			struct endpoint *ep = evs[i].data.ptr;
			if (ep == &g_wake_ep) {
				uint64_t v;
				if (read(g_wake, &v, sizeof(v)) < 0 && errno != EAGAIN)
					RTE_LOG(WARNING, USER1, "vio4wd: front door: wake-up: %s\n", strerror(errno));
				continue;
			}
			if (ep == &g_gone_ep)
				continue;
			struct door *d = ep->door;
			struct session *s = ep->session;
			if (s == NULL) {
				int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
				if (fd >= 0)
					session_open(d, fd);
			} else if (!session_read(d, s, ep->side)) {
				const void *e0 = &s->ep[0], *e1 = &s->ep[1];
				session_close(d, s);
				for (int j = i + 1; j < n; j++)
					if (evs[j].data.ptr == e0 || evs[j].data.ptr == e1)
						evs[j].data.ptr = &g_gone_ep;
			}
		}
		fault_replay();
		serve_request();
		uint64_t now = now_ms();
		bool closed = false;
		for (uint32_t id = 0; id < VIO4WD_MAX_RELAYS; id++) {
			struct door *d = &g_doors[id];
			if (!d->used)
				continue;
			if (d->closing) {
				door_free(d);
				closed = true;
			} else {
				door_dial(d, now);
			}
		}
		if (closed)
			pthread_cond_broadcast(&g_closed);
		pthread_mutex_unlock(&g_lock);
	}
}

/* ---- what vhost.c and eal.c call ---- */

int frontdoor_start(void)
{
	g_quit = false;
	for (uint32_t id = 0; id < VIO4WD_MAX_RELAYS; id++)
		g_doors[id] = (struct door){.listen_fd = -1};
	g_epoll = epoll_create1(EPOLL_CLOEXEC);
	g_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g_epoll < 0 || g_wake < 0 || watch(g_wake, &g_wake_ep) != 0)
		return set_error(errno, "cannot set up the vhost-user front door: %s", strerror(errno));
	int ret = rte_ctrl_thread_create(&g_thread, "vio4wd-door", NULL, door_thread, NULL);
	if (ret != 0)
		return set_error(-ret, "cannot start the vhost-user front door's thread: %s", strerror(-ret));
	g_running = true;
	return 0;
}

static int g_handover_fd = -1; /* the new daemon's handover socket (frontdoor_handover_listen) */
static char g_handover_path[108];

void frontdoor_stop(void)
{
	if (g_handover_fd >= 0) {
		close_fd(&g_handover_fd);
		unlink(g_handover_path);
	}
	if (g_running) {
		pthread_mutex_lock(&g_lock);
		g_quit = true;
		pthread_mutex_unlock(&g_lock);
		wake();
		pthread_join(g_thread, NULL);
		pthread_mutex_lock(&g_lock);
		g_running = false;
		serve_request(); /* one asked between the thread's last round and now: answered (g_quit) */
		pthread_mutex_unlock(&g_lock);
		for (uint32_t id = 0; id < VIO4WD_MAX_RELAYS; id++)
			if (g_doors[id].used)
				door_free(&g_doors[id]);
	}
	close_fd(&g_epoll);
	close_fd(&g_wake);
}

void frontdoor_private_path(uint32_t id, char *out, size_t size)
{
	snprintf(out, size, "%s/vhost%u.sock", rte_eal_get_runtime_dir(), id);
}

int frontdoor_open(uint32_t id, const char *public_path, bool client, bool adopt, uid_t uid, gid_t gid)
{
	struct door d = {.used = true, .client = client, .listen_fd = -1, .state = adopt ? DOOR_ADOPTING : DOOR_OPEN};
	snprintf(d.public_path, sizeof(d.public_path), "%s", public_path);
	frontdoor_private_path(id, d.private_path, sizeof(d.private_path));
	if (!client && !adopt) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", public_path);
		struct stat st;
		d.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (d.listen_fd < 0 || bind(d.listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    listen(d.listen_fd, MAX_SESSIONS) != 0) {
			int err = errno;
			if (d.listen_fd >= 0)
				close(d.listen_fd);
			return set_error(err, "cannot listen on vhost-user socket '%s' (is the directory there and "
					 "writable?): %s", public_path, strerror(err));
		}
		/* lstat, lchown, fchmodat: never through a link that replaced the socket */
		int ret = 0;
		if (lstat(public_path, &st) != 0 || !S_ISSOCK(st.st_mode))
			ret = set_error(EEXIST, "'%s' was replaced while being created; not using it", public_path);
		else if ((uid != (uid_t)-1 || gid != (gid_t)-1) && lchown(public_path, uid, gid) != 0)
			ret = set_error(errno, "cannot chown socket '%s' to %d:%d: %s", public_path, (int)uid, (int)gid,
					strerror(errno));
		if (ret != 0) {
			close(d.listen_fd);
			struct stat now;
			if (lstat(public_path, &now) == 0 && S_ISSOCK(now.st_mode) && now.st_ino == st.st_ino &&
			    now.st_dev == st.st_dev)
				unlink(public_path);
			return ret;
		}
		fchmodat(AT_FDCWD, public_path, 0660, AT_SYMLINK_NOFOLLOW);
		d.dev = st.st_dev;
		d.ino = st.st_ino;
	}
	pthread_mutex_lock(&g_lock);
	struct door *slot = &g_doors[id];
	*slot = d;
	slot->listen_ep = (struct endpoint){.door = slot};
	int ret = 0;
	if (slot->listen_fd >= 0 && watch(slot->listen_fd, &slot->listen_ep) != 0) {
		ret = set_error(errno, "cannot watch '%s': %s", public_path, strerror(errno));
		slot->closing = true;
	}
	pthread_mutex_unlock(&g_lock);
	wake(); /* client mode: dial now */
	return ret;
}

void frontdoor_close(uint32_t id)
{
	pthread_mutex_lock(&g_lock);
	struct door *d = &g_doors[id];
	if (!d->used) {
		pthread_mutex_unlock(&g_lock);
		return;
	}
	if (!g_running) {
		door_free(d);
		pthread_mutex_unlock(&g_lock);
		return;
	}
	d->closing = true;
	wake();
	while (d->used)
		pthread_cond_wait(&g_closed, &g_lock);
	pthread_mutex_unlock(&g_lock);
}

/* ---- the handover's steps (docs/hot-upgrade.md), as vhost.c's API calls them ---- */

const char *frontdoor_check(uint32_t id)
{
	pthread_mutex_lock(&g_lock);
	struct door *d = door_in_use(id);
	const char *why = d != NULL && d->state != DOOR_OPEN ? "its socket is being handed over" : NULL;
	/* no socket (d NULL): nothing to refuse */
	for (struct session *s = d != NULL ? d->sessions : NULL; why == NULL && s != NULL; s = s->next)
		why = s->rec.not_upgradable;
	pthread_mutex_unlock(&g_lock);
	return why;
}

const char *frontdoor_quiesce(uint32_t id)
{
	return door_request(REQ_QUIESCE, id, -1);
}

void frontdoor_resume(uint32_t id)
{
	door_request(REQ_RESUME, id, -1);
}

const char *frontdoor_send(uint32_t id, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (sock >= 0)
			close(sock);
		frontdoor_resume(id);
		return "cannot reach the other daemon's handover socket; the relay runs here again";
	}
	const char *why = door_request(REQ_SEND, id, sock);
	close(sock);
	return why;
}

int frontdoor_handover_listen(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return set_error(ENAMETOOLONG, "handover socket path '%s' is too long", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(path);
	mode_t old = umask(0077); /* root only from the start: whoever connects hands us descriptors */
	int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 1) == 0;
	int err = errno;
	umask(old);
	if (!ok) {
		if (fd >= 0)
			close(fd);
		return set_error(err, "cannot listen on handover socket '%s': %s", path, strerror(err));
	}
	close_fd(&g_handover_fd);
	g_handover_fd = fd;
	snprintf(g_handover_path, sizeof(g_handover_path), "%s", path);
	return 0;
}

const char *frontdoor_adopt(uint32_t id, uint32_t timeout_ms)
{
	struct pollfd p = {.fd = g_handover_fd, .events = POLLIN};
	if (g_handover_fd < 0)
		return "no handover socket";
	if (poll(&p, 1, (int)timeout_ms) != 1)
		return "the other daemon did not connect";
	int sock = accept4(g_handover_fd, NULL, NULL, SOCK_CLOEXEC);
	if (sock < 0)
		return "cannot accept the other daemon's connection";
	const char *why = door_request(REQ_ADOPT, id, sock);
	uint8_t no = 'F';
	if (strcmp(why != NULL ? why : "", "the relay has no socket") == 0 && send(sock, &no, 1, MSG_NOSIGNAL) != 1)
		why = "the relay has no socket (and the other daemon is gone)";
	close(sock);
	return why;
}
