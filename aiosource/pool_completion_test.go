package aiosource_test

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
)

// waitQueued waits until n thread-pool results wait for the loop, so that they are
// delivered together.
func waitQueued(t *testing.T, c *aiosource.Context, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); aiosource.QueuedCompletions(c) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d results queued after 10 s", aiosource.QueuedCompletions(c), n)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// A completion callback that drains (a nested Poll or GLib iteration, as QEMU's
// AIO_WAIT_WHILE) sees the completion of a sibling request that finished at the same
// time: thread_pool_completion_bh schedules itself again before each callback.
func TestSubmitNestedDrain(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		nested := map[string]func(bool) bool{"iterate": m.iterate}
		if m.glib {
			nested["Poll"] = m.ctx.Poll // a drain inside a GLib dispatch polls the AioContext
		}
		for name, drain := range nested {
			for _, blocking := range []bool{false, true} {
				t.Run(name+map[bool]string{false: "(false)", true: "(true)"}[blocking], func(t *testing.T) {
					var ran [2]bool
					first, polls := -1, 0
					var fired bool
					for i := range 2 {
						m.ctx.Submit(func() error { return nil }, func(error) {
							ran[i] = true
							if first >= 0 {
								return
							}
							first = i
							// A blocking drain that nothing wakes would hang: a watchdog
							// wakes it after 5 s, and the test then fails instead.
							var woke atomic.Bool
							wd := time.AfterFunc(5*time.Second, func() { woke.Store(true); m.ctx.Notify() })
							defer wd.Stop()
							for polls < 50 && !ran[1-i] && !woke.Load() {
								polls++
								drain(blocking)
							}
							fired = woke.Load()
						})
					}
					waitQueued(t, m.ctx, 2)
					for i := 0; i < 100 && !(ran[0] && ran[1]); i++ {
						m.iterate(false)
					}
					if first < 0 || !ran[1-first] {
						t.Fatalf("ran %v", ran)
					}
					if polls == 50 || fired {
						t.Fatalf("the sibling's completion did not run within the nested drains (%d drains, ran %v)", polls, ran)
					}
					m.flush()
				})
			}
		}
	})
}

// Completions run in QEMU's order: of the requests that have finished, the one
// submitted last first (thread_pool_completion_bh walks its list, newest first).
func TestSubmitCompletionOrder(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		const n = 8
		var order []int
		for i := range n {
			m.ctx.Submit(func() error { return nil }, func(error) { order = append(order, i) })
		}
		waitQueued(t, m.ctx, n)
		m.flush()
		want := []int{7, 6, 5, 4, 3, 2, 1, 0}
		if !slices.Equal(order, want) {
			t.Fatalf("completion order %v, want %v (newest submitted first)", order, want)
		}
	})
}

// After each callback the walk starts again from the newest request: one that finishes
// during a callback completes before older ones that finished earlier.
func TestSubmitCompletionOrderRestart(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		var order []string
		releaseB := make(chan struct{})
		m.ctx.Submit(func() error { return nil }, func(error) { order = append(order, "A") })
		m.ctx.Submit(func() error { <-releaseB; return nil }, func(error) { order = append(order, "B") })
		m.ctx.Submit(func() error { return nil }, func(error) {
			order = append(order, "C")
			close(releaseB)
			waitQueued(t, m.ctx, 1) // B finished while C's callback runs
		})
		waitQueued(t, m.ctx, 2) // A and C
		m.flush()
		if want := []string{"C", "B", "A"}; !slices.Equal(order, want) {
			t.Fatalf("completion order %v, want %v", order, want)
		}
	})
}

// The completion BH runs at most the completions that were ready when it started, then
// yields to the rest of the loop: a request that finishes during a callback completes
// in the next BH pass, after a oneshot scheduled meanwhile.
func TestSubmitCompletionYields(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		var order []string
		release := make(chan struct{})
		m.ctx.Submit(func() error { <-release; return nil }, func(error) { order = append(order, "second") })
		m.ctx.Submit(func() error { return nil }, func(error) {
			order = append(order, "first")
			m.ctx.ScheduleOneshot(func() { order = append(order, "oneshot") })
			close(release)
			waitQueued(t, m.ctx, 1)
		})
		waitQueued(t, m.ctx, 1)
		m.flush()
		if want := []string{"first", "oneshot", "second"}; !slices.Equal(order, want) {
			t.Fatalf("order %v, want %v", order, want)
		}
	})
}
