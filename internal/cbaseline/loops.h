#ifndef GLIBAIO_CBASELINE_LOOPS_H
#define GLIBAIO_CBASELINE_LOOPS_H
#include <glib.h>

/* Whole C loops that the benchmarks run end to end: GLib's own fd sources, timer
 * lateness, a thread ping-pong, GMainLoop and bare iterations. */

/* n g_unix_fd_add sources on c, one per fd, each draining its eventfd. */
void cb_unix_fd_sources_add(GMainContext *c, const int *fds, int n);
void cb_unix_fd_sources_remove(GMainContext *c);

/* Timer lateness: rounds re-arms of a period_ns timer, lateness of each expiry (ns)
 * written to out. mode 0: a GSource with g_source_set_ready_time under g_main_loop_run;
 * mode 1: a bare timerfd read in a loop; mode 2: a C GSource polling a timerfd under
 * g_main_loop_run, shaped like glibaio's reactor source (can_recurse, an idle kick
 * eventfd beside the timerfd): the floor of a GLib-driven timer; mode 3: a bare ppoll timeout in a loop (the floor of
 * waits that end on a ppoll timeout). Modes 1 and 3 run on the calling thread, with
 * its timer slack. Returns 0 or -1. */
int cb_timer_lateness(GMainContext *c, int mode, gint64 period_ns, int rounds, gint64 *out);

/* One ppoll on fd until deadline_ns (CLOCK_MONOTONIC): the relative timeout is computed
 * here, so the caller's crossing into C is not added to it; EINTR waits out the rest.
 * Returns 0 or -errno. */
int cb_ppoll_until(int fd, gint64 deadline_ns);

/* Two threads ping-pong through two eventfds with epoll_wait, rounds round trips.
 * Returns the elapsed ns. */
gint64 cb_pingpong(int rounds);

/* The same ping-pong the GLib way (flood.c): each thread runs g_main_context_iteration
 * on its own context, with a g_unix_fd_add-style source on its eventfd. Returns the
 * elapsed ns, or -1. */
gint64 cb_glib_pingpong(int rounds);

/* The floor of the oneshot flood (flood.c): producers threads push n callbacks each onto
 * a lock-free list and wake the loop with QEMU's notify_me handshake on an eventfd; the
 * calling thread iterates c (blocking) until a reactor-shaped C source has run them all.
 * Returns the elapsed ns, or -1. */
gint64 cb_oneshot_flood(GMainContext *c, int producers, int n);

/* Runs g_main_loop_run on c until cb_main_loop_quit. */
void cb_main_loop_run(GMainContext *c);
void cb_main_loop_quit(void);

/* A bare GLib iteration loop: n non-blocking iterations of c. Returns elapsed ns. */
gint64 cb_iterate(GMainContext *c, gint64 n);
/* n rounds of: mark a reactor-shaped C source ready, one iteration (it dispatches) */
gint64 cb_ready_iterate(GMainContext *c, gint64 n);
#endif
