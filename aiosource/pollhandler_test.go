package aiosource_test

import (
	"errors"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"
	"github.com/glibaio/glibaio/internal/testutil"

	"github.com/glibaio/glibaio/aiosource"
)

// pollHandler is an event notifier registered with a Poll callback that reports a
// level-triggered condition (ready), with begin and end callbacks that check they
// alternate, and counts of everything that ran.
type pollHandler struct {
	t                                   *testing.T
	c                                   *aiosource.Context
	e                                   *aiosource.EventNotifier
	ready                               bool // what Poll reports
	begun                               bool
	reads, polls, readies, begins, ends int
	onEnd                               func() // runs inside end, if set
}

func newPollHandler(t *testing.T, c *aiosource.Context) *pollHandler {
	t.Helper()
	e, err := aiosource.NewEventNotifier(false)
	if err != nil {
		t.Fatal(err)
	}
	h := &pollHandler{t: t, c: c, e: e}
	if err := c.SetFDHandler(e.FD(), aiosource.FDHandler{
		Read:      func() { h.reads++; h.ready = false; e.TestAndClear() },
		Poll:      func() bool { h.polls++; return h.ready },
		PollReady: func() { h.readies++; h.ready = false },
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEventNotifierPoll(e, h.begin, h.end); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !c.Closed() {
			if err := c.SetFDHandler(e.FD(), aiosource.FDHandler{}); err != nil {
				t.Error(err)
			}
		}
		e.Close()
	})
	return h
}

// kick raises the handler's condition as a device does: it sets the notifier only while
// notifications are on, outside polling mode (between end and begin). However the loop
// is scheduled, the condition is then seen: by busy polling, by the final poll after
// end, or through the fd.
func (h *pollHandler) kick() {
	h.ready = true
	if !h.begun {
		if err := h.e.Set(); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *pollHandler) begin(e *aiosource.EventNotifier) {
	if e != h.e {
		h.t.Error("begin got another notifier")
	}
	if h.begun {
		h.t.Error("begin twice without end")
	}
	h.begun = true
	h.begins++
}

func (h *pollHandler) end(e *aiosource.EventNotifier) {
	if e != h.e {
		h.t.Error("end got another notifier")
	}
	if !h.begun {
		h.t.Error("end without begin")
	}
	h.begun = false
	h.ends++
	if h.onEnd != nil {
		h.onEnd()
	}
}

// fire sets the notifier and runs Poll(true) once: Read runs and the handler joins the
// poll list (handlers join busy polling the first time they fire).
func (h *pollHandler) fire() {
	h.t.Helper()
	reads := h.reads
	// Accept a pending Notify (a registration's, for one). Otherwise Poll(true) sees it,
	// does not block, and, every handler having a Poll callback, looks at no fd either.
	h.c.Poll(false)
	if err := h.e.Set(); err != nil {
		h.t.Fatal(err)
	}
	pollWithin(h.t, h.c, 10*time.Second)
	if h.reads != reads+1 {
		h.t.Fatalf("Read ran %d time(s) for one Set, want 1", h.reads-reads)
	}
}

// pollMax is the polling bound of these tests (SetPollParams' maxNS), long enough that
// a Poll preempted on a loaded machine (blocked for longer than the bound) does not
// shrink a handler's polling time to zero: a condition that only its Poll callback can
// see (ready set with no Set) would then go unseen and the Poll would block, and a
// handler found ready only by the final poll after end is not kept in polling (only a
// busy poll's success does that). Polling times still grow only from 4 µs, doubling
// per dispatch that blocked for less.
const pollMax = int64(time.Second)

// pollWithin runs c.Poll(true), with a Notify after d so that a Poll that would block
// forever returns and lets the test fail instead of hanging.
func pollWithin(t *testing.T, c *aiosource.Context, d time.Duration) bool {
	t.Helper()
	safety := time.AfterFunc(d, c.Notify)
	defer safety.Stop()
	return c.Poll(true)
}

// pollFor runs c.Poll(true) with a timer due in d: it busy-polls, then blocks until the
// timer (or something else) wakes it.
func pollFor(t *testing.T, c *aiosource.Context, tm *aiosource.Timer, d time.Duration) bool {
	t.Helper()
	defer tm.Del()
	for {
		tm.ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + int64(d))
		// Accept Mod's Notify, which would end the busy poll and the wait at once. On a
		// loaded machine this Poll may come after the deadline and run the timer: then
		// arm it again.
		c.Poll(false)
		if tm.Pending() {
			return pollWithin(t, c, 10*time.Second)
		}
	}
}

