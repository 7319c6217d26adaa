#define _GNU_SOURCE
#include "reactor.h"
#include "_cgo_export.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define IDLE_TIMEOUT_MS 10 /* QEMU's idle BH latency */
#define REACTOR(s) ((cshim_reactor *)(s))

static gint64 mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (gint64)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Arms the timerfd at an absolute monotonic time (-1 disarms) unless it already holds
 * it. A time in the past fires at once. Loop thread only. */
static void reactor_arm(cshim_reactor *r, gint64 when)
{
	if (when == r->armed)
		return;
	struct itimerspec its = {0};
	if (when >= 0) {
		if (when == 0)
			when = 1; /* 0 would disarm */
		its.it_value.tv_sec = when / 1000000000LL;
		its.it_value.tv_nsec = when % 1000000000LL;
	}
	if (timerfd_settime(r->timerfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		r->armed = when < 0 ? -1 : when;
}

/* Reads an eventfd or timerfd; FALSE if there was nothing to read. */
static gboolean drain(int fd)
{
	guint64 v;
	ssize_t n;
	while ((n = read(fd, &v, sizeof v)) < 0 && errno == EINTR)
		;
	return n == sizeof v;
}


static void push_event(cshim_reactor *r, int fd, guint32 events, guint32 tag)
{
	if (r->nev == r->cap) {
		r->cap *= 2;
		r->ev = g_renew(cshim_event, r->ev, r->cap);
	}
	r->ev[r->nev].fd = fd;
	r->ev[r->nev].events = events;
	r->ev[r->nev].tag = tag;
	r->nev++;
}

/* epoll data: the fd in the low 32 bits, the registration tag in the high ones */
#define EPDATA(fd, tag) (((guint64)(tag) << 32) | (guint32)(fd))
#define EPFD(u) ((int)(gint32)(guint32)(u))
#define EPTAG(u) ((guint32)((u) >> 32))

/* epoll_wait, retried on EINTR, appending to r->ev; the kick and timer fds are drained
 * and dropped. Returns 0 or -errno. */
static int reactor_harvest(cshim_reactor *r, int timeout_ms)
{
	struct epoll_event ev[128];
	int n;
	while ((n = epoll_wait(r->epfd, ev, G_N_ELEMENTS(ev), timeout_ms)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		int fd = EPFD(ev[i].data.u64);
		if (fd == r->kickfd) {
			drain(fd); /* the handshake's wakeup: never progress */
		} else if (fd == r->timerfd) {
			if (drain(fd))
				r->armed = -1; /* expired: the next arm must write it again */
		} else {
			push_event(r, fd, ev[i].events, EPTAG(ev[i].data.u64));
		}
	}
	return 0;
}

/* GLib's prepare: announce that the loop may block (bit 0, with a full barrier so the
 * flag is visible before the ready word is read: it pairs with the barrier of Notify),
 * arm the timerfd, and ask for no timeout, 0 or 10 ms from the ready word.
 *
 * It returns FALSE even when work is queued, with a zero timeout: GLib then polls with
 * timeout 0 (it always polls) and runs check, which clears bit 0, so work queued during
 * the dispatch that follows costs no eventfd write. Bit 0 is still cleared only in
 * check, as in QEMU.
 *
 * GLib polls the timerfd only once a timer was first armed: each fd in GLib's poll set
 * costs every iteration, so a context without timers does not pay for it. Adding it here,
 * before GLib's query, makes this very poll watch it. It is never removed: adding or
 * removing a unix fd writes GLib's wakeup fd, which would cost an empty iteration each
 * time the last timer fires or a first one is armed. */
static gboolean reactor_prepare(GSource *s, gint *timeout)
{
	cshim_reactor *r = REACTOR(s);
	__atomic_fetch_or(&r->w->waiting, 1, __ATOMIC_SEQ_CST);
	guint32 ready = __atomic_load_n(&r->w->ready, __ATOMIC_SEQ_CST);
	reactor_arm(r, __atomic_load_n(&r->w->deadline, __ATOMIC_SEQ_CST));
	if (r->armed >= 0 && !r->timer_tag)
		r->timer_tag = g_source_add_unix_fd(s, r->timerfd, G_IO_IN);
	if (ready & CSHIM_READY_NOW)
		*timeout = 0;
	else if (ready & CSHIM_READY_IDLE)
		*timeout = IDLE_TIMEOUT_MS;
	else
		*timeout = -1;
	return FALSE;
}

/* GLib's check: clear bit 0 (release: the timeout was computed before), accept the
 * notification (a full barrier, so the reads of queued work that follow cannot move
 * above it), and report queued work. A readable epoll fd makes the source ready too. */
static gboolean reactor_check(GSource *s)
{
	cshim_reactor *r = REACTOR(s);
	__atomic_fetch_and(&r->w->waiting, ~1u, __ATOMIC_RELEASE);
	__atomic_store_n(&r->w->kicked, 0, __ATOMIC_SEQ_CST);
	return __atomic_load_n(&r->w->ready, __ATOMIC_SEQ_CST) != 0;
}

static gboolean reactor_dispatch(GSource *s, GSourceFunc cb, gpointer data)
{
	(void)cb;
	(void)data;
	cshim_reactor *r = REACTOR(s);
	r->nev = 0;
	if (g_source_query_unix_fd(s, r->kick_tag))
		drain(r->kickfd); /* the handshake's wakeup: never progress */
	if (r->timer_tag && g_source_query_unix_fd(s, r->timer_tag) && drain(r->timerfd))
		r->armed = -1; /* expired: the next arm must write it again */
	/* poll backend: GLib polled each fd itself; its revents cost no syscall to read.
	 * With none registered, skip the lock. An fd being added right now may already have
	 * been polled before its count is visible here: poll is level-triggered, so it is
	 * reported again next iteration. */
	if (__atomic_load_n(&r->nreg, __ATOMIC_RELAXED) > 0) {
		g_mutex_lock(&r->lock);
		for (int i = 0; i < r->nreg; i++) {
			GIOCondition rev = g_source_query_unix_fd(s, r->reg[i].fdtag);
			if (rev)
				push_event(r, r->reg[i].fd, rev, r->reg[i].tag);
		}
		g_mutex_unlock(&r->lock);
	}
	/* epoll backend: GLib polled the epoll fd (set once, under the lock, by the
	 * upgrade; the loop thread reads it after GLib's poll saw it) */
	gpointer eptag = __atomic_load_n(&r->epfd_tag, __ATOMIC_ACQUIRE);
	if (eptag && g_source_query_unix_fd(s, eptag))
		reactor_harvest(r, 0);
	return cshimSourceDispatch(r->src.handle);
}

static void reactor_finalize(GSource *s)
{
	cshim_reactor *r = REACTOR(s);
	uintptr_t h = r->src.handle;
	r->src.handle = 0;
	if (h)
		cshimSourceFinalize(h); /* the Go side stops kicks, then closes kickfd */
	close(r->epfd);
	close(r->timerfd);
	g_free(r->ev);
	g_free(r->reg);
	g_free(r->pfds);
	g_free(r->ptags);
	g_mutex_clear(&r->lock);
}

GSourceFuncs cshim_reactor_funcs = {reactor_prepare, reactor_check, reactor_dispatch,
				    reactor_finalize, NULL, NULL};

cshim_reactor_words *cshim_reactor_words_new(void)
{
	cshim_reactor_words *w = g_new0(cshim_reactor_words, 1);
	w->deadline = -1;
	return w;
}

void cshim_reactor_words_free(cshim_reactor_words *w) { g_free(w); }

static int epoll_add(int epfd, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EPDATA(fd, 0)};
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

cshim_reactor *cshim_reactor_new(uintptr_t handle, cshim_reactor_words *w)
{
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	int kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (epfd < 0 || kickfd < 0 || timerfd < 0 || epoll_add(epfd, kickfd) < 0 ||
	    epoll_add(epfd, timerfd) < 0) {
		int err = errno;
		if (epfd >= 0)
			close(epfd);
		if (kickfd >= 0)
			close(kickfd);
		if (timerfd >= 0)
			close(timerfd);
		errno = err;
		return NULL;
	}
	GSource *s = g_source_new(&cshim_reactor_funcs, sizeof(cshim_reactor));
	cshim_reactor *r = REACTOR(s);
	r->src.handle = handle;
	r->w = w;
	r->epfd = epfd;
	r->kickfd = kickfd;
	r->timerfd = timerfd;
	r->armed = -1;
	r->cap = 16;
	r->ev = g_new(cshim_event, r->cap);
	g_mutex_init(&r->lock);
	/* GLib polls the kick eventfd itself, and the epoll fd only once fds move into it:
	 * polling an epoll fd costs the kernel more than an eventfd. */
	r->kick_tag = g_source_add_unix_fd(s, kickfd, G_IO_IN);
	return r;
}

int cshim_reactor_wait(cshim_reactor *r, gint64 timeout_ns)
{
	r->nev = 0;
	g_mutex_lock(&r->lock);
	if (r->epoll_mode) {
		g_mutex_unlock(&r->lock);
		if (timeout_ns > 0)
			reactor_arm(r, mono_ns() + timeout_ns); /* ns precision through the timerfd */
		else if (timeout_ns < 0)
			reactor_arm(r, -1);
		return reactor_harvest(r, timeout_ns == 0 ? 0 : -1);
	}
	/* poll backend: one ppoll over the kick and timer fds and every fd, with a ns
	 * timeout; polling the epoll fd instead would cost the kernel more, and a wakeup an
	 * epoll_wait more. A fd removed meanwhile may still report; the Go side ignores it. */
	enum { KICK, TIMER, FIRST_REG };
	int n = r->nreg + FIRST_REG;
	if (n > r->pfdcap) {
		r->pfdcap = n * 2;
		r->pfds = g_renew(GPollFD, r->pfds, r->pfdcap);
		r->ptags = g_renew(guint32, r->ptags, r->pfdcap);
	}
	r->pfds[KICK] = (GPollFD){.fd = r->kickfd, .events = G_IO_IN};
	r->pfds[TIMER] = (GPollFD){.fd = r->timerfd, .events = G_IO_IN};
	for (int i = 0; i < r->nreg; i++) {
		r->pfds[FIRST_REG + i] = (GPollFD){.fd = r->reg[i].fd, .events = r->reg[i].events};
		r->ptags[FIRST_REG + i] = r->reg[i].tag;
	}
	g_mutex_unlock(&r->lock);
	int ret = cshim_ppoll(r->pfds, n, timeout_ns);
	if (ret < 0)
		return ret;
	for (int i = FIRST_REG; i < n; i++)
		if (r->pfds[i].revents)
			push_event(r, r->pfds[i].fd, r->pfds[i].revents, r->ptags[i]);
	if (r->pfds[KICK].revents)
		drain(r->kickfd); /* the handshake's wakeup: never progress */
	if (r->pfds[TIMER].revents && drain(r->timerfd))
		r->armed = -1; /* expired: the next arm must write it again */
	return 0;
}

/* ---- the fd registry ------------------------------------------------------------------- */

static int epctl(cshim_reactor *r, int op, int fd, guint32 events, guint32 tag)
{
	struct epoll_event ev = {.events = events, .data.u64 = EPDATA(fd, tag)};
	return epoll_ctl(r->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

static int reg_find(cshim_reactor *r, int fd)
{
	for (int i = 0; i < r->nreg; i++)
		if (r->reg[i].fd == fd)
			return i;
	return -1;
}

/* Moves every fd into epoll, for good (fdmon_epoll_try_upgrade). */
static void upgrade_to_epoll(cshim_reactor *r)
{
	for (int i = 0; i < r->nreg; i++) {
		epctl(r, EPOLL_CTL_ADD, r->reg[i].fd, r->reg[i].events, r->reg[i].tag);
		g_source_remove_unix_fd(&r->src.base, r->reg[i].fdtag);
	}
	g_free(r->reg);
	r->reg = NULL;
	__atomic_store_n(&r->nreg, 0, __ATOMIC_RELAXED);
	r->regcap = 0;
	r->epoll_mode = 1;
	__atomic_store_n(&r->epfd_tag, g_source_add_unix_fd(&r->src.base, r->epfd, G_IO_IN),
			 __ATOMIC_RELEASE);
}

int cshim_reactor_add(cshim_reactor *r, int fd, guint32 events, guint32 tag)
{
	int err = 0;
	g_mutex_lock(&r->lock);
	if (g_source_is_destroyed(&r->src.base)) {
		err = -EBADF;
	} else if (r->epoll_mode) {
		err = epctl(r, EPOLL_CTL_ADD, fd, events, tag);
	} else if (reg_find(r, fd) >= 0) {
		err = -EEXIST;
	} else if ((err = epctl(r, EPOLL_CTL_ADD, fd, events, tag)) == 0) {
		/* epoll accepted it, so poll can watch it too; epoll_ctl gave the errors that
		 * a closed or unpollable fd must get. */
		epctl(r, EPOLL_CTL_DEL, fd, 0, 0);
		if (r->nreg + 1 >= CSHIM_EPOLL_THRESHOLD) {
			upgrade_to_epoll(r);
			err = epctl(r, EPOLL_CTL_ADD, fd, events, tag);
		} else {
			if (r->nreg == r->regcap) {
				r->regcap = r->regcap ? r->regcap * 2 : 8;
				r->reg = g_renew(cshim_reg, r->reg, r->regcap);
			}
			r->reg[r->nreg].fd = fd;
			r->reg[r->nreg].events = events;
			r->reg[r->nreg].tag = tag;
			r->reg[r->nreg].fdtag = g_source_add_unix_fd(&r->src.base, fd, (GIOCondition)events);
			__atomic_store_n(&r->nreg, r->nreg + 1, __ATOMIC_RELAXED); /* read unlocked by dispatch */
		}
	}
	g_mutex_unlock(&r->lock);
	return err;
}

int cshim_reactor_mod(cshim_reactor *r, int fd, guint32 events, guint32 tag)
{
	int err = 0;
	g_mutex_lock(&r->lock);
	if (r->epoll_mode) {
		err = epctl(r, EPOLL_CTL_MOD, fd, events, tag);
	} else {
		int i = reg_find(r, fd);
		if (i < 0) {
			err = -ENOENT;
		} else {
			r->reg[i].events = events;
			r->reg[i].tag = tag;
			g_source_modify_unix_fd(&r->src.base, r->reg[i].fdtag, (GIOCondition)events);
		}
	}
	g_mutex_unlock(&r->lock);
	return err;
}

int cshim_reactor_del(cshim_reactor *r, int fd)
{
	int err = 0;
	g_mutex_lock(&r->lock);
	if (r->epoll_mode) {
		err = epctl(r, EPOLL_CTL_DEL, fd, 0, 0);
	} else {
		int i = reg_find(r, fd);
		if (i < 0) {
			err = -ENOENT;
		} else {
			g_source_remove_unix_fd(&r->src.base, r->reg[i].fdtag);
			r->reg[i] = r->reg[r->nreg - 1];
			__atomic_store_n(&r->nreg, r->nreg - 1, __ATOMIC_RELAXED);
		}
	}
	g_mutex_unlock(&r->lock);
	return err;
}

int cshim_reactor_epoll_mode(cshim_reactor *r)
{
	g_mutex_lock(&r->lock);
	int m = r->epoll_mode;
	g_mutex_unlock(&r->lock);
	return m;
}

int cshim_reactor_kick(int kickfd)
{
	guint64 one = 1;
	while (write(kickfd, &one, sizeof one) < 0) {
		if (errno == EAGAIN)
			return 0; /* the counter is saturated: a wakeup is pending anyway */
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}
