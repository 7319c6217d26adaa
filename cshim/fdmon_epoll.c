/* The epoll backend (QEMU's util/fdmon-epoll.c): every fd sits in the reactor's epoll
 * instance, so GLib polls one fd however many there are, and dispatch harvests them
 * with epoll_wait(0). The kick and timer fds are in it from the start, for Wait. */
#define _GNU_SOURCE
#include "fdmon.h"

#include <errno.h>
#include <unistd.h>

/* epoll data: the fd in the low 32 bits, the registration tag in the high ones */
#define EPDATA(fd, tag) (((guint64)(tag) << 32) | (guint32)(fd))
#define EPFD(u) ((int)(gint32)(guint32)(u))
#define EPTAG(u) ((guint32)((u) >> 32))

static int epctl(int epfd, int op, int fd, guint32 events, guint32 tag)
{
	struct epoll_event ev = {.events = events, .data.u64 = EPDATA(fd, tag)};
	return epoll_ctl(epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int cshim_fdmon_epoll_new(int kickfd, int timerfd)
{
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		return -1;
	int err = epctl(epfd, EPOLL_CTL_ADD, kickfd, EPOLLIN, 0);
	if (!err)
		err = epctl(epfd, EPOLL_CTL_ADD, timerfd, EPOLLIN, 0);
	if (err) {
		close(epfd);
		errno = -err;
		return -1;
	}
	return epfd;
}

#define NEV 128 /* events per epoll_wait */

/* Appends the n events epoll_wait returned into r->epoll.ev. */
static void harvest(cshim_reactor *r, int n)
{
	struct epoll_event *ev = r->epoll.ev;
	for (int i = 0; i < n; i++) {
		int fd = EPFD(ev[i].data.u64);
		if (fd == r->kickfd)
			cshim_reactor_kicked(r);
		else if (fd != r->timerfd) /* its expiry needs nothing: see reactor_arm */
			cshim_reactor_push(r, fd, ev[i].events, EPTAG(ev[i].data.u64));
	}
}

static int fdmon_epoll_ctl(cshim_reactor *r, int op, int fd, guint32 events, guint32 tag)
{
	return epctl(r->epfd, op, fd, events, tag);
}

/* The deadline is the timerfd, which is in the epoll set: ns precision. */
static void fdmon_epoll_wait_begin(cshim_reactor *r)
{
	g_mutex_unlock(&r->lock); /* nothing here reads the registry: the kernel has it */
	r->wait.buf = r->epoll.ev;
	r->wait.n = NEV;
	r->wait.epfd = r->epfd;
}

static void fdmon_epoll_wait_end(cshim_reactor *r, int ready) { harvest(r, ready); }

/* GLib polled the epoll fd; harvest only if it was readable. */
static void fdmon_epoll_dispatch(cshim_reactor *r)
{
	if (!g_source_query_unix_fd(&r->src.base, r->epoll.tag))
		return;
	int n;
	while ((n = epoll_wait(r->epfd, r->epoll.ev, NEV, 0)) < 0 && errno == EINTR)
		;
	if (n > 0)
		harvest(r, n);
}

static void fdmon_epoll_enable(cshim_reactor *r)
{
	r->epoll.ev = g_new(struct epoll_event, NEV);
	r->epoll.tag = g_source_add_unix_fd(&r->src.base, r->epfd, G_IO_IN);
}

static void fdmon_epoll_finalize(cshim_reactor *r)
{
	close(r->epfd);
	g_free(r->epoll.ev);
}

const cshim_fdmon_ops cshim_fdmon_epoll = {
	.ctl = fdmon_epoll_ctl,
	.wait_begin = fdmon_epoll_wait_begin,
	.wait_end = fdmon_epoll_wait_end,
	.dispatch = fdmon_epoll_dispatch,
	.enable = fdmon_epoll_enable,
	.finalize = fdmon_epoll_finalize,
};