// need_wait: when every registered handler has a Poll callback, Poll(false) makes no
// syscall (QEMU's aio_poll calls fdmon_ops->wait only if timeout || need_wait): it runs
// BHs and timers, and a readable fd waits for a blocking Poll. A handler without Poll
// makes every Poll wait for fds again. GLib always polls every fd.
func TestPollFalseNeedWait(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		m.flush()
		waits := aiosource.Waits(m.ctx)
		if m.iterate(false) || aiosource.Waits(m.ctx) != waits {
			t.Fatal("Poll(false) on a context without handlers made progress or waited")
		}
		h := newPollHandler(t, m.ctx)
		m.iterate(false) // the Notify of the registration
		if err := h.e.Set(); err != nil {
			t.Fatal(err)
		}
		waits = aiosource.Waits(m.ctx)
		ran := false
		m.ctx.ScheduleOneshot(func() { ran = true })
		got := m.iterate(false)
		if !got || !ran {
			t.Fatalf("iteration = %v, BH ran %v; want true, true", got, ran)
		}
		if m.glib {
			if h.reads != 1 {
				t.Fatalf("a GLib iteration ran Read %d time(s), want 1: GLib polls every fd", h.reads)
			}
			return
		}
		if w := aiosource.Waits(m.ctx) - waits; w != 0 || h.reads != 0 {
			t.Fatalf("Poll(false) waited %d time(s) and ran Read %d time(s); want neither", w, h.reads)
		}
		if m.ctx.Poll(false) {
			t.Fatal("Poll(false) made progress with only a readable fd")
		}
		if !pollWithin(t, m.ctx, 10*time.Second) || h.reads != 1 {
			t.Fatalf("Poll(true) ran Read %d time(s), want 1", h.reads)
		}

		// A handler without Poll: Poll(false) must ask the kernel.
		x, _ := socketpair(t)
		if err := m.ctx.SetFDHandler(x, aiosource.FDHandler{Read: func() {}}); err != nil {
			t.Fatal(err)
		}
		h.e.Set()
		waits = aiosource.Waits(m.ctx)
		if !m.ctx.Poll(false) || h.reads != 2 || aiosource.Waits(m.ctx) != waits+1 {
			t.Fatalf("with a handler without Poll: Read %d, waits %d; want 2, 1", h.reads, aiosource.Waits(m.ctx)-waits)
		}
		if err := m.ctx.SetFDHandler(x, aiosource.FDHandler{}); err != nil {
			t.Fatal(err)
		}
		m.ctx.Poll(false)
		waits = aiosource.Waits(m.ctx)
		m.ctx.Poll(false)
		if aiosource.Waits(m.ctx) != waits {
			t.Fatal("Poll(false) waited after the handler without Poll was removed")
		}
	})
}

