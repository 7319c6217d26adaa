/* Adaptive busy-waiting before a GLib poll blocks: see spin.h. */
#define _GNU_SOURCE
#include "spin.h"
#include "clock.h"

#include <errno.h>

#define SPIN_SLOTS 8 /* reactors one poll spins on; more are polled, not spun on */

/* The calling thread's state. The words noted are referenced (cshim_reactor_words_ref):
 * a reactor finalized on another thread between its prepare and this poll, which only
 * misuse can do, leaves them valid until they are forgotten. */
typedef struct {
	cshim_reactor_words *w[SPIN_SLOTS];
	int n;         /* words noted and referenced: only while the budget is not 0 */
	int noted;     /* reactors noted since the last poll or check, referenced or not */
	gint64 budget; /* ns; 0: no spin */
	guint64 hits;  /* spins that found work */
} spin_state;

static __thread spin_state spin;

/* The longest spin in ns: GLIBAIO_POLL_MAX_NS from the environment, read once (0 to
 * 1000000; unset: 0, no spin, as QEMU's main loop), or what cshim_spin_set_max set. */
static gint64 spin_max = -1;

gint64 cshim_spin_max_ns(void)
{
	gint64 m = __atomic_load_n(&spin_max, __ATOMIC_RELAXED);
	if (m < 0) {
		const char *e = g_getenv("GLIBAIO_POLL_MAX_NS");
		m = 0;
		if (e && *e) {
			gint64 v = g_ascii_strtoll(e, NULL, 10);
			m = CLAMP(v, 0, 1000000);
		}
		gint64 unset = -1;
		if (!__atomic_compare_exchange_n(&spin_max, &unset, m, FALSE, __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED))
			m = unset; /* cshim_spin_set_max came first */
	}
	return m;
}

void cshim_spin_set_max(gint64 ns) { __atomic_store_n(&spin_max, CLAMP(ns, 0, 1000000), __ATOMIC_RELAXED); }

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static void forget(void)
{
	for (int i = 0; i < spin.n; i++)
		cshim_reactor_words_free(spin.w[i]);
	spin.n = 0;
}

void cshim_spin_note(cshim_reactor_words *w)
{
	spin.noted++;
	if (spin.budget > 0 && spin.n < SPIN_SLOTS) {
		cshim_reactor_words_ref(w);
		spin.w[spin.n++] = w;
	}
}

void cshim_spin_done(void)
{
	spin.noted = 0;
	if (spin.n)
		forget();
}

/* Whether a noted reactor has work queued or was notified. */
static int any_work(void)
{
	for (int i = 0; i < spin.n; i++)
		if (__atomic_load_n(&spin.w[i]->ready, __ATOMIC_RELAXED) ||
		    __atomic_load_n(&spin.w[i]->kicked, __ATOMIC_RELAXED))
			return 1;
	return 0;
}

typedef int (*poll_fn)(GPollFD *fds, guint n, gint64 timeout_ns);

/* How often a spin looks at the fds: every other fd of the context (its own, GLib's
 * wakeup, a toolkit's) waits at most this long behind a spin. */
#define SPIN_FD_CHECK_NS 4000

/* Spins from start until work shows up in a noted reactor or an fd is ready, or until
 * the budget, the timeout (ns, < 0 none) or a noted reactor's timer deadline. Returns
 * the fds' poll result when one was ready (their revents are set), 0 when work showed
 * up in a reactor (the fds are not polled yet), and -1 when nothing did: the caller
 * waits for the rest of the timeout.
 *
 * Meanwhile bit 0 of each reactor's notify_me is clear, so Notify writes no eventfd. It
 * is set again before the end, with a full barrier, and what a Notify published
 * meanwhile is read after it: either the Notify saw bit 0 and wrote the eventfd, or
 * this sees its kicked (the Dekker pair of prepare and Notify). The fds are polled
 * without waiting at the start (what is ready already needs no spin) and every
 * SPIN_FD_CHECK_NS. */
static int spin_for_work(GPollFD *fds, guint n, gint64 start, gint64 timeout_ns, poll_fn poll)
{
	gint64 end = start + spin.budget;
	if (timeout_ns >= 0 && start + timeout_ns < end)
		end = start + timeout_ns;
	for (int i = 0; i < spin.n; i++) {
		gint64 d = __atomic_load_n(&spin.w[i]->deadline, __ATOMIC_SEQ_CST);
		if (d >= 0 && d < end)
			end = d;
	}
	if (end <= start)
		return -1;
	int ret = poll(fds, n, 0);
	if (ret != 0)
		return ret; /* ready fds, or an error to report */
	for (int i = 0; i < spin.n; i++)
		__atomic_fetch_and(&spin.w[i]->waiting, ~1u, __ATOMIC_SEQ_CST);
	int found = 0;
	gint64 fdcheck = start + SPIN_FD_CHECK_NS;
	for (unsigned k = 1; !(found = any_work()); k++) {
		if (!(k & 15)) {
			gint64 now = cshim_now_ns();
			if (now >= end)
				break;
			if (now >= fdcheck) {
				if ((ret = poll(fds, n, 0)) != 0)
					break;
				fdcheck = now + SPIN_FD_CHECK_NS;
			}
		}
		cpu_relax();
	}
	for (int i = 0; i < spin.n; i++)
		__atomic_fetch_or(&spin.w[i]->waiting, 1, __ATOMIC_SEQ_CST);
	if (ret != 0)
		return ret;
	if (!found)
		for (int i = 0; i < spin.n && !found; i++)
			found = __atomic_load_n(&spin.w[i]->ready, __ATOMIC_SEQ_CST) ||
				__atomic_load_n(&spin.w[i]->kicked, __ATOMIC_SEQ_CST);
	return found ? 0 : -1;
}

