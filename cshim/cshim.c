#define _GNU_SOURCE
#include "cshim.h"
#include "clock.h"
#include "spin.h"
#include "timerslack.h"
#include "_cgo_export.h"

#include <errno.h>
#include <poll.h>
#include <time.h>

/* GLib hands its GPollFD array to poll(2) on Linux; so do we. */
G_STATIC_ASSERT(sizeof(GPollFD) == sizeof(struct pollfd));
G_STATIC_ASSERT(G_IO_IN == POLLIN && G_IO_OUT == POLLOUT && G_IO_ERR == POLLERR &&
		G_IO_HUP == POLLHUP && G_IO_NVAL == POLLNVAL && G_IO_PRI == POLLPRI);

/* Per-thread driver state. depth counts the cshim driver calls active on this thread:
 * a trampoline that recovers a panic stores it for re-raise only when depth > 0 (a Go
 * call is waiting above GLib's frames); otherwise the Go panic handler gets it.
 * panic holds that stored panic's handle until the innermost driver call returns. */
static __thread int cshim_depth;
static __thread uintptr_t cshim_panic;

int cshim_driven(void) { return cshim_depth; }
uintptr_t cshim_take_panic(void) { uintptr_t h = cshim_panic; cshim_panic = 0; return h; }
void cshim_put_panic(uintptr_t h) { cshim_panic = h; }

/* Each driver level keeps its own panic slot: an outer level's pending panic is set
 * aside while an inner call runs, so a nested driver call reports only its own. */
#define DRIVE(expr)                                   \
	do {                                          \
		uintptr_t saved_ = cshim_panic;       \
		cshim_panic = 0;                      \
		cshim_depth++;                        \
		r.ret = (expr);                       \
		cshim_depth--;                        \
		r.panic = cshim_panic;                \
		cshim_panic = saved_;                 \
	} while (0)

/* ---- Go-defined sources ---------------------------------------------------------- */

/* A Go-defined source's key (cshim.h); the idle source keeps a callback id there. */
#define HANDLE(s) (((cshim_source *)(s))->handle)

static gboolean tramp_prepare(GSource *s, gint *timeout)
{
	/* GLib presets *timeout to -1; the Go side overwrites it only when it returns. */
	return cshimSourcePrepare(HANDLE(s), timeout);
}

static gboolean tramp_check(GSource *s)
{
	return cshimSourceCheck(HANDLE(s));
}

static gboolean tramp_dispatch(GSource *s, GSourceFunc cb, gpointer data)
{
	(void)cb;
	(void)data;
	return cshimSourceDispatch(HANDLE(s));
}

static void tramp_finalize(GSource *s)
{
	/* Runs on whichever thread dropped the last reference (g_source_unref_internal). The
	 * key is cleared first so nothing can reach the Go state once it is being released. */
	uintptr_t h = HANDLE(s);
	HANDLE(s) = 0;
	if (h)
		cshimSourceFinalize(h);
}

/* One table per combination of optional callbacks. A NULL prepare or check is what
 * GLib expects from a source that has none, and it never crosses into Go. Indexed by
 * has_prepare | has_check << 1. */
static GSourceFuncs cshim_funcs[4] = {
	{NULL, NULL, tramp_dispatch, tramp_finalize, NULL, NULL},
	{tramp_prepare, NULL, tramp_dispatch, tramp_finalize, NULL, NULL},
	{NULL, tramp_check, tramp_dispatch, tramp_finalize, NULL, NULL},
	{tramp_prepare, tramp_check, tramp_dispatch, tramp_finalize, NULL, NULL},
};

GSource *cshim_source_new(uintptr_t key, int has_prepare, int has_check)
{
	GSource *s = g_source_new(&cshim_funcs[(has_prepare ? 1 : 0) | (has_check ? 2 : 0)],
				  sizeof(cshim_source));
	HANDLE(s) = key;
	return s;
}

extern GSourceFuncs cshim_reactor_funcs;

int cshim_source_is_go(GSource *s)
{
	return (s->source_funcs >= &cshim_funcs[0] && s->source_funcs <= &cshim_funcs[3]) ||
	       s->source_funcs == &cshim_reactor_funcs;
}

uintptr_t cshim_source_handle(GSource *s)
{
	return cshim_source_is_go(s) ? HANDLE(s) : 0;
}

/* ---- typed callbacks --------------------------------------------------------------- */

/* A cell carries a callback id (see registry.go) as GLib user data. The Go side releases
 * the id itself when its function returns FALSE (the source is going away), and the cell
 * is zeroed, so the destroy notify crosses into Go only for sources removed from
 * outside. */
typedef struct {
	uintptr_t handle;
} cshim_cell;

static cshim_cell *cell_new(uintptr_t handle)
{
	cshim_cell *c = g_new(cshim_cell, 1);
	c->handle = handle;
	return c;
}

static void cell_free(gpointer data)
{
	cshim_cell *c = data;
	if (c->handle)
		cshimReleaseCallback(c->handle);
	g_free(c);
}

