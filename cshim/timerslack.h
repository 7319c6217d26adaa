/* Timer slack of the threads that wait for a context.
 *
 * QEMU's init_clocks() calls prctl(PR_SET_TIMERSLACK, 1) so that a ppoll timeout ends
 * when it was asked to, not up to 50 µs later (the kernel's default slack, which it
 * adds to every hrtimer-based sleep of the thread: ppoll, epoll_wait, nanosleep;
 * timerfd expiries get none). The slack belongs to one thread, and a thread it creates
 * inherits it (prctl(2)). QEMU sets it once, early on its main thread, and never
 * restores it; glibaio does the same on each thread that waits for a context, the first
 * time it waits: the loop driver (cshim_loop_run) and the reactor's blocking wait
 * (cshim_reactor_wait) call cshim_timerslack_init, and so does a Go thread that starts
 * to drive a loop (InitTimerSlack). It makes the syscall once per thread and is a
 * thread-local test afterwards. */
#ifndef GLIBAIO_CSHIM_TIMERSLACK_H
#define GLIBAIO_CSHIM_TIMERSLACK_H

/* Sets the calling thread's timer slack to 1 ns unless its slack is already decided:
 * set by an earlier call, or chosen with cshim_timerslack_set. Costs one thread-local
 * load once decided. */
void cshim_timerslack_init(void);

/* Sets the calling thread's timer slack to ns (0: the thread's default, as prctl) and
 * marks it decided, so cshim_timerslack_init leaves it alone. Returns 0 or -errno. */
int cshim_timerslack_set(unsigned long ns);

/* Marks the calling thread's slack undecided, without a syscall: the next
 * cshim_timerslack_init sets 1 ns again. */
void cshim_timerslack_forget(void);

/* The calling thread's current timer slack (PR_GET_TIMERSLACK), or -errno. */
long cshim_timerslack_get(void);

/* How many times cshim_timerslack_init made the syscall on the calling thread. */
int cshim_timerslack_syscalls(void);

#endif
