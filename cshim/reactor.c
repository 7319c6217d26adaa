/* The reactor's common part: the GSource funcs, the kick eventfd, the timerfd, the words
 * shared with Go and the switch between backends. The backends are fdmon_*.c (fdmon.h). */
#define _GNU_SOURCE
#include "fdmon.h"
#include "clock.h"
#include "spin.h"
#include "timerslack.h"
#include "_cgo_export.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define IDLE_TIMEOUT_MS 10 /* QEMU's idle BH latency */
#define REACTOR(s) ((cshim_reactor *)(s))

/* Arms the timerfd at an absolute monotonic time (-1 disarms) unless it already holds
 * it. A time in the past fires at once. 0 or -errno. Loop thread only.
 *
 * The timerfd is never read: from its expiry it stays readable until the next write here
 * clears it (timerfd_settime zeroes its tick count), so r->armed still describes it. A
 * wait for the same deadline, now past, returns at once, as it must; any other deadline,
 * or none, rewrites it. A read(2) would only stand between a timer's wakeup and its
 * callback. */
static int reactor_arm(cshim_reactor *r, gint64 when)
{
	if (when == r->armed)
		return 0;
	struct itimerspec its = {0};
	if (when >= 0) {
		if (when == 0)
			when = 1; /* 0 would disarm */
		its.it_value.tv_sec = when / 1000000000LL;
		its.it_value.tv_nsec = when % 1000000000LL;
	}
	if (timerfd_settime(r->timerfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		return -errno;
	r->armed = when < 0 ? -1 : when;
	return 0;
}

/* The kick eventfd polled readable: the handshake's wakeup, never progress. Reading it
 * resets the counter. */
void cshim_reactor_kicked(cshim_reactor *r)
{
	guint64 v;
	while (read(r->kickfd, &v, sizeof v) < 0 && errno == EINTR)
		;
}

/* Appends one event to r->ev. Loop thread only. */
void cshim_reactor_push(cshim_reactor *r, int fd, guint32 events, guint32 tag)
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

/* Makes to the backend for good; the old one has handed it every fd (QEMU's
 * fdmon_epoll_try_upgrade). r->lock held. */
void cshim_reactor_switch(cshim_reactor *r, const cshim_fdmon_ops *to)
{
	to->enable(r);
	/* release: dispatch reads r->fdmon unlocked, and then the state enable set */
	__atomic_store_n(&r->fdmon, to, __ATOMIC_RELEASE);
}

/* GLib's prepare: announce that the loop may block (bit 0, with a full barrier so the
 * flag is visible before the ready word is read: it pairs with the barrier of Notify),
 * arm the timerfd, and ask for no timeout, 0 or 10 ms from the ready word. When the ready
 * word already says work is queued, the loop will not block: bit 0 is not set.
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
	/* Work already queued: this iteration polls with timeout 0 and dispatches, so nobody
	 * needs to wake it. Bit 0 stays clear, and producers that queue more meanwhile write
	 * no eventfd (QEMU sets notify_me here anyway, and its aio_notify then kicks). */
	guint32 ready = __atomic_load_n(&r->w->ready, __ATOMIC_SEQ_CST);
	if (!(ready & CSHIM_READY_NOW)) {
		/* bit 0 set and CSHIM_KICK_SENT clear: the wait starts with no kick sent */
		guint32 old = __atomic_load_n(&r->w->waiting, __ATOMIC_RELAXED);
		while (!__atomic_compare_exchange_n(&r->w->waiting, &old, (old | 1) & ~CSHIM_KICK_SENT,
						    FALSE, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			;
		ready = __atomic_load_n(&r->w->ready, __ATOMIC_SEQ_CST);
	}
	reactor_arm(r, __atomic_load_n(&r->w->deadline, __ATOMIC_SEQ_CST));
	if (r->armed >= 0 && !r->timer_tag)
		r->timer_tag = g_source_add_unix_fd(s, r->timerfd, G_IO_IN);
	if (ready & CSHIM_READY_NOW) {
		*timeout = 0;
		return FALSE;
	}
	*timeout = ready & CSHIM_READY_IDLE ? IDLE_TIMEOUT_MS : -1;
	/* The loop may wait: the poll may spin on this reactor first (spin.h), once its
	 * context has the spinning poll. */
	if (!r->spin_tried) {
		r->spin_tried = 1;
		GMainContext *c = g_source_get_context(s);
		if (c && cshim_spin_install(c))
			r->spin_ctx = c;
	}
	cshim_spin_note(r->w);
	return FALSE;
}

/* GLib's check: clear bit 0 (and CSHIM_KICK_SENT), accept the notification and report
 * queued work. Any of the
 * source's unix fds polled readable makes it ready too: g_main_context_check sees to
 * that.
 *
 * Clearing bit 0 is a sequentially consistent read-modify-write: the full barrier that
 * keeps the reads of queued work below from moving above the accept. The accept then
 * writes kicked only when a Notify set it: the usual iteration, woken by an fd or a
 * timer, costs one locked instruction here, not two. A Notify that sets it after the
 * load is not lost: it stays set (the next blocking Poll returns at once, as after any
 * Notify), and its work is seen through the ready word, read after the barrier. */
static gboolean reactor_check(GSource *s)
{
	cshim_reactor *r = REACTOR(s);
	__atomic_fetch_and(&r->w->waiting, ~(1u | CSHIM_KICK_SENT), __ATOMIC_SEQ_CST);
	cshim_spin_done(); /* the poll that prepare's note was for is over */
	if (__atomic_load_n(&r->w->kicked, __ATOMIC_SEQ_CST))
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
		cshim_reactor_kicked(r);
	/* acquire: pairs with cshim_reactor_switch. A switch after GLib's poll costs one
	 * iteration's events; both backends are level-triggered, so they come again. */
	__atomic_load_n(&r->fdmon, __ATOMIC_ACQUIRE)->dispatch(r);
	return cshimSourceDispatch(r->src.handle);
}

static void reactor_finalize(GSource *s)
{
	cshim_reactor *r = REACTOR(s);
	uintptr_t h = r->src.handle;
	r->src.handle = 0;
	if (h)
		cshimSourceFinalize(h); /* the Go side stops kicks, then closes kickfd */
	/* both backends: Wait may have been in ppoll on the poll backend's array when
	 * another thread switched to epoll, so that state outlives the switch */
	cshim_fdmon_poll.finalize(r);
	cshim_fdmon_epoll.finalize(r);
	close(r->timerfd);
	g_free(r->ev);
	g_mutex_clear(&r->lock);
}

GSourceFuncs cshim_reactor_funcs = {reactor_prepare, reactor_check, reactor_dispatch,
				    reactor_finalize, NULL, NULL};

cshim_reactor_words *cshim_reactor_words_new(void)
{
	cshim_reactor_words *w = g_new0(cshim_reactor_words, 1);
	w->deadline = -1;
	w->refs = 1;
	return w;
}

void cshim_reactor_words_ref(cshim_reactor_words *w) { __atomic_fetch_add(&w->refs, 1, __ATOMIC_RELAXED); }

void cshim_reactor_words_free(cshim_reactor_words *w)
{
	if (__atomic_sub_fetch(&w->refs, 1, __ATOMIC_ACQ_REL) == 0)
		g_free(w);
}

void cshim_reactor_spin_detach(cshim_reactor *r)
{
	GMainContext *c = r->spin_ctx;
	r->spin_ctx = NULL;
	/* an attached source keeps its context alive; a destroyed one may not have */
	if (c && !g_source_is_destroyed(&r->src.base))
		cshim_spin_uninstall(c);
}

cshim_reactor *cshim_reactor_new(uintptr_t handle, cshim_reactor_words *w)
{
	int kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	int epfd = kickfd < 0 || timerfd < 0 ? -1 : cshim_fdmon_epoll_new(kickfd, timerfd);
	if (epfd < 0) {
		int err = errno;
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
	r->fdmon = &cshim_fdmon_poll;
	/* GLib polls the kick eventfd itself, and the epoll fd only once fds move into it:
	 * polling an epoll fd costs the kernel more than an eventfd. */
	r->kick_tag = g_source_add_unix_fd(s, kickfd, G_IO_IN);
	return r;
}

/* Both backends wait for a deadline on the timerfd, which they poll with the other fds,
 * rather than with a ppoll or epoll_wait timeout: the kernel gives a poll timeout a slack
 * of 0.1% of its length whatever the thread's timer slack (select_estimate_accuracy),
 * 1.5 µs on a 1.5 ms wait, and a timerfd none, so a timer runs as close to its expire
 * time as a bare timerfd wait allows (QEMU's aio_poll waits timerlistgroup_deadline_ns in
 * ns too). The timerfd keeps the deadline when something else ends the wait: the next
 * wait for the same timer, the usual case, makes no timerfd_settime. An endless wait
 * disarms it, so a deadline that no longer applies cannot end it. */
int cshim_reactor_wait_begin(cshim_reactor *r, gint64 deadline_ns)
{
	r->nev = 0;
	if (deadline_ns != 0) {
		cshim_timerslack_init(); /* a thread that blocks: QEMU's init_clocks() */
		int err = reactor_arm(r, deadline_ns < 0 ? -1 : deadline_ns);
		if (err)
			return err; /* no deadline would end the wait */
	}
	g_mutex_lock(&r->lock);
	r->wait.fdmon = r->fdmon; /* a switch during the wait leaves the harvest to it */
	r->fdmon->wait_begin(r);  /* it unlocks */
	return 0;
}

void cshim_reactor_wait_end(cshim_reactor *r, int ready) { r->wait.fdmon->wait_end(r, ready); }

int cshim_reactor_wait(cshim_reactor *r, gint64 deadline_ns)
{
	int err = cshim_reactor_wait_begin(r, deadline_ns), n;
	if (err)
		return err;
	int timeout_ms = deadline_ns != 0 ? -1 : 0;
	cshim_wait *w = &r->wait;
	do
		n = w->epfd < 0 ? poll(w->buf, w->n, timeout_ms)
				: epoll_wait(w->epfd, w->buf, w->n, timeout_ms);
	while (n < 0 && errno == EINTR); /* nothing to recompute: no timeout is counting */
	if (n < 0)
		return -errno;
	cshim_reactor_wait_end(r, n);
	return 0;
}

/* Watch, change or forget fd through the current backend. */
static int reactor_ctl(cshim_reactor *r, int op, int fd, guint32 events, guint32 tag)
{
	int err;
	g_mutex_lock(&r->lock);
	if (op == EPOLL_CTL_ADD && g_source_is_destroyed(&r->src.base))
		err = -EBADF; /* it will never poll again */
	else
		err = r->fdmon->ctl(r, op, fd, events, tag);
	g_mutex_unlock(&r->lock);
	return err;
}

int cshim_reactor_add(cshim_reactor *r, int fd, guint32 events, guint32 tag)
{
	return reactor_ctl(r, EPOLL_CTL_ADD, fd, events, tag);
}

int cshim_reactor_mod(cshim_reactor *r, int fd, guint32 events, guint32 tag)
{
	return reactor_ctl(r, EPOLL_CTL_MOD, fd, events, tag);
}

int cshim_reactor_del(cshim_reactor *r, int fd) { return reactor_ctl(r, EPOLL_CTL_DEL, fd, 0, 0); }

int cshim_reactor_epoll_mode(cshim_reactor *r)
{
	g_mutex_lock(&r->lock);
	int m = r->fdmon == &cshim_fdmon_epoll;
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
