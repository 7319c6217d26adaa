package cshim

/*
#include "reactor.h"
*/
import "C"

import (
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/glibaio/glibaio/internal/watch"
)

// Ready bits of a Reactor: what prepare and check report without crossing into Go.
const (
	ReadyNow  = C.CSHIM_READY_NOW  // work is queued: dispatch without blocking
	ReadyIdle = C.CSHIM_READY_IDLE // only idle work is queued: dispatch within 10 ms
)

// Event is one fd's readiness harvested by the reactor's backend (poll or epoll).
type Event struct {
	FD     int32
	Events uint32 // EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, ...
	Tag    uint32 // the tag given to Add or Modify for the registration that reported it
}

// Reactor is the Go side of a reactor source (see reactor.h): a GSource that watches
// any number of fds and keeps the state its prepare and check need in C memory. GLib
// polls its kick eventfd, its timerfd once a timer was first armed, and each registered
// fd on the poll backend or the one epoll fd on the epoll backend. Its words are read
// and written with sync/atomic. The words stay valid until the Reactor itself is
// garbage: runtime.AddCleanup frees them, never while any goroutine can reach them.
type Reactor struct {
	r       *C.cshim_reactor // nil once finalized; loop thread only
	w       *C.cshim_reactor_words
	kickfd  int
	gsource unsafe.Pointer
}

// NewReactor creates a reactor source (one reference, owned by the caller) whose
// dispatch calls src.Dispatch; src.Prepare and src.Check are ignored (they are in C).
func NewReactor(src *Source) (*Reactor, error) {
	w := C.cshim_reactor_words_new()
	key := newSourceKey(src)
	r, err := C.cshim_reactor_new(C.uintptr_t(key), w)
	if r == nil {
		releaseSourceKey(key)
		C.cshim_reactor_words_free(w)
		return nil, err
	}
	re := &Reactor{r: r, w: w, kickfd: int(r.kickfd), gsource: unsafe.Pointer(r)}
	runtime.AddCleanup(re, func(w *C.cshim_reactor_words) { C.cshim_reactor_words_free(w) }, w)
	return re, nil
}

// GSource returns the reactor's GSource*.
func (re *Reactor) GSource() unsafe.Pointer { return re.gsource }

// NVAL is the event bit for an fd that was closed behind the reactor's back (POLLNVAL);
// only the poll backend can see it.
const NVAL = C.CSHIM_NVAL

func errno(r C.int) error {
	if r < 0 {
		return syscall.Errno(-r)
	}
	return nil
}

// Add watches fd for events (EPOLLIN | EPOLLOUT; ERR and HUP always). It returns
// EBADF for a closed fd, EPERM for one that cannot be polled (a regular file), EEXIST
// when fd is already watched. The caller must not race it with finalization.
func (re *Reactor) Add(fd int, events, tag uint32) error {
	return errno(C.cshim_reactor_add(re.r, C.int(fd), C.guint32(events), C.guint32(tag)))
}

// Modify changes the events and tag of fd's registration (ENOENT if not watched).
func (re *Reactor) Modify(fd int, events, tag uint32) error {
	return errno(C.cshim_reactor_mod(re.r, C.int(fd), C.guint32(events), C.guint32(tag)))
}

// Delete stops watching fd (ENOENT if not watched; in epoll mode, EBADF once closed).
func (re *Reactor) Delete(fd int) error { return errno(C.cshim_reactor_del(re.r, C.int(fd))) }

// EpollMode reports whether the reactor moved its fds into epoll.
func (re *Reactor) EpollMode() bool { return C.cshim_reactor_epoll_mode(re.r) != 0 }

// Waiting is QEMU's notify_me: bit 0 is set by the GSource prepare and cleared by
// check; each blocking Wait adds 2 around its wait.
func (re *Reactor) Waiting() *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&re.w.waiting)) }

// Kicked is QEMU's notified: set by Notify, cleared by accept.
func (re *Reactor) Kicked() *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&re.w.kicked)) }

// Ready holds the ReadyNow and ReadyIdle bits.
func (re *Reactor) Ready() *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&re.w.ready)) }

// Deadline holds the nearest deadline, absolute CLOCK_MONOTONIC ns, or -1.
func (re *Reactor) Deadline() *atomic.Int64 { return (*atomic.Int64)(unsafe.Pointer(&re.w.deadline)) }

// Kick writes the kick eventfd, waking a blocked prepare/poll or Wait. It does nothing
// after Shutdown, and never writes an fd that Shutdown has closed.
func (re *Reactor) Kick() {
	kickers := (*atomic.Uint32)(unsafe.Pointer(&re.w.kickers))
	closed := (*atomic.Uint32)(unsafe.Pointer(&re.w.closed))
	kickers.Add(1) // Dekker with Shutdown: it sets closed, then waits for kickers == 0
	if closed.Load() == 0 {
		C.cshim_reactor_kick(C.int(re.kickfd))
	}
	kickers.Add(^uint32(0))
	runtime.KeepAlive(re) // the words live as long as re: keep it until they are done with
}

// Shutdown stops kicks and closes the kick eventfd once no goroutine is in the middle of
// one. The finalize of the reactor's GSource must call it.
func (re *Reactor) Shutdown() {
	closed := (*atomic.Uint32)(unsafe.Pointer(&re.w.closed))
	if closed.Swap(1) != 0 {
		return
	}
	kickers := (*atomic.Uint32)(unsafe.Pointer(&re.w.kickers))
	for kickers.Load() != 0 {
		runtime.Gosched()
	}
	syscall.Close(re.kickfd)
	runtime.KeepAlive(re)
}

// Finalized forgets the C source; call it from the Finalize of the reactor's GSource.
func (re *Reactor) Finalized() { re.r = nil }

// Wait blocks for at most timeoutNS (< 0: no limit, 0: not at all), retrying EINTR
// with the time that remains, and returns the harvested events. They stay valid until
// the next Wait or dispatch on this reactor. The timeout counts from the call, not from
// when C starts to wait, so the crossing into C (which may wake the runtime's sysmon
// thread) does not end the wait later. A blocking Wait first sets the thread's timer
// slack to 1 ns (InitTimerSlack). Loop thread only.
func (re *Reactor) Wait(timeoutNS int64) ([]Event, error) {
	var start int64
	if timeoutNS > 0 {
		start = watch.Nanotime() // the C side counts the timeout from here (cshim_reactor_wait)
	}
	return re.wait(timeoutNS, start)
}

// wait is Wait with a timeout that counts from startNS (CLOCK_MONOTONIC; 0: from now).
func (re *Reactor) wait(timeoutNS, startNS int64) ([]Event, error) {
	if re.r == nil {
		return nil, syscall.EBADF
	}
	if err := errno(C.cshim_reactor_wait(re.r, C.gint64(timeoutNS), C.gint64(startNS))); err != nil {
		return nil, err
	}
	return re.Events(), nil
}

// Events returns the events the last Wait or dispatch harvested. Loop thread only.
func (re *Reactor) Events() []Event {
	if re.r == nil || re.r.nev == 0 {
		return nil
	}
	return unsafe.Slice((*Event)(unsafe.Pointer(re.r.ev)), int(re.r.nev))
}