/* QEMU's adjust_polling_time, per thread: block_ns is how long the poll took, spin
 * included. A wait longer than the maximum halves the budget (QEMU's poll-shrink 2), to 0
 * below the first step: one long wait in a flood, when a producer was descheduled, does
 * not end spinning, and an idle loop still stops spinning after a few waits. */
static void adapt(gint64 block_ns)
{
	gint64 max = cshim_spin_max_ns();
	if (block_ns <= spin.budget)
		return; /* the sweet spot */
	if (block_ns > max)
		spin.budget = spin.budget / 2 >= CSHIM_SPIN_INITIAL_NS ? spin.budget / 2 : 0;
	else if (spin.budget < max)
		spin.budget = MIN(spin.budget ? spin.budget * 2 : CSHIM_SPIN_INITIAL_NS, max);
}

/* The spin, then the poll: the poll of any iteration in which a reactor's prepare noted
 * itself. */
static int spin_wait(GPollFD *fds, guint n, gint64 timeout_ns, poll_fn poll)
{
	int noted = spin.noted;
	spin.noted = 0;
	if (timeout_ns == 0 || noted == 0 || cshim_spin_max_ns() == 0) {
		if (cshim_spin_max_ns() == 0)
			spin.budget = 0; /* turned off (tests): prepare stops noting words */
		cshim_spin_done();
		return poll(fds, n, timeout_ns);
	}
	gint64 start = cshim_now_ns();
	int ret = spin.n > 0 ? spin_for_work(fds, n, start, timeout_ns, poll) : -1;
	if (ret == 0) {
		spin.hits++;
		ret = poll(fds, n, 0); /* the fds' events of this iteration, without waiting */
	} else if (ret < 0) {
		gint64 left = timeout_ns;
		if (left > 0 && spin.n > 0) {
			left -= cshim_now_ns() - start;
			if (left < 0)
				left = 0;
		}
		ret = poll(fds, n, left);
	}
	forget();
	adapt(cshim_now_ns() - start);
	return ret;
}

/* GLib's g_poll: one poll(2), which an interrupting signal ends (GLib then iterates
 * again), and a ms timeout: what is left of it is rounded up, so a GLib timeout never
 * fires early. */
static int gpoll_ns(GPollFD *fds, guint n, gint64 timeout_ns)
{
	gint ms = timeout_ns < 0 ? -1 : (gint)MIN((timeout_ns + 999999) / 1000000, G_MAXINT);
	int ret = g_poll(fds, n, ms);
	return ret < 0 ? -errno : ret;
}

gint cshim_spin_poll(GPollFD *ufds, guint nfds, gint timeout_ms)
{
	int ret = spin_wait(ufds, nfds, timeout_ms < 0 ? -1 : (gint64)timeout_ms * 1000000LL, gpoll_ns);
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return ret;
}

int cshim_spin_ppoll(GPollFD *fds, guint n, gint64 timeout_ns)
{
	return spin_wait(fds, n, timeout_ns, cshim_ppoll);
}

/* The GMainContexts whose poll function cshim_spin_install set, with the reactors
 * attached to each. */
typedef struct {
	GMainContext *c;
	int n;
} spin_ctx;

static GMutex ctx_lock;
static spin_ctx *ctxs;
static int nctxs, ctxcap;

static spin_ctx *ctx_find(GMainContext *c)
{
	for (int i = 0; i < nctxs; i++)
		if (ctxs[i].c == c)
			return &ctxs[i];
	return NULL;
}

static void ctx_remove(spin_ctx *e) { *e = ctxs[--nctxs]; }

int cshim_spin_install(GMainContext *c)
{
	if (cshim_spin_max_ns() == 0)
		return 0;
	g_mutex_lock(&ctx_lock);
	GPollFunc f = g_main_context_get_poll_func(c);
	spin_ctx *e = ctx_find(c);
	int ok = 1;
	if (f == g_poll) {
		/* An entry left for this address belongs to a context that died with its
		 * reactors attached (cshim_spin_uninstall was never called for them). */
		if (!e) {
			if (nctxs == ctxcap) {
				ctxcap = ctxcap ? ctxcap * 2 : 4;
				ctxs = g_renew(spin_ctx, ctxs, ctxcap);
			}
			e = &ctxs[nctxs++];
			e->c = c;
		}
		e->n = 0;
		g_main_context_set_poll_func(c, cshim_spin_poll);
	} else if (f != cshim_spin_poll) {
		ok = 0; /* someone else's: leave it */
		if (e)
			ctx_remove(e);
	}
	if (ok)
		e->n++;
	g_mutex_unlock(&ctx_lock);
	return ok;
}

void cshim_spin_uninstall(GMainContext *c)
{
	g_mutex_lock(&ctx_lock);
	spin_ctx *e = ctx_find(c);
	if (e && --e->n == 0) {
		if (g_main_context_get_poll_func(c) == cshim_spin_poll)
			g_main_context_set_poll_func(c, g_poll);
		ctx_remove(e);
	}
	g_mutex_unlock(&ctx_lock);
}

gint64 cshim_spin_budget(void) { return spin.budget; }
void cshim_spin_set_budget(gint64 ns) { spin.budget = ns < 0 ? 0 : MIN(ns, cshim_spin_max_ns()); }
guint64 cshim_spin_hits(void) { return spin.hits; }

int cshim_spin_installed(GMainContext *c) { return g_main_context_get_poll_func(c) == cshim_spin_poll; }

static gint foreign_poll(GPollFD *ufds, guint nfds, gint timeout_ms) { return g_poll(ufds, nfds, timeout_ms); }

void cshim_spin_set_foreign_poll(GMainContext *c) { g_main_context_set_poll_func(c, foreign_poll); }