// io_poll_begin and io_poll_end (aio_set_event_notifier_poll): begin when polling mode
// starts, nothing while it stays started across Polls that do not block, end when a
// Poll is about to block (poll_set_started). Registering the fd again makes a handler
// without them, as in QEMU.
func TestPollBeginEnd(t *testing.T) {
	leakcheck.Handles(t)
	c := newCtx(t)
	if err := c.SetPollParams(pollMax, 0, 0); err != nil {
		t.Fatal(err)
	}
	tm := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() {})
	h := newPollHandler(t, c)
	h.fire()
	if h.begins != 0 || h.ends != 0 || h.polls != 0 {
		t.Fatalf("before the first busy poll: begin %d, end %d, Poll %d; want none", h.begins, h.ends, h.polls)
	}

	// Busy polling finds the condition: polling mode starts (begin) and, as the Poll does
	// not block, stays started.
	h.ready = true
	if !pollWithin(t, c, 10*time.Second) || h.readies != 1 || h.begins != 1 || h.ends != 0 {
		t.Fatalf("busy poll: PollReady %d, begin %d, end %d; want 1, 1, 0", h.readies, h.begins, h.ends)
	}
	h.ready = true
	if !pollWithin(t, c, 10*time.Second) || h.readies != 2 || h.begins != 1 || h.ends != 0 {
		t.Fatalf("second busy poll: PollReady %d, begin %d, end %d; want 2, 1, 0", h.readies, h.begins, h.ends)
	}
	// Nothing to find: the Poll busy-polls, then ends polling mode before it blocks, and
	// polls once more after end.
	polls := h.polls
	if !pollFor(t, c, tm, 2*time.Millisecond) || h.begins != 1 || h.ends != 1 || h.readies != 2 {
		t.Fatalf("blocking Poll: begin %d, end %d, PollReady %d; want 1, 1, 2", h.begins, h.ends, h.readies)
	}
	if h.polls < polls+2 {
		t.Fatalf("Poll ran %d time(s) in a blocking Poll, want the busy poll and the final poll", h.polls-polls)
	}
	// The next blocking Poll starts and ends it again.
	pollFor(t, c, tm, 2*time.Millisecond)
	if h.begins != 2 || h.ends != 2 {
		t.Fatalf("next blocking Poll: begin %d, end %d; want 2, 2", h.begins, h.ends)
	}

	// SetFDHandler on the fd makes a handler without begin and end.
	if err := c.SetFDHandler(h.e.FD(), aiosource.FDHandler{
		Read:      func() { h.reads++; h.e.TestAndClear() },
		Poll:      func() bool { return h.ready },
		PollReady: func() { h.readies++; h.ready = false },
	}); err != nil {
		t.Fatal(err)
	}
	h.fire()
	h.ready = true
	pollWithin(t, c, 10*time.Second)
	pollFor(t, c, tm, 2*time.Millisecond)
	if h.readies != 3 || h.begins != 2 || h.ends != 2 {
		t.Fatalf("after SetFDHandler: PollReady %d, begin %d, end %d; want 3, 2, 2", h.readies, h.begins, h.ends)
	}
	// Cleared with nil, nil.
	if err := c.SetEventNotifierPoll(h.e, h.begin, h.end); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEventNotifierPoll(h.e, nil, nil); err != nil {
		t.Fatal(err)
	}
	h.ready = true
	pollWithin(t, c, 10*time.Second)
	pollFor(t, c, tm, 2*time.Millisecond)
	if h.readies != 4 || h.begins != 2 || h.ends != 2 {
		t.Fatalf("after clearing: PollReady %d, begin %d, end %d; want 4, 2, 2", h.readies, h.begins, h.ends)
	}
}

// The final poll after io_poll_end: an event that came after the last poll, while the
// device still had notifications off, sets no fd. end turns notifications back on, and
// the Poll callback then runs once more and finds it, so the Poll runs PollReady
// instead of blocking (poll_set_started).
func TestPollEndRecheck(t *testing.T) {
	leakcheck.Handles(t)
	c := newCtx(t)
	if err := c.SetPollParams(pollMax, 0, 0); err != nil {
		t.Fatal(err)
	}
	h := newPollHandler(t, c)
	h.fire()
	h.onEnd = func() { h.ready = true } // the event that raced with end
	start := time.Now()
	// Without the final poll this Poll would block: the safety Notify ends it after 2 s
	// with PollReady not run.
	if !pollWithin(t, c, 2*time.Second) {
		t.Fatal("Poll(true) made no progress")
	}
	if h.ends != 1 || h.readies != 1 || h.reads != 1 {
		t.Fatalf("end %d, PollReady %d, Read %d; want 1, 1, 1 (no fd event)", h.ends, h.readies, h.reads)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Poll blocked for %v", d)
	}
}

// GLib never busy-polls. A Poll that left polling mode started (it found work and did
// not block) is ended by the next GLib iteration, as aio_prepare does, with its final
// poll; what that finds is dispatched.
func TestPollModeEndsUnderGLib(t *testing.T) {
	leakcheck.Handles(t)
	for _, m := range modes(t) {
		if !m.glib {
			continue
		}
		m.flush()
		if err := m.ctx.SetPollParams(pollMax, 0, 0); err != nil {
			t.Fatal(err)
		}
		h := newPollHandler(t, m.ctx)
		h.fire() // through Poll: GLib iterations never busy-poll
		h.ready = true
		if !pollWithin(t, m.ctx, 10*time.Second) || h.begins != 1 || h.ends != 0 || h.readies != 1 {
			t.Fatalf("Poll: begin %d, end %d, PollReady %d; want 1, 0, 1", h.begins, h.ends, h.readies)
		}
		h.ready = true // level-triggered: still ready
		if !m.iterate(false) {
			t.Fatal("the GLib iteration after the Poll dispatched nothing")
		}
		if h.ends != 1 || h.readies != 2 {
			t.Fatalf("GLib iteration: end %d, PollReady %d; want 1, 2", h.ends, h.readies)
		}
		m.flush()
		h.e.Set()
		for i := 0; i < 3; i++ {
			m.iterate(false)
		}
		if h.reads != 2 || h.begins != 1 {
			t.Fatalf("GLib iterations: Read %d, begin %d; want 2 and the Poll's 1", h.reads, h.begins)
		}
	}
}

