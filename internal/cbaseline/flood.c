/* Two more whole C loops: the floor of the oneshot flood and GLib's own ping-pong between
 * two threads. */
#define _GNU_SOURCE
#include "loops.h"
#include "clock.h"
#include <errno.h>
#include <glib-unix.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ---- the oneshot flood's floor ----
 * Producer threads schedule callbacks from other threads; the loop thread runs them from
 * a GLib iteration, as aiosource's ScheduleOneshot and its reactor source do, with the
 * least a C design of that shape needs:
 * - a node per callback, made before the timing (nothing is allocated per event);
 * - a lock-free LIFO that producers push onto and the loop takes whole;
 * - QEMU's notify_me handshake on a kick eventfd (aio_notify): prepare says the loop
 *   may block, a producer that sees that after its push writes the eventfd, check
 *   withdraws it, dispatch reads the eventfd when it polled readable;
 * - a source shaped like the reactor: prepare and check in C, can_recurse, the kick
 *   eventfd as its one unix fd.
 * Each callback is a call through a function pointer that adds 1 atomically, as the Go
 * side's callback does. */
typedef struct fl_node {
	struct fl_node *next;
	void (*fn)(gint64 *ran);
} fl_node;

typedef struct {
	GSource base;
	fl_node *head; /* atomic */
	int waiting;   /* atomic: the loop may block (notify_me) */
	int kickfd;
	gpointer kick_tag;
	gint64 ran; /* atomic */
} fl_source;

static void fl_run(gint64 *ran) { __atomic_fetch_add(ran, 1, __ATOMIC_RELAXED); }

static gboolean fl_prepare(GSource *s, gint *timeout)
{
	fl_source *f = (fl_source *)s;
	__atomic_store_n(&f->waiting, 1, __ATOMIC_SEQ_CST);
	*timeout = __atomic_load_n(&f->head, __ATOMIC_SEQ_CST) ? 0 : -1;
	return FALSE;
}

static gboolean fl_check(GSource *s)
{
	fl_source *f = (fl_source *)s;
	__atomic_store_n(&f->waiting, 0, __ATOMIC_SEQ_CST);
	return __atomic_load_n(&f->head, __ATOMIC_SEQ_CST) != NULL;
}

static gboolean fl_dispatch(GSource *s, GSourceFunc cb, gpointer data)
{
	(void)cb;
	(void)data;
	fl_source *f = (fl_source *)s;
	if (g_source_query_unix_fd(s, f->kick_tag)) {
		guint64 v;
		if (read(f->kickfd, &v, sizeof v) < 0 && errno != EAGAIN)
			return G_SOURCE_CONTINUE;
	}
	for (fl_node *n = __atomic_exchange_n(&f->head, NULL, __ATOMIC_ACQUIRE); n; n = n->next)
		n->fn(&f->ran);
	return G_SOURCE_CONTINUE;
}

static GSourceFuncs fl_funcs = {fl_prepare, fl_check, fl_dispatch, NULL, NULL, NULL};

typedef struct {
	fl_source *src;
	fl_node *nodes;
	int n;
} fl_producer;

static void *fl_produce(void *p)
{
	fl_producer *pr = p;
	fl_source *f = pr->src;
	guint64 one = 1;
	for (int i = 0; i < pr->n; i++) {
		fl_node *n = &pr->nodes[i];
		n->fn = fl_run;
		n->next = __atomic_load_n(&f->head, __ATOMIC_RELAXED);
		while (!__atomic_compare_exchange_n(&f->head, &n->next, n, TRUE, __ATOMIC_SEQ_CST,
						    __ATOMIC_RELAXED))
			;
		/* The CAS is sequentially consistent, so the push is visible before waiting is
		 * read: a loop that set waiting after this read finds the node in prepare. Every
		 * producer that sees waiting writes, as QEMU's aio_notify and glibaio's Notify
		 * do: deduplicating writes with a flag would lose a wakeup whenever a dispatch
		 * reads the eventfd between a producer setting the flag and the loop clearing it. */
		if (__atomic_load_n(&f->waiting, __ATOMIC_SEQ_CST)) {
			while (write(f->kickfd, &one, sizeof one) < 0 && errno == EINTR)
				;
		}
	}
	return NULL;
}

