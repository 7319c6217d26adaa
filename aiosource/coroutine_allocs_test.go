//go:build !race && !asan

// The race detector's and AddressSanitizer's instrumentation allocate on their own, so
// allocation counts are checked in normal builds only.

package aiosource_test

import (
	"testing"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

var coSteps int

func countStep(*aiosource.Coroutine) { coSteps++ }

func yieldOnce(*aiosource.Coroutine) { aiosource.Yield(); coSteps++ }

// In steady state a coroutine's create, run and finish allocates nothing: its struct and
// its worker come from the pool. On an IOThread the pool outlives each walk (the
// thread's hold spans them), so this holds from one BH to the next; within one walk it
// holds everywhere.
func TestCoroutineAllocs(t *testing.T) {
	leakcheck.Handles(t)
	it := newIOThreads(t, 1)
	c := it.ths[0].Context()
	done := make(chan struct{})
	var enterInBH func()
	bh := c.NewBH("co-allocs", func() { enterInBH(); done <- struct{}{} })
	defer bh.Delete()
	for _, tc := range []struct {
		name   string
		fn     func()
		inWalk bool // all runs in one walk: the coroutines must end within a run
	}{
		{"create+run+finish", func() { aiosource.NewCoroutine(countStep).Enter() }, true},
		{"create+enter+yield+enter+finish", func() {
			co := aiosource.NewCoroutine(yieldOnce)
			co.Enter()
			co.Enter()
		}, true},
		{"aio_co_schedule", func() { // it ends in the context's next BH pass
			co := aiosource.NewCoroutine(yieldOnce)
			co.Enter()
			c.CoSchedule(co)
		}, false},
	} {
		enterInBH = tc.fn
		run := func() { bh.Schedule(); <-done }
		run() // warm the pool
		if n := testing.AllocsPerRun(1000, run); n != 0 {
			t.Errorf("%s, one per BH: %v allocations per run, want 0", tc.name, n)
		}
		if !tc.inWalk {
			continue
		}
		var inWalk float64
		it.run(0, func() { inWalk = testing.AllocsPerRun(1000, tc.fn) })
		if inWalk != 0 {
			t.Errorf("%s, within one walk: %v allocations per run, want 0", tc.name, inWalk)
		}
	}
	// Let the scheduled coroutines run to their end.
	it.run(0, func() {})
	it.run(0, func() {})
}
