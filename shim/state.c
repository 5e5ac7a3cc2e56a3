/*
 * What every file of the shim uses and that calls nothing of the shim's: the shared memory, the
 * process-wide settings vio4wd_init() sets, and the error of the last failed call. The error is
 * kept per thread: an API call's error is read by the thread that made it (the daemon's JS
 * thread), and a vhost callback's failure on its own thread cannot overwrite it in between.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

struct vio4wd_shared g_shared __attribute__((aligned(64)));
uint32_t g_mbuf_data_size;
bool g_vf_tso;

static __thread char g_error[512];
static __thread int g_error_stage;

static int vset_error(int stage, int err, const char *fmt, va_list ap)
{
	vsnprintf(g_error, sizeof(g_error), fmt, ap);
	g_error_stage = stage;
	return err > 0 ? -err : (err == 0 ? -EINVAL : err);
}

int set_error(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int ret = vset_error(VIO4WD_STAGE_OTHER, err, fmt, ap);
	va_end(ap);
	return ret;
}

int set_stage_error(int stage, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int ret = vset_error(stage, err, fmt, ap);
	va_end(ap);
	return ret;
}

API const char *vio4wd_last_error(void) { return g_error; }
API int vio4wd_last_error_stage(void) { return g_error_stage; }
