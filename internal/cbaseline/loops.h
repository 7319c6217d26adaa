#ifndef GLIBAIO_CBASELINE_LOOPS_H
#define GLIBAIO_CBASELINE_LOOPS_H
#include <glib.h>

/* Whole C loops that the benchmarks run end to end: GLib's own fd sources, timer
 * lateness, a thread ping-pong, GMainLoop and bare iterations. */

/* n g_unix_fd_add sources on c, one per fd, each draining its eventfd. */
void cb_unix_fd_sources_add(GMainContext *c, const int *fds, int n);
void cb_unix_fd_sources_remove(GMainContext *c);

/* Timer lateness: rounds re-arms of a period_ns timer under g_main_loop_run, lateness
 * of each expiry (ns) written to out. mode 0: a GSource with g_source_set_ready_time;
 * mode 1: a bare timerfd read in a loop (the floor). Returns 0 or -1. */
int cb_timer_lateness(GMainContext *c, int mode, gint64 period_ns, int rounds, gint64 *out);

/* Two threads ping-pong through two eventfds with epoll_wait, rounds round trips.
 * Returns the elapsed ns. */
gint64 cb_pingpong(int rounds);

/* Runs g_main_loop_run on c until cb_main_loop_quit. */
void cb_main_loop_run(GMainContext *c);
void cb_main_loop_quit(void);

/* A bare GLib iteration loop: n non-blocking iterations of c. Returns elapsed ns. */
gint64 cb_iterate(GMainContext *c, gint64 n);
/* n rounds of: mark a reactor-shaped C source ready, one iteration (it dispatches) */
gint64 cb_ready_iterate(GMainContext *c, gint64 n);
#endif
