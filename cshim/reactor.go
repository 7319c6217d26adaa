package cshim

/*
#include "reactor.h"
#include "spin.h"
*/
import "C"

import (
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

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

// KickSent is a bit of Waiting: a Notify wrote the kick eventfd during the GLib wait that
// bit 0 marks (reactor.h's CSHIM_KICK_SENT).
const KickSent = C.CSHIM_KICK_SENT

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

// SpinDetach undoes what the reactor's prepare did to its GMainContext: the first
// prepare makes the context's poll function spin briefly on glibaio reactors before it
// blocks, if the context still had GLib's own (spin.h); the last reactor detached puts
// GLib's back. Call it before destroying the source, on the thread that drives it or
// once nothing does.
func (re *Reactor) SpinDetach() {
	if re.r != nil {
		C.cshim_reactor_spin_detach(re.r)
	}
}

// SpinBudget returns how long the calling thread's polls now spin before they block, in
// ns (0: they do not); SpinHits counts the spins that found work on it (tests).
func SpinBudget() int64 { return int64(C.cshim_spin_budget()) }

// SpinMax returns the longest spin, in ns (0: spinning is off, the default). The
// environment variable GLIBAIO_POLL_MAX_NS sets it, read once (0 to 1000000).
func SpinMax() int64 { return int64(C.cshim_spin_max_ns()) }

// SetSpinMax sets the longest spin, as GLIBAIO_POLL_MAX_NS would (tests). A reactor
// decides at its first prepare whether its context gets the spinning poll function.
func SetSpinMax(ns int64) { C.cshim_spin_set_max(C.gint64(ns)) }

// SetSpinBudget sets the calling thread's spin budget (tests; at most SpinMax). The
// polls that follow adapt it as usual.
func SetSpinBudget(ns int64) { C.cshim_spin_set_budget(C.gint64(ns)) }

// SpinHits: see SpinBudget.
func SpinHits() uint64 { return uint64(C.cshim_spin_hits()) }

// SpinInstalled reports whether the GMainContext ctx polls through the spinning poll
// function (tests).
func SpinInstalled(ctx unsafe.Pointer) bool {
	return C.cshim_spin_installed((*C.GMainContext)(ctx)) != 0
}

// SetForeignPollFunc gives the GMainContext ctx a poll function of its own, which calls
// g_poll, as a program may (tests).
func SetForeignPollFunc(ctx unsafe.Pointer) { C.cshim_spin_set_foreign_poll((*C.GMainContext)(ctx)) }

// Finalized forgets the C source; call it from the Finalize of the reactor's GSource.
func (re *Reactor) Finalized() { re.r = nil }

// Wait blocks for at most timeoutNS (< 0: no limit, 0: not at all), retrying EINTR,
// and returns the harvested events. They stay valid until the next Wait or dispatch on
// this reactor. The timeout counts from the call, not from when C starts to wait, so the
// crossing into C (which may wake the runtime's sysmon thread) does not end the wait
// later. A blocking Wait first sets the thread's timer slack to 1 ns (InitTimerSlack).
// Loop thread only.
func (re *Reactor) Wait(timeoutNS int64) ([]Event, error) {
	deadline := timeoutNS
	if timeoutNS > 0 {
		deadline = watch.Nanotime() + timeoutNS
	}
	return re.WaitUntil(deadline)
}

// WaitUntil is Wait with an absolute deadline: it blocks until deadlineNS
// (CLOCK_MONOTONIC, as watch.Nanotime; a time already past polls once), until an event
// (deadlineNS < 0), or not at all (0). The deadline is the reactor's timerfd, polled
// with the fds, not a poll timeout, which the kernel would end up to 0.1% of its length
// late (see cshim_reactor_wait). The timerfd keeps a deadline that something else beat,
// so waiting again for the same deadline costs no timerfd_settime. Loop thread only.
//
// A wait that does not block is one call into C. One that blocks makes its ppoll or
// epoll_pwait from Go, between a call into C that sets it up and one that harvests it:
// the thread wakes into Go's return from a syscall, which on the development VM costs
// 0.5 to 1 µs less than the return from a blocking cgo call, and every wakeup pays it
// before its callbacks run. A wakeup by the deadline alone, a timer's, is harvested here
// without a second crossing into C.
func (re *Reactor) WaitUntil(deadlineNS int64) ([]Event, error) {
	if re.r == nil {
		return nil, syscall.EBADF
	}
	if deadlineNS == 0 {
		if err := errno(C.cshim_reactor_wait(re.r, 0)); err != nil {
			return nil, err
		}
		return re.Events(), nil
	}
	if err := errno(C.cshim_reactor_wait_begin(re.r, C.gint64(deadlineNS))); err != nil {
		return nil, err
	}
	w := &re.r.wait
	var n uintptr
	var e syscall.Errno
	for {
		if w.epfd < 0 {
			n, _, e = unix.Syscall6(unix.SYS_PPOLL, uintptr(w.buf), uintptr(w.n), 0, 0, 0, 0)
		} else {
			n, _, e = unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(w.epfd), uintptr(w.buf), uintptr(w.n), ^uintptr(0), 0, 0)
		}
		if e != syscall.EINTR { // a Go runtime signal: no timeout is counting, wait again
			break
		}
	}
	if e != 0 {
		return nil, e
	}
	if n == 1 && re.timerOnly(w) {
		// The deadline and nothing else: nothing to harvest (the timerfd is not read, see
		// reactor_arm), so no crossing into C between the wakeup and the timer's callback.
		return nil, nil
	}
	C.cshim_reactor_wait_end(re.r, C.int(n))
	return re.Events(), nil
}

// timerOnly reports whether the one ready entry of wait w is the timerfd: on the poll
// backend, whether the timerfd's pollfd has revents; on epoll, whether the event's data
// is the timerfd's (fd in the low half, tag 0: fdmon_epoll.c's EPDATA).
func (re *Reactor) timerOnly(w *C.cshim_wait) bool {
	if w.epfd < 0 {
		return *(*int16)(unsafe.Add(unsafe.Pointer(w.buf), C.CSHIM_POLL_TIMER*C.CSHIM_POLLFD_SIZE+C.CSHIM_POLLFD_REVENTS)) != 0
	}
	return *(*uint64)(unsafe.Add(unsafe.Pointer(w.buf), C.CSHIM_EPOLL_DATA)) == uint64(re.r.timerfd)
}

// Events returns the events the last Wait or dispatch harvested. Loop thread only.
func (re *Reactor) Events() []Event {
	if re.r == nil || re.r.nev == 0 {
		return nil
	}
	return unsafe.Slice((*Event)(unsafe.Pointer(re.r.ev)), int(re.r.nev))
}
