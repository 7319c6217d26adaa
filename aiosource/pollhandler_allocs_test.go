//go:build !race && !asan

// The race detector's and AddressSanitizer's instrumentation allocate on their own, so
// allocation counts are checked in normal builds only.

package aiosource_test

import (
	"runtime"
	"testing"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
)

// Busy polling in the steady state allocates nothing: a busy poll that finds a handler
// ready, a Poll that starts polling mode, busy-polls, ends it (begin, end and the final
// poll) and waits, and a Poll(false) that makes no syscall.
func TestPollHandlerAllocs(t *testing.T) {
	leakcheck.Handles(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := newCtx(t)
	// Grow 1: the handler's poll time stays at its initial 4 µs once a wait set it, so
	// that in the second case busy polling ends well before the timer, polling mode ends
	// and the Poll waits, however the machine is loaded. (Doubling, it grew past the
	// timer's 20 µs on a loaded machine; every busy poll then ran until the timer, and
	// polling mode never ended.)
	if err := c.SetPollParams(pollMax, 1, 0); err != nil {
		t.Fatal(err)
	}
	tm := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() {})
	h := newPollHandler(t, c)
	h.fire()
	for _, tc := range []struct {
		name string
		op   func()
	}{
		{"busy poll finds readiness", func() { h.ready = true; c.Poll(true) }},
		{"polling mode begins and ends, then the wait", func() {
			tm.ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + 20_000)
			c.Poll(false)     // accept Mod's Notify
			if tm.Pending() { // not run already by that Poll, on a loaded machine
				c.Poll(true)
			}
		}},
		{"Poll(false) without a syscall", func() { c.Poll(false) }},
	} {
		tc.op() // warm up: buffers grow once
		if n := testing.AllocsPerRun(1000, tc.op); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", tc.name, n)
		}
	}
	tm.Del()
	if h.begins == 0 || h.ends == 0 || h.readies == 0 {
		t.Fatalf("begin %d, end %d, PollReady %d: a path was not taken", h.begins, h.ends, h.readies)
	}
}
