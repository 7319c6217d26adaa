// Package reactor is the Go half of the reactor, the GSource under aiosource's
// AioContext: QEMU's notify_me/notified wake handshake over the words the C source
// (cshim) reads in prepare and check, and the fd registry of its poll and epoll
// backends. It is plumbing shared by glibaio's packages, not API.
package reactor

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/glibloop"
)

// Reactor is a GSource for event loops written in Go, such as aiosource's AioContext.
// It multiplexes any number of fds (see Add for its poll and epoll backends), and it
// implements QEMU's notify_me/notified wake handshake with
// its state in C memory, so GLib's prepare and check never cross into Go. Only dispatch
// does, once per iteration, with the fd events already harvested.
//
// The reactor also owns a kick eventfd (the handshake's wakeup) and a timerfd armed at
// the deadline set with SetDeadline, which gives timers nanosecond precision under any
// GLib driver (gtk_main included) instead of GLib's rounded-up milliseconds. GLib polls
// the kick eventfd, and the timerfd once a deadline was first set: each fd in GLib's
// poll set costs every iteration, so a loop without timers does not pay for it. Both
// are drained inside the reactor and never reported as events.
//
// The same fds can be waited for without GLib with Wait, from the thread that owns the
// loop. A Reactor holds one reference on its Source until Close.
type Reactor struct {
	c      *cshim.Reactor
	src    *glibloop.Source
	closed atomic.Bool
	kicks  atomic.Uint64
}

// Event is one fd's readiness: Events holds epoll bits (unix.EPOLLIN, ...).
type Event = cshim.Event

// ErrClosed is returned by Reactor methods after Close or finalization.
var ErrClosed = errors.New("reactor closed")

// New creates a reactor whose GSource calls dispatch with the harvested events (valid
// only during the call) whenever GLib dispatches it. finalize, if not nil, runs when
// GLib finalizes the source. The source has can_recurse set to FALSE, like any new
// source; set it as the loop requires. It fails with the errno of the eventfd, timerfd
// or epoll instance it could not make.
func New(dispatch func(events []Event), finalize func()) (*Reactor, error) {
	r := &Reactor{}
	cs := &cshim.Source{
		Dispatch: func() bool { dispatch(r.c.Events()); return true },
		Finalize: func() {
			r.c.Shutdown()
			r.c.Finalized()
			if finalize != nil {
				finalize()
			}
		},
		Describe: func() string { return fmt.Sprintf("reactor source %q", r.src.Name()) },
	}
	c, err := cshim.NewReactor(cs)
	if err != nil {
		return nil, err
	}
	r.c = c
	// The wrapper goes inert when GLib finalizes the source (glibloop.SourceFromNative).
	r.src = glibloop.SourceFromNative(c.GSource())
	return r, nil
}

// Source returns the reactor's GSource (the same one on every call).
func (r *Reactor) Source() *glibloop.Source { return r.src }

// alive reports whether the reactor's GSource has not been finalized.
func (r *Reactor) alive() bool { return r.src.Native() != nil }

// Add watches fd for events (unix.EPOLLIN, unix.EPOLLOUT; ERR and HUP are always
// reported). tag comes back in every Event of this registration: a loop that
// gives each registration its own tag can drop events polled before the registration
// was replaced, or for an fd number that was closed and reused since. It returns EBADF
// for a closed fd, EPERM for one that cannot be polled (a regular file) and EEXIST for
// one already watched.
//
// Like QEMU's fd monitors, a reactor starts with a poll backend: while fewer than 64 fds
// are watched, each is a unix fd of the GSource, which GLib polls itself, so a dispatch
// costs no extra syscall. Once 64 fds are watched it moves them all into its epoll
// instance for good (there is no way back below 64), and GLib polls the epoll fd instead
// of them, however many there are. Either way GLib also polls the kick eventfd, and the
// timerfd once a deadline was first set.
func (r *Reactor) Add(fd int, events, tag uint32) error {
	if !r.alive() {
		return ErrClosed
	}
	return r.c.Add(fd, events, tag)
}

