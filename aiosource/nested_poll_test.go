package aiosource_test

import (
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
)

// QEMU's tests/unit/test-nested-aio-poll.c, step by step: poll handlers are not
// re-entered by a Poll nested in their own PollReady. Poll handlers are usually level
// triggered: they keep reporting readiness until the condition is reset, so a PollReady
// that runs a nested Poll before resetting it would recurse forever if the nested Poll
// polled it again (aio_dispatch_handler takes it off the poll list while it runs).
// GLib iterations never busy-poll, so this runs through Poll only.
func TestNestedAioPoll(t *testing.T) {
	leakcheck.Handles(t)
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	// pollTrue is aio_poll(ctx, true), with a Notify after 10 s so that a Poll that
	// would block forever returns false and fails the step instead of hanging the test.
	pollTrue := func() bool {
		safety := time.AfterFunc(10*time.Second, c.Notify)
		defer safety.Stop()
		return c.Poll(true)
	}

	// Enable polling: grow ×2, shrink ÷2, and 1 s at most where QEMU's test has 1 ms. A
	// Poll in step 2 preempted for more than the bound on a loaded machine would leave
	// the handler a polling time of zero, and step 3, which only busy polling can
	// satisfy, would block.
	if err := c.SetPollParams(1_000_000_000, 2, 2); err != nil {
		t.Fatal(err)
	}
	// QEMU takes the GSource here to move the context off io_uring onto the poll fd
	// monitor; a Context is on the poll monitor from the start, so this only keeps the
	// steps alike.
	c.Source()

	// The notifier that drives the test is set (active) right away; its Poll callback
	// always reports readiness.
	pollNotifier, err := aiosource.NewEventNotifier(true)
	if err != nil {
		t.Fatal(err)
	}
	// The dummy notifier only wakes the nested Poll; its Poll never reports readiness.
	dummyNotifier, err := aiosource.NewEventNotifier(false)
	if err != nil {
		t.Fatal(err)
	}

	var nested bool
	var pollReadies, pollReads, dummyReads int
	ioPollReady := func() {
		pollReadies++
		if nested {
			t.Error("io_poll_ready re-entered by the nested Poll")
			return
		}
		nested = true
		// Wake the nested Poll that follows.
		if err := dummyNotifier.Set(); err != nil {
			t.Error(err)
		}
		// This nested event loop must not call the handler's Poll or PollReady.
		if !pollTrue() {
			t.Error("the nested Poll(true) made no progress")
		}
		nested = false
	}
	if err := c.SetFDHandler(pollNotifier.FD(), aiosource.FDHandler{
		Read:      func() { pollReads++; pollNotifier.TestAndClear() },
		Poll:      func() bool { return true },
		PollReady: ioPollReady,
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetFDHandler(dummyNotifier.FD(), aiosource.FDHandler{
		Read:      func() { dummyReads++; dummyNotifier.TestAndClear() },
		Poll:      func() bool { return false },
		PollReady: func() { t.Error("the dummy notifier's PollReady ran; its Poll never reports readiness") },
	}); err != nil {
		t.Fatal(err)
	}

	// Consume the Notify of the registrations. Every handler has a Poll callback, so a
	// non-blocking Poll makes no syscall: it does not see the set notifier either.
	waits := aiosource.Waits(c)
	if c.Poll(false) {
		t.Fatal("step 1: Poll(false) made progress")
	}
	if got := aiosource.Waits(c) - waits; got != 0 {
		t.Fatalf("step 1: Poll(false) waited for fds %d time(s), want none (need_wait)", got)
	}
	if pollReads != 0 {
		t.Fatal("step 1: Poll(false) ran the set notifier's Read")
	}

	// Run the Read handler. This has the side effect of activating polling in future
	// Polls: the handler joins the poll list the first time it fires.
	if !pollTrue() {
		t.Fatal("step 2: Poll(true) made no progress")
	}
	if pollReads != 1 || pollReadies != 0 {
		t.Fatalf("step 2: Read ran %d time(s), PollReady %d; want 1 and 0", pollReads, pollReadies)
	}

	// The second time around the Poll/PollReady handler runs, and its nested Poll runs
	// the dummy notifier's Read, not the handler again. The outer Poll found work by
	// busy polling and made no syscall; only the nested one waited.
	waits = aiosource.Waits(c)
	if !pollTrue() {
		t.Fatal("step 3: Poll(true) made no progress")
	}
	if pollReadies != 1 || dummyReads != 1 || pollReads != 1 {
		t.Fatalf("step 3: PollReady %d, dummy Read %d, Read %d; want 1, 1, 1", pollReadies, dummyReads, pollReads)
	}
	if got := aiosource.Waits(c) - waits; got != 1 {
		t.Fatalf("step 3: %d wait(s), want 1 (the nested Poll's)", got)
	}

	// Run Poll/PollReady one more time to show it keeps working.
	if !pollTrue() {
		t.Fatal("step 4: Poll(true) made no progress")
	}
	if pollReadies != 2 || dummyReads != 2 || pollReads != 1 {
		t.Fatalf("step 4: PollReady %d, dummy Read %d, Read %d; want 2, 2, 1", pollReadies, dummyReads, pollReads)
	}

	if err := c.SetFDHandler(dummyNotifier.FD(), aiosource.FDHandler{}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetFDHandler(pollNotifier.FD(), aiosource.FDHandler{}); err != nil {
		t.Fatal(err)
	}
	dummyNotifier.Close()
	pollNotifier.Close()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// An fd handler that a Poll nested in a BH of the same pass dispatches does not run
// again in the outer pass: the outer walk resolved its events before the BHs (as
// aio_poll's fd monitor fills the ready list before aio_bh_poll), and the nested walk
// took the handler off the outer one's list. Before, the outer walk ran it a second
// time, for readiness that the first run had consumed.
func TestNestedPollInBHTakesReadyHandler(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		e, err := aiosource.NewEventNotifier(false)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		var runs, empty int
		if err := m.ctx.SetEventNotifier(e, func(e *aiosource.EventNotifier) {
			runs++
			if !e.TestAndClear() {
				empty++ // run for readiness that was already consumed
			}
		}); err != nil {
			t.Fatal(err)
		}
		defer m.ctx.SetEventNotifier(e, nil)
		nestedRuns := -1
		bh := m.ctx.NewBH("nested-poll", func() {
			m.ctx.Poll(false)
			nestedRuns = runs
		})
		defer bh.Delete()
		if err := e.Set(); err != nil {
			t.Fatal(err)
		}
		bh.Schedule()
		m.iterate(false)
		if nestedRuns != 1 || runs != 1 || empty != 0 {
			t.Fatalf("handler runs: %d in the nested Poll, %d in all, %d with nothing to read; want 1, 1, 0",
				nestedRuns, runs, empty)
		}
	})
}
