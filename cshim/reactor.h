/* The reactor: a GSource that multiplexes any number of fds and wakes with a lock-free
 * handshake, so that an event loop written in Go (such as glibaio's AioContext) costs
 * GLib no crossing into Go in prepare or check, and one crossing per dispatch.
 *
 * Like QEMU's fd monitors it has two backends, one file each behind the ops table of
 * fdmon.h. Below CSHIM_EPOLL_THRESHOLD fds (fdmon_poll.c), each fd is a unix fd of the
 * GSource, so GLib's own poll reports its revents and dispatch reads them with no extra
 * syscall. At the threshold every fd moves into one epoll instance for good
 * (fdmon_epoll.c), so GLib polls one fd however many there are and dispatch harvests
 * them with epoll_wait(0).
 *
 * The reactor also owns a kick eventfd (the wakeup of the handshake) and a timerfd armed
 * at the loop's nearest deadline, so timers are not rounded up to GLib's millisecond
 * timeout. GLib polls the kick eventfd directly, the timerfd once a timer was first
 * armed, each registered fd in poll mode, and the epoll fd only in epoll mode; Wait
 * polls the same fds without GLib, with its own deadline on the timerfd and no timeout.
 * The kick and timer fds are handled inside the reactor (the kick eventfd read, the
 * timerfd left for its next arm to clear) and never reported to Go.
 */
#ifndef GLIBAIO_CSHIM_REACTOR_H
#define GLIBAIO_CSHIM_REACTOR_H

#include "cshim.h"

#include <poll.h>
#include <stddef.h>
#include <sys/epoll.h>

/* event bit for an fd closed while watched: POLLNVAL, which only the poll backend sees
 * (epoll silently forgets a closed fd) */
#define CSHIM_NVAL 0x20u

/* Bit 31 of waiting: since prepare set bit 0, a Notify has written the kick eventfd (or
 * is about to), and the eventfd cannot have been read since (it is read in dispatch,
 * after check). The Notifies of a GLib wait that see it write nothing: GLib's poll wakes
 * for the first one. Prepare and check clear it; blocking Waits do not use it. */
#define CSHIM_KICK_SENT 0x80000000u

/* ready bits */
#define CSHIM_READY_NOW 1u  /* work is queued: dispatch without blocking */
#define CSHIM_READY_IDLE 2u /* only idle work is queued: dispatch within 10 ms */

/* Words shared with Go, which reads and writes them with sync/atomic. They live in their
 * own allocation, freed once the Go side can no longer touch them and no poll spins on
 * them (spin.h), so a goroutine that races with the source's finalization still writes
 * valid memory. */
typedef struct {
	guint32 waiting; /* bit 0: between GSource prepare and check; +2 per blocking Wait;
			  * CSHIM_KICK_SENT */
	guint32 kicked;  /* a Notify happened since the last accept */
	guint32 ready;   /* CSHIM_READY_* */
	guint32 closed;  /* set once: no more kicks */
	guint32 kickers; /* goroutines between their closed check and their kick write */
	guint32 refs;    /* the Go side's reference, and a spinning poll's (spin.h) */
	gint64 deadline; /* nearest timer, absolute CLOCK_MONOTONIC ns; -1: none */
} cshim_reactor_words;

typedef struct {
	gint32 fd;
	guint32 events; /* EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, ... */
	guint32 tag;    /* the tag of the registration that reported it */
} cshim_event;

#define CSHIM_EPOLL_THRESHOLD 64 /* QEMU's EPOLL_ENABLE_THRESHOLD */

typedef struct {
	int fd;
	guint32 events;
	guint32 tag;     /* the caller's registration tag, reported with each event */
	gpointer fdtag;  /* g_source_add_unix_fd's */
} cshim_reg;

typedef struct cshim_fdmon_ops cshim_fdmon_ops; /* fdmon.h */

/* Where the Go side finds whether a wait's one ready entry is the timerfd (reactor.go's
 * timerOnly): the poll backend's entry for it, and an epoll_event's data. */
enum {
	CSHIM_POLL_TIMER = 1, /* fdmon_poll.c: kick, timer, then the registered fds */
	CSHIM_POLLFD_SIZE = sizeof(struct pollfd),
	CSHIM_POLLFD_REVENTS = offsetof(struct pollfd, revents),
	CSHIM_EPOLL_DATA = offsetof(struct epoll_event, data),
};