// Modify changes the events watched for fd and the tag of its registration.
func (r *Reactor) Modify(fd int, events, tag uint32) error {
	if !r.alive() {
		return ErrClosed
	}
	return r.c.Modify(fd, events, tag)
}

// Delete stops watching fd.
func (r *Reactor) Delete(fd int) error {
	if !r.alive() {
		return ErrClosed
	}
	return r.c.Delete(fd)
}

// EpollMode reports whether the reactor has moved its fds into epoll.
func (r *Reactor) EpollMode() bool { return r.alive() && r.c.EpollMode() }

// EventNVAL marks an event for an fd that was closed while watched (POLLNVAL). Only the
// poll backend can tell; epoll silently forgets a closed fd.
const EventNVAL uint32 = cshim.NVAL

// Wait blocks for at most timeoutNS nanoseconds (< 0: until an event; 0: not at all),
// retrying EINTR, and returns the harvested events, valid until the next Wait or
// dispatch. A blocking Wait first sets the thread's timer slack to 1 ns, once per
// thread (InitTimerSlack). Only the thread that runs the loop may call it.
func (r *Reactor) Wait(timeoutNS int64) ([]Event, error) {
	ev, err := r.c.Wait(timeoutNS)
	if err != nil && !r.alive() {
		return nil, ErrClosed
	}
	return ev, err
}

// WaitUntil is Wait with an absolute deadline in CLOCK_MONOTONIC ns, as watch.Nanotime
// (< 0: until an event; 0: not at all; a time already past polls once). The reactor
// waits for it on its timerfd, as GLib's poll does for SetDeadline, so a wait for a
// timer ends when a bare timerfd read would, and waiting again for the same deadline
// costs no timerfd_settime.
func (r *Reactor) WaitUntil(deadlineNS int64) ([]Event, error) {
	ev, err := r.c.WaitUntil(deadlineNS)
	if err != nil && !r.alive() {
		return nil, ErrClosed
	}
	return ev, err
}

// Notify is QEMU's aio_notify: it records the notification and, only if the loop is
// (or is about to be) blocked, writes the kick eventfd: during a GLib wait only the
// first Notify writes (claimKick), during a blocking Wait every one does, as in QEMU.
// Work must be published before Notify is called. Any goroutine may call it; when the
// loop is busy it costs two atomic operations and no syscall.
func (r *Reactor) Notify() {
	// The caller published its work with a sequentially consistent atomic operation, so
	// the load of notify_me below cannot pass it (the Dekker half of aio_notify against aio_poll). The flag
	// is stored only when it changes: many producers then share the cache line read-only.
	// Skipping a redundant store is safe: a consumer that clears the flag afterwards
	// (NotifyAccept) reads its queues after that, and finds this work there.
	if r.c.Kicked().Load() == 0 {
		r.c.Kicked().Store(1)
	}
	if w := r.c.Waiting().Load(); w&^kickSent != 0 && r.claimKick(w) {
		r.kicks.Add(1)
		r.c.Kick()
	}
	runtime.KeepAlive(r) // the handshake words are freed only once r is unreachable
}

const kickSent = cshim.KickSent

// claimKick decides whether a Notify that saw notify_me w (not 0) writes the eventfd. A
// blocking Wait (w counts it in 2s) is woken by every Notify, as in QEMU. A GLib wait
// (bit 0 alone) is woken by the first: the Notify that sets KickSent writes, the ones
// that find it set do not, since the poll wakes for that write and the eventfd is read
// only after check, which clears the bit with bit 0. This keeps a flood of producers to
// one system call per wait of the loop where QEMU makes one per aio_notify.
func (r *Reactor) claimKick(w uint32) bool {
	if w&^(1|kickSent) != 0 {
		return true
	}
	if w&kickSent != 0 {
		return false
	}
	old := r.c.Waiting().Or(kickSent)
	// A wait that ended meanwhile needs nothing; one that is a blocking Wait now is woken.
	return old&^(1|kickSent) != 0 || old&(1|kickSent) == 1
}