static gboolean cell_source_func(gpointer data)
{
	cshim_cell *c = data;
	if (!c->handle)
		return G_SOURCE_REMOVE;
	if (cshimSourceFunc(c->handle))
		return G_SOURCE_CONTINUE;
	c->handle = 0; /* released by the Go side */
	return G_SOURCE_REMOVE;
}

static gboolean cell_unix_fd_func(gint fd, GIOCondition cond, gpointer data)
{
	cshim_cell *c = data;
	if (!c->handle)
		return G_SOURCE_REMOVE;
	if (cshimUnixFDFunc(c->handle, fd, cond))
		return G_SOURCE_CONTINUE;
	c->handle = 0;
	return G_SOURCE_REMOVE;
}

static guint attach_with_cell(GSource *s, GMainContext *c, gint priority, GSourceFunc fn,
			      uintptr_t handle)
{
	g_source_set_priority(s, priority);
	g_source_set_callback(s, fn, cell_new(handle), cell_free);
	guint id = g_source_attach(s, c);
	g_source_unref(s);
	return id;
}

/* The idle source calls Go straight from its dispatch, without a GSourceCallback or a
 * cell to allocate. Its prepare and check report it ready at every iteration, as GLib's
 * own idle source does (a ready time of 0 would cost GLib a clock read per iteration).
 * check matters for an idle attached from another thread while the owner polls: GLib
 * only checks it, and it must run in the iteration its attach woke. It uses the
 * cshim_source layout but its own table, so it is never taken for a Go-defined source. */
static gboolean idle_prepare(GSource *s, gint *timeout)
{
	(void)s;
	*timeout = 0;
	return TRUE;
}

static gboolean idle_check(GSource *s)
{
	(void)s;
	return TRUE;
}

static gboolean idle_dispatch(GSource *s, GSourceFunc cb, gpointer data)
{
	(void)cb;
	(void)data;
	uintptr_t h = HANDLE(s);
	if (!h)
		return G_SOURCE_REMOVE;
	if (cshimSourceFunc(h))
		return G_SOURCE_CONTINUE;
	HANDLE(s) = 0; /* released by the Go side */
	return G_SOURCE_REMOVE;
}

static void idle_finalize(GSource *s)
{
	uintptr_t h = HANDLE(s);
	HANDLE(s) = 0;
	if (h)
		cshimReleaseCallback(h);
}

static GSourceFuncs cshim_idle_funcs = {idle_prepare, idle_check, idle_dispatch, idle_finalize, NULL, NULL};

guint cshim_idle_add(GMainContext *c, gint priority, uintptr_t handle)
{
	GSource *s = g_source_new(&cshim_idle_funcs, sizeof(cshim_source));
	HANDLE(s) = handle;
	g_source_set_priority(s, priority);
	guint id = g_source_attach(s, c);
	g_source_unref(s);
	return id;
}

guint cshim_timeout_add(GMainContext *c, gint priority, guint interval_ms, uintptr_t handle)
{
	return attach_with_cell(g_timeout_source_new(interval_ms), c, priority, cell_source_func,
				handle);
}

guint cshim_unix_fd_add(GMainContext *c, gint priority, gint fd, GIOCondition cond,
			uintptr_t handle)
{
	return attach_with_cell(g_unix_fd_source_new(fd, cond), c, priority,
				(GSourceFunc)(void (*)(void))cell_unix_fd_func, handle);
}

/* ---- driver wrappers ----------------------------------------------------------------- */

cshim_result cshim_iteration(GMainContext *c, int may_block)
{
	cshim_result r;
	DRIVE(g_main_context_iteration(c, may_block));
	return r;
}

cshim_result cshim_pending(GMainContext *c)
{
	cshim_result r;
	DRIVE(g_main_context_pending(c));
	return r;
}

cshim_result cshim_prepare(GMainContext *c, gint *max_priority)
{
	cshim_result r;
	DRIVE(g_main_context_prepare(c, max_priority));
	return r;
}

cshim_result cshim_check(GMainContext *c, gint max_priority, GPollFD *fds, gint n)
{
	cshim_result r;
	DRIVE(g_main_context_check(c, max_priority, fds, n));
	return r;
}

cshim_result cshim_dispatch(GMainContext *c)
{
	cshim_result r;
	DRIVE((g_main_context_dispatch(c), 0));
	return r;
}

cshim_result cshim_source_unref(GSource *s)
{
	cshim_result r;
	DRIVE((g_source_unref(s), 0));
	return r;
}

cshim_result cshim_source_destroy(GSource *s)
{
	cshim_result r;
	DRIVE((g_source_destroy(s), 0));
	return r;
}

cshim_result cshim_remove_child_source(GSource *parent, GSource *child)
{
	cshim_result r;
	DRIVE((g_source_remove_child_source(parent, child), 0));
	return r;
}

