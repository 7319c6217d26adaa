package aiosource

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/glibaio/glibaio/internal/reactor"

	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/watch"
)

// Poll runs one iteration of the context (aio_poll): BHs, then ready fd handlers, then
// timers. With blocking it first waits for something to do, retrying EINTR with the
// time that remains, so signals never end a wait early. It reports progress: whether a
// non-idle BH, an fd handler or a timer ran, or a busy-poll handler saw readiness. A
// bare Notify, an idle BH, a cancelled or deleted BH is not progress, so Poll(true)
// returns false only when woken by Notify alone (a Notify before the call included).
//
// As QEMU's aio_poll, a Poll that need not block asks the kernel about fds only if some
// registered fd handler has no Poll callback (need_wait), or, unlike QEMU, left busy
// polling idle and has not fired since (SetPollParams): otherwise it makes no syscall,
// so Poll(false) runs BHs and timers only, and the fds are seen by a blocking Poll, by
// busy polling or by GLib.
//
// Only the context's home thread drives it (see the package documentation): a Poll on
// another thread while that thread drives the context panics with a message that names
// both threads. Poll may be called from the context's own callbacks (a nested event
// loop). It locks the calling goroutine to its OS thread until it returns. A callback's
// panic comes out of Poll as a *glibloop.PanicError carrying the original value and
// stack, as it comes out of a GLib iteration, once the context's bookkeeping has been
// restored; work that was queued and did not run yet runs in the next Poll. After Close
// it returns false.
//
// A coroutine runs only on the OS thread of its first entry. A goroutine that drives a
// context with Poll while coroutines of that context are suspended must therefore stay
// locked to its OS thread (runtime.LockOSThread) between Polls, as IOThread and
// MainLoop.Run do: a Poll on another thread that finds such a coroutine scheduled
// reports it through the context's error handler, and the coroutine stays suspended.
//
// A blocking Poll waits until its deadline (the nearest timer, or 10 ms while only idle
// BHs are scheduled, as aio_compute_timeout) on the context's timerfd, polled together
// with the fds, rather than with a ppoll or epoll_wait timeout: the kernel may end a poll
// timeout up to 0.1% of its length late whatever the thread's timer slack, and a timerfd
// not at all, so a timer runs when a bare timerfd wait would wake. A deadline that does
// not change between Polls is written to the timerfd once; each new one costs one
// timerfd_settime.
//
// Before it first blocks on an OS thread, Poll(true) sets that thread's timer slack to
// 1 ns, once per thread and for the rest of the thread's life, as QEMU's init_clocks()
// does; Poll(false) never changes it. See Timer slack in the package documentation.
func (c *Context) Poll(blocking bool) bool {
	if c.closed.Load() {
		return false
	}
	t := c.hold(&c.stats.polls, &c.home.nestedPolls, "Poll") // counts it; panics off the home thread (home.go)
	defer c.letGo(t)
	defer wrapPanic()
	progress := c.pollWalk(blocking)
	return c.runTimers() || progress
}

// wrapPanic gives a callback's panic the same form under Poll as under GLib.
func wrapPanic() {
	r := recover()
	if r == nil {
		return
	}
	if pe, ok := r.(*glibloop.PanicError); ok {
		panic(pe)
	}
	panic(&glibloop.PanicError{Value: r, Stack: debug.Stack(), Callback: "aiosource.Context.Poll callback"})
}

func (c *Context) pollWalk(blocking bool) (progress bool) {
	lv := c.enter()
	defer c.leave(lv)

	maxNS := c.pollMaxNS.Load()
	var start int64
	if maxNS != 0 {
		start = watch.Nanotime()
	}
	timeout, deadline := int64(0), int64(0)
	if blocking {
		timeout, deadline = c.computeDeadline()
	}
	progress = c.tryPollMode(&timeout)

	// The notify_me handshake of QEMU's aio_poll and aio_notify: announce the wait
	// (notify_me += 2), then look at notified.
	// WaitEnd is deferred: the final busy poll below runs user callbacks, which may panic.
	useNotifyMe := timeout != 0
	waiting := false
	defer func() {
		if waiting {
			c.r.WaitEnd()
		}
		if c.pollStarted {
			// Polling mode outlives this Poll. Should GLib drive the context next, its
			// dispatch ends it, as aio_prepare does: make that iteration dispatch.
			c.r.SetReady(reactor.ReadyNow)
		}
	}()
	if useNotifyMe {
		waiting = true
		if c.r.WaitBegin() {
			timeout = 0
		}
	}
	// Without a timeout, and when every handler can be busy-polled, a Poll makes no
	// syscall at all: Poll(false) then runs only BHs and timers.
	if timeout != 0 || c.needWait() {
		if c.pollStarted && timeout != 0 && c.pollSetStarted(false) {
			timeout, progress = 0, true
		}
		c.waits.Add(1)
		// The wait ends at the deadline, which busy polling did not move (it only
		// shortened what remains of it), or not at all.
		if timeout <= 0 {
			deadline = timeout
		}
		events, err := c.r.WaitUntil(deadline)
		if err != nil && !errors.Is(err, reactor.ErrClosed) {
			c.reportError(fmt.Errorf("aiosource: Poll: wait: %w", err))
		}
		// Resolved at once, as QEMU's fd monitors fill the ready list in their wait:
		// a BH below may Poll again, which reuses the reactor's event buffer.
		lv.ready = c.resolve(events, lv.ready)
	}
	if waiting {
		waiting = false
		c.r.WaitEnd()
	}
	c.r.NotifyAccept() // notified = false, then a full barrier before reading queues

	var blockNS int64
	if maxNS != 0 {
		blockNS = watch.Nanotime() - start
	}
	if c.bhPoll() {
		progress = true
	}
	lv.ready = c.addPollReady(lv.ready)
	if c.dispatchReady(lv.ready, blockNS) {
		progress = true
	}
	return progress
}

