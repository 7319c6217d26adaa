/* The poll backend (QEMU's util/fdmon-poll.c): each registered fd is a unix fd of the
 * reactor's GSource, so GLib's own poll reports its revents and dispatch reads them with
 * no extra syscall. Wait ppolls a copy of the registry. At CSHIM_EPOLL_THRESHOLD fds it
 * hands every fd to the epoll backend, for good. */
#define _GNU_SOURCE
#include "fdmon.h"

#include <errno.h>

static int reg_find(cshim_reactor *r, int fd)
{
	for (int i = 0; i < r->poll.nreg; i++)
		if (r->poll.reg[i].fd == fd)
			return i;
	return -1;
}

/* poll(2) takes any fd; epoll_ctl gives the errors that a closed or unpollable fd must
 * get, so try it on the reactor's epoll instance, which watches no registered fd yet. */
static int probe(cshim_reactor *r, int fd, guint32 events)
{
	struct epoll_event ev = {.events = events};
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	epoll_ctl(r->epfd, EPOLL_CTL_DEL, fd, &ev);
	return 0;
}

/* From here on one epoll fd costs GLib's poll less than many fds: hand every fd to the
 * epoll backend, then fd itself (QEMU's fdmon_epoll_try_upgrade). */
static int upgrade(cshim_reactor *r, int fd, guint32 events, guint32 tag)
{
	const cshim_fdmon_ops *to = &cshim_fdmon_epoll;
	for (int i = 0; i < r->poll.nreg; i++) {
		cshim_reg *g = &r->poll.reg[i];
		to->ctl(r, EPOLL_CTL_ADD, g->fd, g->events, g->tag);
		g_source_remove_unix_fd(&r->src.base, g->fdtag);
	}
	g_free(r->poll.reg);
	r->poll.reg = NULL;
	r->poll.regcap = 0;
	__atomic_store_n(&r->poll.nreg, 0, __ATOMIC_RELAXED);
	cshim_reactor_switch(r, to);
	return to->ctl(r, EPOLL_CTL_ADD, fd, events, tag);
}

static int fdmon_poll_ctl(cshim_reactor *r, int op, int fd, guint32 events, guint32 tag)
{
	int i = reg_find(r, fd), err;
	switch (op) {
	case EPOLL_CTL_ADD:
		if (i >= 0)
			return -EEXIST;
		if ((err = probe(r, fd, events)) < 0)
			return err;
		if (r->poll.nreg + 1 >= CSHIM_EPOLL_THRESHOLD)
			return upgrade(r, fd, events, tag);
		if (r->poll.nreg == r->poll.regcap) {
			r->poll.regcap = r->poll.regcap ? r->poll.regcap * 2 : 8;
			r->poll.reg = g_renew(cshim_reg, r->poll.reg, r->poll.regcap);
		}
		r->poll.reg[r->poll.nreg] = (cshim_reg){
			.fd = fd,
			.events = events,
			.tag = tag,
			.fdtag = g_source_add_unix_fd(&r->src.base, fd, (GIOCondition)events),
		};
		/* dispatch reads the count unlocked, to skip the lock when it is 0 */
		__atomic_store_n(&r->poll.nreg, r->poll.nreg + 1, __ATOMIC_RELAXED);
		return 0;
	case EPOLL_CTL_MOD:
		if (i < 0)
			return -ENOENT;
		r->poll.reg[i].events = events;
		r->poll.reg[i].tag = tag;
		g_source_modify_unix_fd(&r->src.base, r->poll.reg[i].fdtag, (GIOCondition)events);
		return 0;
	case EPOLL_CTL_DEL:
		if (i < 0)
			return -ENOENT;
		g_source_remove_unix_fd(&r->src.base, r->poll.reg[i].fdtag);
		r->poll.reg[i] = r->poll.reg[r->poll.nreg - 1];
		__atomic_store_n(&r->poll.nreg, r->poll.nreg - 1, __ATOMIC_RELAXED);
		return 0;
	}
	return -EINVAL;
}