// remove_idle_poll_handlers: an IOThread-like loop (Poll(true) over and over, woken by a
// timer) stops busy polling once its handler's Poll has reported nothing for the idle
// interval (7 s, shortened here): the Poll callback count stops growing, and end runs
// as it leaves. When its fd fires again, it is back in busy polling.
func TestPollIdleHandlersDropOut(t *testing.T) {
	leakcheck.Handles(t)
	const interval = 100 * time.Millisecond
	c := newCtx(t)
	aiosource.SetPollIdleInterval(c, interval)
	if err := c.SetPollParams(pollMax, 0, 0); err != nil {
		t.Fatal(err)
	}
	ticks := 0
	tm := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { ticks++ })
	h := newPollHandler(t, c)
	h.fire() // it joins the poll list
	// Traffic: busy polling finds each event, so the Poll never blocks and the
	// handler's polling time grows.
	var idleStart time.Time
	for i := 0; i < 8; i++ {
		h.kick()
		idleStart = time.Now() // the handler's last successful Poll is in this Poll
		if !pollWithin(t, c, 10*time.Second) {
			t.Fatal("Poll made no progress with a ready poll handler")
		}
	}
	if h.readies == 0 {
		t.Fatal("busy polling never found the traffic")
	}

	// Traffic stops. Each Poll busy-polls, then blocks until the timer.
	var busy, calm int // Polls that did and did not call the Poll callback
	deadline := idleStart.Add(20 * interval)
	for calm < 20 && time.Now().Before(deadline) {
		polls := h.polls
		pollFor(t, c, tm, 2*time.Millisecond)
		if h.polls > polls {
			busy++
			calm = 0
		} else {
			if calm == 0 && time.Since(idleStart) < interval {
				t.Fatalf("busy polling stopped after %v, before the idle interval %v", time.Since(idleStart), interval)
			}
			calm++
		}
	}
	if calm < 20 {
		t.Fatalf("still busy polling %v after traffic stopped (idle interval %v): Poll called in %d Polls", time.Since(idleStart), interval, busy)
	}
	if busy == 0 {
		t.Fatal("no busy polling before the idle interval passed")
	}
	t.Logf("busy polling in %d blocking Polls, then none in %d, %v after the last event", busy, calm, time.Since(idleStart))
	if h.begun || h.begins != h.ends {
		t.Fatalf("after leaving polling: begin %d, end %d; want as many ends as begins", h.begins, h.ends)
	}
	if ticks == 0 {
		t.Fatal("the timer never woke the loop")
	}
	// Out of polling, the handler's fd is seen only by waiting: Poll(false) waits.
	waits := aiosource.Waits(c)
	c.Poll(false)
	if aiosource.Waits(c) != waits+1 {
		t.Fatal("Poll(false) did not wait for the fd of a handler that left polling")
	}

	// The fd fires: Read runs, and the handler is busy-polled again.
	h.fire()
	polls, begins := h.polls, h.begins
	pollFor(t, c, tm, 2*time.Millisecond)
	if h.polls == polls || h.begins != begins+1 {
		t.Fatalf("after the fd fired: Poll called %d time(s), begin %d; want busy polling back", h.polls-polls, h.begins-begins)
	}
	waits = aiosource.Waits(c)
	c.Poll(false)
	if aiosource.Waits(c) != waits {
		t.Fatal("Poll(false) waited once every handler was back in polling")
	}
}

// dropIdleWhileBusy makes two poll handlers and runs Poll(true) until one of them,
// idle, leaves polling for want of readiness while the other, busy, is found ready by
// every busy poll: polling mode stays started, Polls never block, and only idle's
// leaving calls its end. raced, if not nil, runs inside that end.
func dropIdleWhileBusy(t *testing.T, raced func(idle *pollHandler)) (c *aiosource.Context, idle, busy *pollHandler) {
	t.Helper()
	const interval = 50 * time.Millisecond
	c = newCtx(t)
	aiosource.SetPollIdleInterval(c, interval)
	if err := c.SetPollParams(pollMax, 0, 0); err != nil {
		t.Fatal(err)
	}
	idle = newPollHandler(t, c)
	busy = newPollHandler(t, c)
	idle.fire()
	busy.fire()
	ends := idle.ends
	if raced != nil {
		idle.onEnd = func() {
			if idle.ends == ends+1 {
				raced(idle)
			}
		}
	}
	deadline := time.Now().Add(100 * interval)
	for idle.ends == ends && time.Now().Before(deadline) {
		busy.kick()
		if !pollWithin(t, c, 10*time.Second) {
			t.Fatal("Poll made no progress with a ready poll handler")
		}
	}
	if idle.ends != ends+1 || (raced == nil && idle.begun) {
		t.Fatalf("the idle handler did not leave polling: begin %d, end %d", idle.begins, idle.ends)
	}
	return c, idle, busy
}