// computeDeadline returns how long Poll may block, in ns (-1: no limit): 0 if a BH is
// scheduled, otherwise the soonest of 10 ms for idle BHs and the nearest timer
// (aio_compute_timeout); and, when that is positive, the absolute CLOCK_MONOTONIC time
// at which it ends, which the reactor waits for on its timerfd.
func (c *Context) computeDeadline() (timeout, deadline int64) {
	bh := c.bhTimeout()
	if bh == 0 {
		return 0, 0
	}
	now := watch.Nanotime()
	deadline = c.timerDeadline(now)
	if bh > 0 {
		deadline = soonest(deadline, now+bh)
	}
	if deadline < 0 {
		return -1, -1
	}
	if deadline <= now {
		return 0, 0
	}
	return deadline - now, deadline
}

// soonest is qemu_soonest_timeout: -1 (no limit) loses to any other value.
func soonest(a, b int64) int64 {
	if uint64(a) < uint64(b) {
		return a
	}
	return b
}

// pollDisabled reports whether a registered handler has no Poll callback, so busy
// polling cannot observe it and is not used (aio_poll_disabled).
func (c *Context) pollDisabled() bool { return c.pollDisableCnt.Load() != 0 }

// needWait reports whether Poll must ask the kernel about fds even with a zero timeout
// (the poll and epoll fd monitors' need_wait): when a registered handler has no Poll
// callback. The context's own notifier is seen through its flag and timers through
// their lists, so with no handler at all there is nothing to wait for. Beyond QEMU's
// rule, it also waits while a handler that left polling idle has not fired again
// (pollidle.go): only the syscall can see its fd.
func (c *Context) needWait() bool { return c.pollDisabled() || c.pollIdleDropped != 0 }

// SetPollParams sets adaptive busy polling (aio_context_set_poll_params): a handler that
// has a Poll callback may be busy-polled for up to maxNS before Poll blocks; each
// handler's polling time grows by grow (0: ×2) while it helps and shrinks by shrink (0:
// to zero) when it does not. maxNS 0 disables polling, the default. Busy polling is
// used only by Poll, never under GLib, and only while every registered handler has a
// Poll callback. A handler joins it the first time its fd fires, and leaves it when its
// Poll callback has not reported readiness for 7 s, until its fd fires again
// (remove_idle_poll_handlers): a loop whose traffic stopped then blocks at once. See
// SetEventNotifierPoll for the callbacks of polling mode. A negative value returns an
// error that is os.ErrInvalid and changes nothing; after Close it returns ErrClosed.
func (c *Context) SetPollParams(maxNS, grow, shrink int64) error {
	for _, a := range [...]struct {
		name string
		v    int64
	}{{"maxNS", maxNS}, {"grow", grow}, {"shrink", shrink}} {
		if a.v < 0 {
			return fmt.Errorf("aiosource: SetPollParams: %s %d is negative: %w", a.name, a.v, os.ErrInvalid)
		}
	}
	if c.closed.Load() {
		return ErrClosed
	}
	c.pollMaxNS.Store(maxNS)
	c.pollGrow.Store(grow)
	c.pollShrink.Store(shrink)
	c.resetPollTimes.Store(true)
	c.Notify()
	return nil
}

// tryPollMode busy-polls the poll handlers for up to the largest of their polling
// times, cut short by the timeout (try_poll_mode), and reports progress. A zero timeout
// (Poll(false), or work already due) means no busy polling.
func (c *Context) tryPollMode(timeout *int64) bool {
	if c.resetPollTimes.Swap(false) {
		for _, n := range c.pollHandlers {
			n.pollNS = 0
		}
	}
	if len(c.pollHandlers) == 0 || c.pollMaxNS.Load() == 0 {
		return false
	}
	maxNS := int64(0)
	for _, n := range c.pollHandlers {
		maxNS = max(maxNS, n.pollNS)
	}
	maxNS = soonest(*timeout, maxNS)
	if maxNS == 0 || c.pollDisabled() {
		return false
	}
	c.pollSetStarted(true)
	return c.runPollHandlers(maxNS, timeout)
}

