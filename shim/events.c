/* A bounded queue of events: written by DPDK's vhost thread and the bond supervisor, read by the
 * daemon. A full queue drops the new event and counts it (vio4wd_shared()->event_overflows); the
 * daemon then reconciles its relay table from vio4wd_relay_report(). */
#include <pthread.h>
#include <string.h>

#include "internal.h"

#define EVENT_CAP 1024

static struct vio4wd_event g_events[EVENT_CAP];
static unsigned g_head, g_tail; /* head: next to read; tail: next to write */
static unsigned g_cap = EVENT_CAP;
static pthread_mutex_t g_ev_lock = PTHREAD_MUTEX_INITIALIZER;

uint32_t events_default_cap(void)
{
	return EVENT_CAP;
}

void events_reset(uint32_t cap)
{
	pthread_mutex_lock(&g_ev_lock);
	g_head = g_tail = 0;
	g_cap = cap > EVENT_CAP ? EVENT_CAP : cap;
	__atomic_store_n(&g_shared.event_overflows, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g_ev_lock);
}

void push_event(uint32_t type, uint32_t relay, int32_t value, uint32_t detail, int32_t numa)
{
	pthread_mutex_lock(&g_ev_lock);
	if (g_tail - g_head >= g_cap) {
		__atomic_fetch_add(&g_shared.event_overflows, 1, __ATOMIC_RELEASE);
	} else {
		g_events[g_tail % EVENT_CAP] = (struct vio4wd_event){
			.type = type, .relay = relay, .value = value, .detail = detail, .numa_node = numa};
		g_tail++;
	}
	pthread_mutex_unlock(&g_ev_lock);
}

API int vio4wd_next_event(struct vio4wd_event *ev)
{
	int got = 0;
	pthread_mutex_lock(&g_ev_lock);
	if (g_head != g_tail) {
		*ev = g_events[g_head % EVENT_CAP];
		g_head++;
		got = 1;
	}
	pthread_mutex_unlock(&g_ev_lock);
	return got;
}
