/* Adaptive busy-waiting before a GLib poll blocks, as QEMU's adaptive polling does before
 * aio_poll blocks (poll-max-ns): spin.c.
 *
 * Why. A Go program's loop thread that blocks in poll inside a cgo call (an iteration,
 * g_main_loop_run, gtk_main) is a thread in a system call to the Go scheduler: after
 * about 20 us the runtime hands its P to other goroutines, and when the poll returns the
 * dispatch that crosses back into Go waits for a P, behind the goroutines that took it.
 * When producers queue work faster than that (a oneshot flood from a few goroutines on a
 * 2-core machine), every wait costs such a hand-off, and a run goes fast or slow
 * depending on whether the loop happened to block.
 *
 * What. A reactor's prepare that is about to let its loop wait (nothing queued) notes
 * its words on the calling thread (cshim_spin_note). The poll that follows, through the
 * GLib poll function cshim_spin_poll (installed on a GMainContext by
 * cshim_spin_install) or the glibaio loop driver (cshim_spin_ppoll), first spins on
 * those reactors' ready words, in C memory, for up to the thread's spin budget, with the
 * reactors' notify_me bit 0 clear so that producers write no eventfd meanwhile. Work
 * that shows up ends the spin: the poll then only collects fd events (timeout 0). If
 * none does, bit 0 is set again (a full barrier; a Notify that came during the spin is
 * seen in kicked) and the poll blocks for the rest of its timeout.
 *
 * The budget adapts per thread as QEMU's adjust_polling_time does for a handler: it
 * starts at 0 (no spin); a blocking poll that ended within the maximum (below) grows it
 * (to 4 us, then doubling up to the maximum); one that blocked longer than the maximum
 * halves it, to 0 below 4 us. An idle loop thus stops spinning after a few waits (at
 * most 32 + 16 + 8 + 4 us in all), and a loop spins only while its waits have lately
 * been shorter than the maximum. The spin also ends at the GLib timeout and at the
 * reactors' timer deadlines.
 *
 * A poll with timeout 0 (a non-blocking iteration, or one with work already queued)
 * never spins and costs one function call more than g_poll.
 */
#ifndef GLIBAIO_CSHIM_SPIN_H
#define GLIBAIO_CSHIM_SPIN_H

#include "reactor.h"

/* The longest spin, in ns: the environment variable GLIBAIO_POLL_MAX_NS, read once (0
 * to 1000000). Unset, it is 0 and nothing spins: the spinning poll function is not
 * installed at all, and GLib's poll is left as it was. QEMU's own default is 32 us for
 * an IOThread and 0 for its GLib-driven main loop; measured on the oneshot flood here,
 * a spin brought no gain that the machine's noise did not swamp (see README). A spin
 * longer than about 20 us lets the Go runtime hand the loop's P away anyway. */
#define CSHIM_SPIN_SUGGESTED_MAX_NS 32000
gint64 cshim_spin_max_ns(void);
/* Tests: sets the longest spin, as GLIBAIO_POLL_MAX_NS would. */
void cshim_spin_set_max(gint64 ns);
/* where a budget grows from 0 (QEMU's first polling step) */
#define CSHIM_SPIN_INITIAL_NS 4000

/* Notes a reactor whose prepare lets the loop wait. Loop thread; the words are
 * referenced until the next cshim_spin_done or poll on this thread. */
void cshim_spin_note(cshim_reactor_words *w);
/* Forgets what cshim_spin_note noted on this thread (a reactor's check: the poll of its
 * iteration is over, whichever function made it). */
void cshim_spin_done(void);

/* The GLib poll function (GPollFunc): spin, then poll(2) the rest of the timeout (ms),
 * retrying EINTR with the time that remains. */
gint cshim_spin_poll(GPollFD *ufds, guint nfds, gint timeout_ms);
/* The same for the glibaio loop driver: a ns timeout (< 0 none), cshim_ppoll's result. */
int cshim_spin_ppoll(GPollFD *fds, guint n, gint64 timeout_ns);

/* Makes cshim_spin_poll c's poll function if spinning is on (cshim_spin_max_ns) and c
 * still has GLib's own (g_poll), and counts
 * the reactor attached: returns 1 if cshim_spin_poll is c's poll function now, 0 if c
 * has another one, which is left alone, or spinning is off. */
int cshim_spin_install(GMainContext *c);
/* Uncounts a reactor detached from c, which must be alive; the last one puts g_poll
 * back if cshim_spin_poll is still c's poll function. */
void cshim_spin_uninstall(GMainContext *c);

/* Tests: whether c's poll function is cshim_spin_poll; give c a poll function of its
 * own, as a program may (it calls g_poll). */
int cshim_spin_installed(GMainContext *c);
void cshim_spin_set_foreign_poll(GMainContext *c);

/* The calling thread's spin budget in ns, and how many spins found work (tests). */
gint64 cshim_spin_budget(void);
void cshim_spin_set_budget(gint64 ns);
guint64 cshim_spin_hits(void);

#endif