// A handler that left polling idle is not starved by a busy one. On the poll and epoll
// fd monitors only a wait sees its fd, and a Poll whose busy poll found work would not
// wait (QEMU drops idle handlers only with io_uring for this reason). Here such a Poll
// still waits, with a zero timeout, while a dropped handler has not fired again: its
// Read runs in the very next Poll, and it rejoins polling, with begin since polling
// mode is started.
func TestPollIdleDroppedNotStarved(t *testing.T) {
	leakcheck.Handles(t)
	c, idle, busy := dropIdleWhileBusy(t, nil)
	polls := idle.polls
	busy.kick()
	pollWithin(t, c, 10*time.Second)
	if idle.polls != polls {
		t.Fatal("the handler that left polling was still polled")
	}

	if err := idle.e.Set(); err != nil {
		t.Fatal(err)
	}
	busy.kick()
	work, begins := busy.readies+busy.reads, idle.begins
	pollWithin(t, c, 10*time.Second)
	if idle.reads != 2 || busy.readies+busy.reads == work {
		t.Fatalf("next Poll: idle Read %d, busy ran %d time(s); want 2 and some", idle.reads, busy.readies+busy.reads-work)
	}
	if idle.begins != begins+1 || !idle.begun {
		t.Fatalf("the idle handler rejoined without begin: begin %d, end %d", idle.begins, idle.ends)
	}
}

// A handler leaving polling idle while polling mode is started gets end and then a
// final Poll (remove_idle_poll_handlers), so an event that raced with end is not lost
// though the handler is no longer busy-polled and no fd was set: PollReady runs in the
// same Poll, and, having run, the handler is back in polling (aio_dispatch_handler).
func TestPollIdleRemovalFinalPoll(t *testing.T) {
	leakcheck.Handles(t)
	_, idle, _ := dropIdleWhileBusy(t, func(idle *pollHandler) { idle.ready = true })
	if idle.readies != 1 || idle.reads != 1 {
		t.Fatalf("PollReady %d, Read %d; want 1 (the final poll found the raced event) and the first fire's 1", idle.readies, idle.reads)
	}
	if !idle.begun {
		t.Fatal("the handler did not return to polling after its final poll found work")
	}
}

// SetEventNotifierPoll's misuse panics; its runtime conditions are errors.
func TestSetEventNotifierPollErrors(t *testing.T) {
	leakcheck.Handles(t)
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	testutil.MustPanic(t, "aiosource: SetEventNotifierPoll: nil EventNotifier", func() {
		c.SetEventNotifierPoll(nil, nil, nil)
	})
	e, err := aiosource.NewEventNotifier(false)
	if err != nil {
		t.Fatal(err)
	}
	begin := func(*aiosource.EventNotifier) {}
	if err := c.SetEventNotifierPoll(e, begin, nil); !errors.Is(err, aiosource.ErrNoHandler) {
		t.Fatalf("no handler: %v, want ErrNoHandler", err)
	}
	if err := c.SetEventNotifier(e, func(*aiosource.EventNotifier) {}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEventNotifierPoll(e, begin, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEventNotifier(e, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEventNotifierPoll(e, begin, nil); !errors.Is(err, aiosource.ErrNoHandler) {
		t.Fatalf("removed handler: %v, want ErrNoHandler", err)
	}
	if err := c.SetEventNotifier(e, func(*aiosource.EventNotifier) {}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEventNotifierPoll(e, begin, nil); !errors.Is(err, aiosource.ErrClosed) {
		t.Fatalf("closed context: %v, want ErrClosed", err)
	}
	e.Close()
	c2 := newCtx(t)
	if err := c2.SetEventNotifierPoll(e, begin, nil); !errors.Is(err, aiosource.ErrClosed) {
		t.Fatalf("closed notifier: %v, want ErrClosed", err)
	}
}
