/* The reactor: a GSource that multiplexes any number of fds through one epoll instance
 * and wakes with a lock-free handshake, so that an event loop written in Go (such as
 * glibaio's AioContext) costs GLib one fd and no crossing into Go in prepare or check.
 *
 * GLib polls only the epoll fd. The epoll set also holds a kick eventfd (the wakeup of
 * the handshake) and a timerfd armed at the loop's nearest deadline, so timers are not
 * rounded up to GLib's millisecond timeout. Both are drained here and never reported to
 * Go. Dispatch harvests the epoll set with a zero timeout and crosses into Go once.
 */
#ifndef GLIBAIO_CSHIM_REACTOR_H
#define GLIBAIO_CSHIM_REACTOR_H

#include "cshim.h"

/* ready bits */
#define CSHIM_READY_NOW 1u  /* work is queued: dispatch without blocking */
#define CSHIM_READY_IDLE 2u /* only idle work is queued: dispatch within 10 ms */

/* Words shared with Go, which reads and writes them with sync/atomic. They live in their
 * own allocation, freed by the Go side once it can no longer touch them, so a goroutine
 * that races with the source's finalization still writes valid memory. */
typedef struct {
	guint32 waiting; /* bit 0: between GSource prepare and check; +2 per blocking Wait */
	guint32 kicked;  /* a Notify happened since the last accept */
	guint32 ready;   /* CSHIM_READY_* */
	guint32 closed;  /* set once: no more kicks */
	guint32 kickers; /* goroutines between their closed check and their kick write */
	guint32 pad;
	gint64 deadline; /* nearest timer, absolute CLOCK_MONOTONIC ns; -1: none */
} cshim_reactor_words;

typedef struct {
	gint32 fd;
	guint32 events; /* EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, ... */
} cshim_event;

typedef struct {
	cshim_source src; /* handle: the Go dispatch, as for any Go-defined source */
	cshim_reactor_words *w;
	int epfd, kickfd, timerfd;
	gpointer epfd_tag;
	gint64 armed; /* the deadline the timerfd holds; loop thread only */
	cshim_event *ev;
	int nev, cap;
} cshim_reactor;

/* Creates the reactor source with one reference, or NULL with errno set. */
cshim_reactor *cshim_reactor_new(uintptr_t handle, cshim_reactor_words *w);
cshim_reactor_words *cshim_reactor_words_new(void);
void cshim_reactor_words_free(cshim_reactor_words *w);
/* Blocks (timeout_ns < 0: until an event; 0: not at all) and harvests the epoll set
 * into r->ev. Returns the number of events, or -errno. */
int cshim_reactor_wait(cshim_reactor *r, gint64 timeout_ns);
/* Writes the kick eventfd. */
int cshim_reactor_kick(int kickfd);

#endif