gint64 cb_oneshot_flood(GMainContext *c, int producers, int n)
{
	int kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (kickfd < 0)
		return -1;
	fl_source *f = (fl_source *)g_source_new(&fl_funcs, sizeof(fl_source));
	f->kickfd = kickfd;
	f->kick_tag = g_source_add_unix_fd(&f->base, kickfd, G_IO_IN);
	g_source_set_can_recurse(&f->base, TRUE);
	g_source_attach(&f->base, c);
	fl_node *nodes = g_new0(fl_node, (gsize)producers * n);
	fl_producer *prs = g_new0(fl_producer, producers);
	pthread_t *th = g_new0(pthread_t, producers);
	gint64 total = (gint64)producers * n, el = -1;
	int started = 0;

	gint64 start = cshim_now_ns();
	for (; started < producers; started++) {
		prs[started] = (fl_producer){f, nodes + (gsize)started * n, n};
		if (pthread_create(&th[started], NULL, fl_produce, &prs[started]) != 0)
			break;
	}
	if (started == producers) {
		while (__atomic_load_n(&f->ran, __ATOMIC_RELAXED) < total)
			g_main_context_iteration(c, TRUE);
		el = cshim_now_ns() - start;
	}
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);

	g_source_destroy(&f->base);
	g_source_unref(&f->base);
	close(kickfd);
	g_free(th);
	g_free(prs);
	g_free(nodes);
	return el;
}

/* ---- GLib's own ping-pong: two threads, each running g_main_context_iteration on its
 * own context with a g_unix_fd_add-style source on its eventfd, hand a token back and
 * forth rounds times (what cb_pingpong does with bare epoll_wait). */
typedef struct {
	GMainContext *ctx;
	int mine, other, rounds, first, done, failed;
} gpp_arg;

static gboolean gpp_ready(gint fd, GIOCondition cond, gpointer data)
{
	(void)cond;
	gpp_arg *a = data;
	guint64 one = 1, v;
	if (read(fd, &v, sizeof v) < 0)
		return G_SOURCE_CONTINUE; /* spurious: wait again */
	a->done++;
	if (!(a->first && a->done == a->rounds) && write(a->other, &one, sizeof one) < 0)
		a->failed = 1;
	return G_SOURCE_CONTINUE;
}

static void *gpp_thread(void *p)
{
	gpp_arg *a = p;
	guint64 one = 1;
	GSource *s = g_unix_fd_source_new(a->mine, G_IO_IN);
	g_source_set_callback(s, (GSourceFunc)(void (*)(void))gpp_ready, a, NULL);
	g_source_attach(s, a->ctx);
	if (a->first && write(a->other, &one, sizeof one) < 0)
		a->failed = 1;
	while (!a->failed && a->done < a->rounds)
		g_main_context_iteration(a->ctx, TRUE);
	g_source_destroy(s);
	g_source_unref(s);
	return NULL;
}

gint64 cb_glib_pingpong(int rounds)
{
	int e1 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), e2 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	GMainContext *c1 = g_main_context_new(), *c2 = g_main_context_new();
	gpp_arg a = {c1, e1, e2, rounds, 1, 0, 0}, b = {c2, e2, e1, rounds, 0, 0, 0};
	gint64 el = -1;
	pthread_t ta, tb;
	if (e1 >= 0 && e2 >= 0) {
		gint64 start = cshim_now_ns();
		if (pthread_create(&tb, NULL, gpp_thread, &b) == 0) {
			if (pthread_create(&ta, NULL, gpp_thread, &a) == 0) {
				pthread_join(ta, NULL);
				el = cshim_now_ns() - start;
			} else {
				b.failed = 1;
				g_main_context_wakeup(c2);
			}
			pthread_join(tb, NULL);
		}
	}
	if (a.failed || b.failed)
		el = -1;
	g_main_context_unref(c1);
	g_main_context_unref(c2);
	if (e1 >= 0)
		close(e1);
	if (e2 >= 0)
		close(e2);
	return el;
}