// runPollHandlers calls every poll handler's Poll until one reports readiness, maxNS
// passed or a handler without Poll was registered; then it drops the handlers idle for
// too long and takes the elapsed time off the timeout (run_poll_handlers).
func (c *Context) runPollHandlers(maxNS int64, timeout *int64) bool {
	start := watch.Nanotime()
	progress := false
	var elapsed int64
	for {
		if c.runPollHandlersOnce(start, timeout) {
			progress = true
		}
		elapsed = watch.Nanotime() - start
		maxNS = soonest(*timeout, maxNS)
		if elapsed >= maxNS || c.pollDisabled() {
			break
		}
	}
	if c.removeIdlePollHandlers(start + elapsed) {
		*timeout = 0
		progress = true
	}
	if *timeout > 0 {
		*timeout = max(*timeout-(watch.Nanotime()-start), 0)
	}
	return progress
}

// runPollHandlersOnce calls every poll handler's Poll once (run_poll_handlers_once). A
// handler found ready stays in polling for another idle interval from now.
func (c *Context) runPollHandlersOnce(now int64, timeout *int64) bool {
	progress := false
	for _, n := range c.pollHandlers {
		if !n.deleted.Load() && n.h.Poll != nil && n.h.Poll() {
			c.markPollReady(n)
			n.pollIdleTimeout = now + c.pollIdleInterval()
			*timeout = 0
			progress = true
		}
	}
	// The context's own notifier is polled through its flag, with no syscall; a
	// notification ends the busy wait but is not progress.
	if c.r.Notified() {
		*timeout = 0
	}
	return progress
}

// pollSetStarted enters or leaves polling mode, calling every poll handler's begin or
// end callback (SetEventNotifierPoll). Leaving it polls every handler once more, in
// case an event came between its last poll and its end callback re-enabling
// notifications, and reports whether one was ready (poll_set_started).
func (c *Context) pollSetStarted(started bool) bool {
	if started == c.pollStarted {
		return false // inlined: every GLib dispatch calls it, and polling is rarely on
	}
	return c.pollSetStartedSlow(started)
}

func (c *Context) pollSetStartedSlow(started bool) bool {
	c.pollStarted = started
	progress := false
	for _, n := range c.pollHandlers {
		if n.deleted.Load() {
			continue
		}
		if be := n.pollBeginEnd.Load(); be != nil {
			if started && be.begin != nil {
				be.begin()
			} else if !started && be.end != nil {
				be.end()
			}
		}
		if !started && n.h.Poll != nil && n.h.Poll() {
			c.markPollReady(n)
			progress = true
		}
	}
	return progress
}

// markPollReady records that busy polling found n ready (aio_add_poll_ready_handler):
// the walk's addPollReady puts it on the ready list.
func (c *Context) markPollReady(n *fdNode) {
	if !n.pollReady {
		n.pollReady = true
		c.pollFound = append(c.pollFound, n)
	}
}

// addPollReady appends the handlers that busy polling found ready and that have no fd
// event in the ready list already.
func (c *Context) addPollReady(ready []readyHandler) []readyHandler {
	if len(c.pollFound) == 0 {
		return ready // inlined: busy polling found nothing, the usual case
	}
	return c.addPollReadySlow(ready)
}

// addPollReadySlow is kept out of line, so that addPollReady inlines.
//
//go:noinline
func (c *Context) addPollReadySlow(ready []readyHandler) []readyHandler {
	for _, n := range c.pollFound {
		if !n.pollReady {
			continue
		}
		found := false
		for i := range ready {
			// An entry that a nested walk took over (its seq is no longer the node's)
			// will not run: the node goes on the list again.
			if ready[i].n == n && ready[i].seq == n.readySeq {
				found = true
				break
			}
		}
		if !found {
			ready = c.addReady(ready, n, 0)
		}
	}
	clear(c.pollFound)
	c.pollFound = c.pollFound[:0]
	return ready
}

func (c *Context) addPollHandler(n *fdNode) {
	n.inPoll = true
	c.pollHandlers = append(c.pollHandlers, n)
}

func (c *Context) removePollHandler(n *fdNode) {
	if !n.inPoll {
		return
	}
	n.inPoll = false
	for i, p := range c.pollHandlers {
		if p == n {
			c.pollHandlers = append(c.pollHandlers[:i], c.pollHandlers[i+1:]...)
			return
		}
	}
}

// Growing from zero starts at 4 µs, as in QEMU.
const pollInitialNS = 4000

// adjustPollTime adapts a handler's polling time to how long the last wait blocked
// (adjust_polling_time).
func (c *Context) adjustPollTime(n *fdNode, blockNS int64) {
	maxNS := c.pollMaxNS.Load()
	switch {
	case blockNS <= n.pollNS:
		// the sweet spot
	case blockNS > maxNS:
		if shrink := c.pollShrink.Load(); shrink != 0 {
			n.pollNS /= shrink
		} else {
			n.pollNS = 0
		}
	case n.pollNS < maxNS && blockNS < maxNS:
		if n.pollNS == 0 {
			n.pollNS = pollInitialNS
		} else if grow := c.pollGrow.Load(); grow != 0 {
			n.pollNS *= grow
		} else {
			n.pollNS *= 2
		}
		n.pollNS = min(n.pollNS, maxNS)
	}
}
