/* A bounded queue of vhost events: written by DPDK's vhost thread, read by the daemon. */
#include <pthread.h>
#include <string.h>

#include "internal.h"

#define EVENT_CAP 1024

static struct vio4wd_event g_events[EVENT_CAP];
static unsigned g_head, g_tail; /* head: next to read; tail: next to write */
static pthread_mutex_t g_ev_lock = PTHREAD_MUTEX_INITIALIZER;

void push_event(uint32_t type, uint32_t relay, int32_t value, uint32_t enabled, uint32_t numa)
{
	pthread_mutex_lock(&g_ev_lock);
	if (g_tail - g_head == EVENT_CAP)
		g_head++; /* full: the oldest event is dropped; state is re-read by the daemon anyway */
	g_events[g_tail % EVENT_CAP] = (struct vio4wd_event){
		.type = type, .relay = relay, .value = value, .enabled = enabled, .numa_node = numa};
	g_tail++;
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