cshim_result cshim_context_unref(GMainContext *c)
{
	cshim_result r;
	DRIVE((g_main_context_unref(c), 0));
	return r;
}

static int remove_by_id(GMainContext *c, guint id)
{
	GSource *s = g_main_context_find_source_by_id(c, id);
	if (!s)
		return 0;
	g_source_destroy(s);
	return 1;
}

cshim_result cshim_remove_by_id(GMainContext *c, guint id)
{
	cshim_result r;
	DRIVE(remove_by_id(c, id));
	return r;
}

cshim_result cshim_invoke(GMainContext *c, gint priority, uintptr_t handle)
{
	cshim_result r;
	DRIVE((g_main_context_invoke_full(c, priority, cell_source_func, cell_new(handle),
					  cell_free),
	       0));
	return r;
}

/* ---- the loop driver ----------------------------------------------------------------- */

int cshim_ppoll(GPollFD *fds, guint n, gint64 timeout_ns)
{
	gint64 deadline = timeout_ns > 0 ? cshim_now_ns() + timeout_ns : 0;
	for (;;) {
		struct timespec ts, *tsp = NULL;
		if (timeout_ns >= 0) {
			gint64 sec = timeout_ns / 1000000000LL;
			ts.tv_sec = sec > G_MAXINT32 ? G_MAXINT32 : sec;
			ts.tv_nsec = timeout_ns % 1000000000LL;
			tsp = &ts;
		}
		int ret = ppoll((struct pollfd *)fds, n, tsp, NULL);
		if (ret >= 0)
			return ret;
		if (errno != EINTR)
			return -errno;
		/* A Go runtime signal (SIGURG, SIGPROF, ...) must not end the wait early. */
		if (timeout_ns > 0) {
			timeout_ns = deadline - cshim_now_ns();
			if (timeout_ns < 0)
				timeout_ns = 0;
		}
	}
}

cshim_loop *cshim_loop_new(void)
{
	cshim_loop *l = g_new0(cshim_loop, 1);
	l->cap = 16;
	l->fds = g_new0(GPollFD, l->cap);
	return l;
}

void cshim_loop_free(cshim_loop *l)
{
	g_free(l->fds);
	g_free(l);
}

/* One GLib iteration in the style of QEMU's os_host_main_loop_wait. Returns 0 or the
 * -errno of a failed ppoll. */
static int loop_iterate(GMainContext *c, cshim_loop *l)
{
	gint max_priority = G_MAXINT, timeout_ms = -1, n;

	g_main_context_prepare(c, &max_priority);
	while ((n = g_main_context_query(c, max_priority, &timeout_ms, l->fds, l->cap)) > l->cap) {
		l->cap = n * 2;
		l->fds = g_renew(GPollFD, l->fds, l->cap);
	}
	/* Quit between the top of the loop and here still ends the wait: it wakes c. The
	 * poll may first spin on glibaio reactors prepared above (spin.h). */
	int ret = cshim_spin_ppoll(l->fds, n, timeout_ms < 0 ? -1 : (gint64)timeout_ms * 1000000LL);
	if (ret < 0) {
		/* Hand the iteration back to GLib unpolled, as if poll found nothing. */
		for (int i = 0; i < n; i++)
			l->fds[i].revents = 0;
	}
	if (g_main_context_check(c, max_priority, l->fds, n))
		g_main_context_dispatch(c);
	return ret < 0 ? ret : 0;
}

static int loop_run(GMainContext *c, cshim_loop *l, gint64 max_iterations)
{
	int err = 0;
	if (!g_main_context_acquire(c))
		return 1;
	cshim_timerslack_init(); /* this thread waits for c from here: QEMU's init_clocks() */
	while (!__atomic_load_n(&l->quit, __ATOMIC_ACQUIRE) && !cshim_panic) {
		err = loop_iterate(c, l);
		l->iterations++;
		if (err || (max_iterations > 0 && --max_iterations == 0))
			break;
	}
	g_main_context_release(c);
	return err;
}

cshim_result cshim_loop_run(GMainContext *c, cshim_loop *l, gint64 max_iterations)
{
	cshim_result r;
	DRIVE(loop_run(c, l, max_iterations));
	return r;
}

/* ---- GLib warning counter (for tests) ------------------------------------------------ */

static gint64 glib_warnings;
static guint glib_handler_id;

static void count_handler(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data)
{
	(void)data;
	__atomic_fetch_add(&glib_warnings, 1, __ATOMIC_SEQ_CST);
	g_log_default_handler(domain, level, msg, NULL);
}

void cshim_count_glib_warnings(int on)
{
	if (on && !glib_handler_id)
		glib_handler_id = g_log_set_handler("GLib", G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING,
						    count_handler, NULL);
	else if (!on && glib_handler_id) {
		g_log_remove_handler("GLib", glib_handler_id);
		glib_handler_id = 0;
	}
}

gint64 cshim_glib_warnings(void) { return __atomic_load_n(&glib_warnings, __ATOMIC_SEQ_CST); }
