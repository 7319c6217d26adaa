/* Timer slack 1 ns, once per thread, as QEMU's init_clocks(): see timerslack.h. */
#define _GNU_SOURCE
#include "timerslack.h"

#include <errno.h>
#include <glib.h>
#include <sys/prctl.h>

static __thread int slack_decided; /* cshim set this thread's slack, or was told to leave it */
static __thread int slack_syscalls;

void cshim_timerslack_init(void)
{
	if (G_LIKELY(slack_decided))
		return;
	/* Decided even if prctl fails (it cannot for a value > 0 on Linux): a failure must
	 * not cost a syscall on every wait. */
	slack_decided = 1;
	slack_syscalls++;
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
}

int cshim_timerslack_set(unsigned long ns)
{
	if (prctl(PR_SET_TIMERSLACK, ns, 0UL, 0UL, 0UL) < 0)
		return -errno;
	slack_decided = 1;
	return 0;
}

void cshim_timerslack_forget(void) { slack_decided = 0; }

long cshim_timerslack_get(void)
{
	int r = prctl(PR_GET_TIMERSLACK, 0UL, 0UL, 0UL, 0UL);
	return r < 0 ? -errno : r;
}

int cshim_timerslack_syscalls(void) { return slack_syscalls; }
