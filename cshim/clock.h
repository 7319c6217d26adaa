/* The one monotonic clock of glibaio's C code: CLOCK_MONOTONIC in ns, the clock of its
 * timerfds, of Go's runtime.nanotime and of QEMU's host and realtime timer clocks here.
 * Header-only, so the benchmark baselines (internal/cbaseline) share it too. */
#ifndef GLIBAIO_CSHIM_CLOCK_H
#define GLIBAIO_CSHIM_CLOCK_H

#include <glib.h>
#include <time.h>

static inline gint64 cshim_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (gint64)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#endif
