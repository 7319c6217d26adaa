#define _GNU_SOURCE
#include "loops.h"
#include "source.h"
#include "clock.h"
#include <errno.h>
#include <glib-unix.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static GArray *fd_source_ids;

static gboolean drain_fd(gint fd, GIOCondition cond, gpointer data)
{
	(void)cond;
	(void)data;
	guint64 v;
	if (read(fd, &v, sizeof v) < 0)
		return G_SOURCE_CONTINUE;
	return G_SOURCE_CONTINUE;
}

void cb_unix_fd_sources_add(GMainContext *c, const int *fds, int n)
{
	if (!fd_source_ids)
		fd_source_ids = g_array_new(FALSE, FALSE, sizeof(guint));
	for (int i = 0; i < n; i++) {
		GSource *s = g_unix_fd_source_new(fds[i], G_IO_IN);
		g_source_set_callback(s, (GSourceFunc)(void (*)(void))drain_fd, NULL, NULL);
		guint id = g_source_attach(s, c);
		g_source_unref(s);
		g_array_append_val(fd_source_ids, id);
	}
}

void cb_unix_fd_sources_remove(GMainContext *c)
{
	if (!fd_source_ids)
		return;
	for (guint i = 0; i < fd_source_ids->len; i++) {
		GSource *s = g_main_context_find_source_by_id(c, g_array_index(fd_source_ids, guint, i));
		if (s)
			g_source_destroy(s);
	}
	g_array_set_size(fd_source_ids, 0);
}

static GMainLoop *running_loop;

void cb_main_loop_run(GMainContext *c)
{
	GMainLoop *l = g_main_loop_new(c, FALSE);
	running_loop = l;
	g_main_loop_run(l);
	running_loop = NULL;
	g_main_loop_unref(l);
}

void cb_main_loop_quit(void)
{
	if (running_loop)
		g_main_loop_quit(running_loop);
}

/* ---- ready-time timer ---- */
typedef struct {
	GSource base;
	gint64 period_ns, expire_ns;
	int rounds, done;
	gint64 *out;
	GMainLoop *loop;
} rt_source;

static gboolean rt_dispatch(GSource *s, GSourceFunc cb, gpointer d)
{
	(void)cb;
	(void)d;
	rt_source *r = (rt_source *)s;
	r->out[r->done++] = cshim_now_ns() - r->expire_ns;
	if (r->done == r->rounds) {
		g_main_loop_quit(r->loop);
		g_source_set_ready_time(s, -1);
		return G_SOURCE_CONTINUE;
	}
	r->expire_ns = cshim_now_ns() + r->period_ns;
	/* µs, rounded up: GLib 2.74 has no ns ready time */
	g_source_set_ready_time(s, (r->expire_ns + 999) / 1000);
	return G_SOURCE_CONTINUE;
}

static GSourceFuncs rt_funcs = {NULL, NULL, rt_dispatch, NULL, NULL, NULL};

/* ---- timerfd GSource: what any GLib-driven timerfd costs over a bare one ----
 * The floor of the AIO timer under g_main_loop_run, so it is shaped as GLib sees
 * glibaio's reactor source (cshim/reactor.c) with a timer pending: can_recurse set (as
 * aiosource sets it; without it GLib would block and unblock the source's fds around
 * each dispatch, writing its wakeup fd: work glibaio does not do), an idle kick eventfd
 * and the timerfd it arms at an absolute monotonic time, read in its dispatch. */
typedef struct {
	rt_source rt;
	int tfd;
} tfd_source;