/* What a wait polls, set up by cshim_reactor_wait_begin: ppoll(buf, n, NULL, NULL) when
 * epfd < 0 (buf: struct pollfd[n]), else epoll_pwait(epfd, buf, n, -1, NULL) (buf:
 * struct epoll_event[n]). */
typedef struct {
	gpointer buf;
	int n, epfd;
	const cshim_fdmon_ops *fdmon; /* the backend that set it up harvests it */
} cshim_wait;

typedef struct {
	cshim_source src; /* handle: the Go dispatch, as for any Go-defined source */
	cshim_reactor_words *w;
	int kickfd, timerfd;
	int epfd;           /* the epoll instance, made with the reactor; holds kick and timer */
	gpointer kick_tag;  /* GLib polls the kick eventfd directly */
	gpointer timer_tag; /* and the timerfd once a timer was armed (loop thread) */
	GMainContext *spin_ctx; /* where prepare installed the spinning poll (spin.h) */
	int spin_tried;         /* prepare tried to (loop thread) */
	gint64 armed; /* the deadline the timerfd holds, -1 none; loop thread only */
	cshim_event *ev; /* the events of the last Wait or dispatch (loop thread) */
	int nev, cap;

	cshim_wait wait; /* the wait in progress (loop thread) */

	GMutex lock;     /* the backend and its registry: Go adds fds from any thread */
	const cshim_fdmon_ops *fdmon; /* the backend: poll, then epoll for good (fdmon.h) */

	struct {             /* fdmon_poll.c */
		cshim_reg *reg;  /* the registered fds (lock) */
		int nreg, regcap;
		GPollFD *pfds;   /* Wait's array (loop thread); outlives the switch */
		guint32 *ptags;  /* and the tags of its entries */
		int pfdcap;
	} poll;
	struct {             /* fdmon_epoll.c */
		gpointer tag;    /* GLib polls the epoll fd once it is the backend */
		struct epoll_event *ev; /* what epoll_wait returns (loop thread) */
	} epoll;
} cshim_reactor;

/* Creates the reactor source with one reference, or NULL with errno set. */
cshim_reactor *cshim_reactor_new(uintptr_t handle, cshim_reactor_words *w);
cshim_reactor_words *cshim_reactor_words_new(void);
/* Drops a reference to w (the Go side's, or a spinning poll's); the last one frees it. */
void cshim_reactor_words_free(cshim_reactor_words *w);
void cshim_reactor_words_ref(cshim_reactor_words *w);
/* Undoes the spinning poll's installation on the reactor's context (spin.h), if prepare
 * made it and the source is still attached: call it before destroying the source. */
void cshim_reactor_spin_detach(cshim_reactor *r);
/* Waits on the kick and timer fds and every watched fd, and harvests their events into
 * r->ev: until deadline_ns (absolute CLOCK_MONOTONIC ns; a time already past polls once
 * and returns), until an event (deadline_ns < 0), or not at all (0). The deadline is
 * waited for on the timerfd, not as a poll timeout (see reactor.c). Returns 0 or -errno.
 * A blocking wait first sets the thread's timer slack to 1 ns (cshim_timerslack_init). */
int cshim_reactor_wait(cshim_reactor *r, gint64 deadline_ns);
/* cshim_reactor_wait in two halves around the blocking syscall, which the caller makes
 * itself on r->wait, retrying EINTR: the Go side, whose return from a blocking syscall
 * costs less than its return from a blocking cgo call (reactor.go). _begin arms the
 * timerfd (a deadline as above, not 0) and fills r->wait; 0 or -errno. _end harvests the
 * ready entries the syscall returned (ready >= 0). */
int cshim_reactor_wait_begin(cshim_reactor *r, gint64 deadline_ns);
void cshim_reactor_wait_end(cshim_reactor *r, int ready);
/* Writes the kick eventfd. */
int cshim_reactor_kick(int kickfd);
/* Watch, change or forget fd (events: EPOLLIN | EPOLLOUT). tag comes back with every
 * event of this registration, so an event polled for a registration that has since
 * been replaced, or for an fd number that was closed and reused, can be told apart.
 * 0 or -errno: EBADF for a closed fd, EPERM for one that cannot be polled,
 * EEXIST/ENOENT as epoll_ctl. */
int cshim_reactor_add(cshim_reactor *r, int fd, guint32 events, guint32 tag);
int cshim_reactor_mod(cshim_reactor *r, int fd, guint32 events, guint32 tag);
int cshim_reactor_del(cshim_reactor *r, int fd);
int cshim_reactor_epoll_mode(cshim_reactor *r);

#endif
