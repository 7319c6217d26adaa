/* fd monitors: the reactor's backends, one file each, behind one ops table, as QEMU's
 * FDMonOps (util/fdmon-poll.c, util/fdmon-epoll.c). Internal to the reactor.
 *
 * A backend watches the fds registered with the reactor and appends their events to r->ev
 * (cshim_reactor_push), for the GSource dispatch after GLib's poll and for Wait without
 * GLib. The kick eventfd and the timerfd are the reactor's: a backend's wait polls them
 * too, hands the kick to cshim_reactor_kicked and leaves the timerfd's expiry for its
 * next arm to clear (reactor.c), never putting them in r->ev.
 *
 * A reactor starts on cshim_fdmon_poll and moves to cshim_fdmon_epoll for good once
 * CSHIM_EPOLL_THRESHOLD fds are watched. r->fdmon changes only in cshim_reactor_switch,
 * under r->lock; the loop thread's dispatch reads it without the lock.
 */
#ifndef GLIBAIO_CSHIM_FDMON_H
#define GLIBAIO_CSHIM_FDMON_H

#include "reactor.h"

#include <sys/epoll.h>

struct cshim_fdmon_ops {
	/* Watch (EPOLL_CTL_ADD), change (MOD) or forget (DEL) fd for events (EPOLLIN |
	 * EPOLLOUT), tagging its events with tag. 0 or -errno, as epoll_ctl: EBADF for a
	 * closed fd, EPERM for an unpollable one, EEXIST, ENOENT. Any thread; r->lock held. */
	int (*ctl)(cshim_reactor *r, int op, int fd, guint32 events, guint32 tag);
	/* Sets up a wait on the kick and timer fds and every watched fd in r->wait (see
	 * cshim_wait). No backend waits with a timeout: the wait's deadline is the timerfd,
	 * armed by cshim_reactor_wait_begin. Loop thread; called with r->lock held, it
	 * unlocks. */
	void (*wait_begin)(cshim_reactor *r);
	/* Appends the events of the ready entries of r->wait, which it set up. Loop thread;
	 * r->lock not held. */
	void (*wait_end)(cshim_reactor *r, int ready);
	/* GSource dispatch, after GLib's poll: appends the events GLib saw, without blocking.
	 * Loop thread; r->lock not held. */
	void (*dispatch)(cshim_reactor *r);
	/* Becoming current: makes GLib poll what dispatch reads. Any thread; r->lock held. */
	void (*enable)(cshim_reactor *r);
	/* Frees the backend's state, current or not. GSource finalize: no other user. */
	void (*finalize)(cshim_reactor *r);
};

extern const cshim_fdmon_ops cshim_fdmon_poll;  /* fdmon_poll.c */
extern const cshim_fdmon_ops cshim_fdmon_epoll; /* fdmon_epoll.c */

/* QEMU's fdmon_epoll_setup: the epoll instance with the kick and timer fds in it, made
 * with the reactor so that the switch cannot fail for want of it (the poll backend also
 * probes fds with it). The fd, or -1 with errno set. */
int cshim_fdmon_epoll_new(int kickfd, int timerfd);

/* Shared by the backends; reactor.c. */
void cshim_reactor_push(cshim_reactor *r, int fd, guint32 events, guint32 tag);
void cshim_reactor_kicked(cshim_reactor *r);
void cshim_reactor_switch(cshim_reactor *r, const cshim_fdmon_ops *to);

#endif