static void tfd_arm(tfd_source *t)
{
	struct itimerspec its = {0};
	its.it_value.tv_sec = t->rt.expire_ns / 1000000000LL;
	its.it_value.tv_nsec = t->rt.expire_ns % 1000000000LL;
	timerfd_settime(t->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static gboolean tfd_dispatch(GSource *s, GSourceFunc cb, gpointer d)
{
	(void)cb;
	(void)d;
	tfd_source *t = (tfd_source *)s;
	guint64 v;
	if (read(t->tfd, &v, sizeof v) < 0)
		return G_SOURCE_CONTINUE;
	t->rt.out[t->rt.done++] = cshim_now_ns() - t->rt.expire_ns;
	if (t->rt.done == t->rt.rounds) {
		g_main_loop_quit(t->rt.loop);
		return G_SOURCE_CONTINUE;
	}
	t->rt.expire_ns = cshim_now_ns() + t->rt.period_ns;
	tfd_arm(t);
	return G_SOURCE_CONTINUE;
}

static GSourceFuncs tfd_funcs = {NULL, NULL, tfd_dispatch, NULL, NULL, NULL};

static int tfd_lateness(GMainContext *c, gint64 period_ns, int rounds, gint64 *out)
{
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (tfd < 0)
		return -1;
	int kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (kickfd < 0) {
		close(tfd);
		return -1;
	}
	GSource *s = g_source_new(&tfd_funcs, sizeof(tfd_source));
	g_source_set_can_recurse(s, TRUE);
	g_source_add_unix_fd(s, kickfd, G_IO_IN);
	tfd_source *t = (tfd_source *)s;
	t->tfd = tfd;
	t->rt.period_ns = period_ns;
	t->rt.rounds = rounds;
	t->rt.out = out;
	t->rt.loop = g_main_loop_new(c, FALSE);
	g_source_add_unix_fd(s, tfd, G_IO_IN);
	t->rt.expire_ns = cshim_now_ns() + period_ns;
	tfd_arm(t);
	g_source_attach(s, c);
	g_main_loop_run(t->rt.loop);
	g_main_loop_unref(t->rt.loop);
	g_source_destroy(s);
	g_source_unref(s);
	close(tfd);
	close(kickfd);
	return 0;
}

/* ---- bare ppoll timeout: the floor of a wait that ends on a ppoll timeout rather than
 * a timerfd, as aiosource's Poll(true) on its poll backend. It polls an eventfd that
 * never fires, as Poll polls its kick eventfd. */
static int ppoll_lateness(gint64 period_ns, int rounds, gint64 *out)
{
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0)
		return -1;
	for (int i = 0; i < rounds; i++) {
		gint64 exp = cshim_now_ns() + period_ns, left = period_ns;
		for (;;) {
			struct pollfd p = {.fd = efd, .events = POLLIN};
			struct timespec ts = {.tv_sec = left / 1000000000LL, .tv_nsec = left % 1000000000LL};
			if (ppoll(&p, 1, &ts, NULL) >= 0)
				break;
			if (errno != EINTR) {
				close(efd);
				return -1;
			}
			left = exp - cshim_now_ns(); /* a Go runtime signal: wait out the rest */
			if (left < 0)
				left = 0;
		}
		out[i] = cshim_now_ns() - exp;
	}
	close(efd);
	return 0;
}

int cb_ppoll_until(int fd, gint64 deadline_ns)
{
	for (;;) {
		gint64 left = deadline_ns - cshim_now_ns();
		if (left < 0)
			left = 0;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		struct timespec ts = {.tv_sec = left / 1000000000LL, .tv_nsec = left % 1000000000LL};
		if (ppoll(&p, 1, &ts, NULL) >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int cb_timer_lateness(GMainContext *c, int mode, gint64 period_ns, int rounds, gint64 *out)
{
	if (mode == 3)
		return ppoll_lateness(period_ns, rounds, out);
	if (mode == 2)
		return tfd_lateness(c, period_ns, rounds, out);
	if (mode == 1) {
		int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
		if (tfd < 0)
			return -1;
		for (int i = 0; i < rounds; i++) {
			gint64 exp = cshim_now_ns() + period_ns;
			struct itimerspec its = {0};
			its.it_value.tv_sec = exp / 1000000000LL;
			its.it_value.tv_nsec = exp % 1000000000LL;
			timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
			guint64 v;
			if (read(tfd, &v, sizeof v) < 0) {
				close(tfd);
				return -1;
			}
			out[i] = cshim_now_ns() - exp;
		}
		close(tfd);
		return 0;
	}
	GSource *s = g_source_new(&rt_funcs, sizeof(rt_source));
	rt_source *r = (rt_source *)s;
	r->period_ns = period_ns;
	r->rounds = rounds;
	r->out = out;
	r->loop = g_main_loop_new(c, FALSE);
	r->expire_ns = cshim_now_ns() + period_ns;
	g_source_set_ready_time(s, (r->expire_ns + 999) / 1000);
	g_source_attach(s, c);
	g_main_loop_run(r->loop);
	g_main_loop_unref(r->loop);
	g_source_destroy(s);
	g_source_unref(s);
	return 0;
}

/* ---- two-thread ping-pong ---- */
typedef struct {
	int mine, other, ep, rounds, first;
} pp_arg;

static void *pp_thread(void *p)
{
	pp_arg *a = p;
	guint64 one = 1, v;
	struct epoll_event ev;
	if (a->first && write(a->other, &one, sizeof one) < 0)
		return NULL;
	for (int i = 0; i < a->rounds; i++) {
		while (epoll_wait(a->ep, &ev, 1, -1) < 1)
			;
		if (read(a->mine, &v, sizeof v) < 0)
			return NULL;
		if (!(a->first && i == a->rounds - 1) && write(a->other, &one, sizeof one) < 0)
			return NULL;
	}
	return NULL;
}

gint64 cb_pingpong(int rounds)
{
	int e1 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), e2 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int p1 = epoll_create1(EPOLL_CLOEXEC), p2 = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN};
	ev.data.fd = e1;
	epoll_ctl(p1, EPOLL_CTL_ADD, e1, &ev);
	ev.data.fd = e2;
	epoll_ctl(p2, EPOLL_CTL_ADD, e2, &ev);
	pp_arg a = {e1, e2, p1, rounds, 1}, b = {e2, e1, p2, rounds, 0};
	pthread_t ta, tb;
	gint64 start = cshim_now_ns();
	pthread_create(&tb, NULL, pp_thread, &b);
	pthread_create(&ta, NULL, pp_thread, &a);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	gint64 el = cshim_now_ns() - start;
	close(e1);
	close(e2);
	close(p1);
	close(p2);
	return el;
}

gint64 cb_iterate(GMainContext *c, gint64 n)
{
	gint64 start = cshim_now_ns();
	for (gint64 i = 0; i < n; i++)
		g_main_context_iteration(c, FALSE);
	return cshim_now_ns() - start;
}

/* The floor of "schedule work, then one iteration dispatches it": a C source shaped like
 * the reactor (one eventfd watched, can_recurse, ready through its prepare and check)
 * whose dispatch does nothing. Each round marks it ready and runs one iteration. */
typedef struct {
	GSource base;
	volatile gint64 pending, ran;
} ready_source;

static gboolean ready_prepare(GSource *s, gint *timeout)
{
	*timeout = ((ready_source *)s)->pending ? 0 : -1;
	return FALSE;
}

static gboolean ready_check(GSource *s) { return ((ready_source *)s)->pending != 0; }

static gboolean ready_dispatch(GSource *s, GSourceFunc cb, gpointer data)
{
	(void)cb;
	(void)data;
	ready_source *r = (ready_source *)s;
	r->pending = 0;
	r->ran++;
	return G_SOURCE_CONTINUE;
}

static GSourceFuncs ready_funcs = {ready_prepare, ready_check, ready_dispatch, NULL, NULL, NULL};

gint64 cb_ready_iterate(GMainContext *c, gint64 n)
{
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0)
		return -1;
	ready_source *r = (ready_source *)g_source_new(&ready_funcs, sizeof(ready_source));
	g_source_add_unix_fd(&r->base, efd, G_IO_IN);
	g_source_set_can_recurse(&r->base, TRUE);
	g_source_attach(&r->base, c);
	gint64 start = cshim_now_ns();
	for (gint64 i = 0; i < n; i++) {
		r->pending = 1;
		g_main_context_iteration(c, FALSE);
	}
	gint64 elapsed = cshim_now_ns() - start;
	gint64 ran = r->ran;
	g_source_destroy(&r->base);
	g_source_unref(&r->base);
	close(efd);
	return ran == n ? elapsed : -1;
}