enum { KICK, TIMER, FIRST_REG }; /* the entries of Wait's pollfd array */
G_STATIC_ASSERT(TIMER == CSHIM_POLL_TIMER);
/* ppoll takes the GPollFD array: the same layout as struct pollfd */
G_STATIC_ASSERT(sizeof(GPollFD) == sizeof(struct pollfd));
G_STATIC_ASSERT(G_STRUCT_OFFSET(GPollFD, revents) == offsetof(struct pollfd, revents));

/* One ppoll over the kick and timer fds and every fd, with no timeout (the timerfd holds
 * the deadline): polling the epoll fd instead would cost the kernel more, and a wakeup an
 * epoll_wait more. */
static void fdmon_poll_wait_begin(cshim_reactor *r)
{
	int n = r->poll.nreg + FIRST_REG;
	if (n > r->poll.pfdcap) {
		r->poll.pfdcap = n * 2;
		r->poll.pfds = g_renew(GPollFD, r->poll.pfds, r->poll.pfdcap);
		r->poll.ptags = g_renew(guint32, r->poll.ptags, r->poll.pfdcap);
	}
	GPollFD *pfds = r->poll.pfds;
	pfds[KICK] = (GPollFD){.fd = r->kickfd, .events = G_IO_IN};
	pfds[TIMER] = (GPollFD){.fd = r->timerfd, .events = G_IO_IN};
	for (int i = 0; i < r->poll.nreg; i++) {
		pfds[FIRST_REG + i] = (GPollFD){.fd = r->poll.reg[i].fd, .events = r->poll.reg[i].events};
		r->poll.ptags[FIRST_REG + i] = r->poll.reg[i].tag;
	}
	r->wait.buf = pfds;
	r->wait.n = n;
	r->wait.epfd = -1;
	/* From here the registry may change, even switch backend: an fd removed meanwhile may
	 * still report (the Go side ignores it), one added is polled from the next wait. */
	g_mutex_unlock(&r->lock);
}

static void fdmon_poll_wait_end(cshim_reactor *r, int ready)
{
	GPollFD *pfds = r->poll.pfds;
	if (ready == 0)
		return;
	for (int i = FIRST_REG; i < r->wait.n; i++)
		if (pfds[i].revents)
			cshim_reactor_push(r, pfds[i].fd, pfds[i].revents, r->poll.ptags[i]);
	if (pfds[KICK].revents)
		cshim_reactor_kicked(r);
	/* the timerfd's expiry needs nothing: see reactor_arm */
}

/* GLib polled each fd itself; its revents cost no syscall to read. An fd being added
 * right now may have been polled before its count is visible here: poll is
 * level-triggered, so it is reported again next iteration. */
static void fdmon_poll_dispatch(cshim_reactor *r)
{
	if (__atomic_load_n(&r->poll.nreg, __ATOMIC_RELAXED) == 0)
		return; /* none registered: skip the lock */
	g_mutex_lock(&r->lock);
	for (int i = 0; i < r->poll.nreg; i++) {
		GIOCondition rev = g_source_query_unix_fd(&r->src.base, r->poll.reg[i].fdtag);
		if (rev)
			cshim_reactor_push(r, r->poll.reg[i].fd, rev, r->poll.reg[i].tag);
	}
	g_mutex_unlock(&r->lock);
}

static void fdmon_poll_enable(cshim_reactor *r)
{
	(void)r; /* the first backend: the reactor starts on it, no switch leads here */
}

static void fdmon_poll_finalize(cshim_reactor *r)
{
	g_free(r->poll.reg);
	g_free(r->poll.pfds);
	g_free(r->poll.ptags);
}

const cshim_fdmon_ops cshim_fdmon_poll = {
	.ctl = fdmon_poll_ctl,
	.wait_begin = fdmon_poll_wait_begin,
	.wait_end = fdmon_poll_wait_end,
	.dispatch = fdmon_poll_dispatch,
	.enable = fdmon_poll_enable,
	.finalize = fdmon_poll_finalize,
};