// Kicks returns how many times Notify wrote the kick eventfd.
func (r *Reactor) Kicks() uint64 { return r.kicks.Load() }

// NotifyAccept is QEMU's aio_notify_accept: it clears the notification. The store is
// sequentially consistent, a full barrier before the loop reads its queues again.
func (r *Reactor) NotifyAccept() {
	r.c.Kicked().Store(0)
	runtime.KeepAlive(r)
}

// Notified reports whether Notify was called since the last NotifyAccept.
func (r *Reactor) Notified() bool { return r.c.Kicked().Load() != 0 }

// WaitBegin announces a blocking Wait (QEMU's notify_me += 2, with a full barrier) and
// reports whether a notification is already pending, in which case the caller must not
// block. Every WaitBegin needs a WaitEnd.
func (r *Reactor) WaitBegin() (notified bool) {
	r.c.Waiting().Add(2)
	notified = r.c.Kicked().Load() != 0
	runtime.KeepAlive(r)
	return notified
}

// WaitEnd ends what WaitBegin started (notify_me -= 2).
func (r *Reactor) WaitEnd() {
	r.c.Waiting().Add(^uint32(1))
	runtime.KeepAlive(r)
}

// Waiting returns the notify_me word (without KickSent), for tests and statistics.
func (r *Reactor) Waiting() uint32 { return r.c.Waiting().Load() &^ kickSent }

// SetReady sets ready bits (cshim's ReadyNow, ReadyIdle): the GSource prepare then asks
// for a zero timeout or 10 ms, and check reports the source ready.
func (r *Reactor) SetReady(bits uint32) {
	if r.c.Ready().Load()&bits != bits { // read-only when already set: no cache-line ping-pong
		r.c.Ready().Or(bits)
	}
	runtime.KeepAlive(r)
}

// ReadyWord returns the word that holds the ready bits, for a loop that tests it on
// every pass without a call (aiosource's bhPoll); it is valid while r is reachable.
func (r *Reactor) ReadyWord() *atomic.Uint32 { return r.c.Ready() }

// Ready returns the ready bits.
func (r *Reactor) Ready() uint32 {
	v := r.c.Ready().Load()
	runtime.KeepAlive(r)
	return v
}

// TakeReady clears and returns the ready bits. A loop clears them before it takes its
// queues, so work queued meanwhile sets them again.
func (r *Reactor) TakeReady() uint32 {
	v := r.c.Ready().Swap(0)
	runtime.KeepAlive(r)
	return v
}

// The ready bits.
const (
	ReadyNow  uint32 = cshim.ReadyNow
	ReadyIdle uint32 = cshim.ReadyIdle
)

// SetDeadline sets the nearest deadline, in absolute CLOCK_MONOTONIC ns (-1: none). The
// GSource prepare arms the timerfd with it, so GLib's poll wakes on time; Wait and
// WaitUntil arm it with their own deadline. Changing it does not wake the loop: call
// Notify when the deadline became earlier.
func (r *Reactor) SetDeadline(ns int64) {
	r.c.Deadline().Store(ns)
	runtime.KeepAlive(r)
}

// Deadline returns the deadline set with SetDeadline.
func (r *Reactor) Deadline() int64 { return r.c.Deadline().Load() }

// Close destroys the reactor's source and drops the reference the Reactor held; the
// source is finalized once nobody else holds one. Add, Modify and Delete must not race
// with it. Closing twice does nothing.
func (r *Reactor) Close() {
	if r.closed.Swap(true) {
		return
	}
	if r.alive() {
		r.c.SpinDetach()
	}
	r.src.Destroy()
	r.src.Unref()
}
