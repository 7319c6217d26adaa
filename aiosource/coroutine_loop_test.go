package aiosource_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
)

// Coroutines on a loop, driven by Poll and by GLib iterations, at callback nesting
// depths 1 to 3: a nested Poll inside a BH keeps the callback level, a GLib iteration
// inside a callback is one C-to-Go callback deeper.

// nestedLoops runs fn in a BH at depth d: the test's loop dispatches depth 1, and a BH
// at depth k < d iterates the loop again until stop() (a nested event loop), which
// dispatches depth k+1. *depth counts the iterations active now: the depth of what
// runs.
func nestedLoops(m *mode, d int, depth *int, fn func(), stop func() bool) {
	m.ctx.ScheduleOneshot(func() {
		if d == 1 {
			fn()
			return
		}
		nestedLoops(m, d-1, depth, fn, stop)
	})
	for !stop() {
		*depth++
		m.iterate(true)
		*depth--
	}
}

// A coroutine made at each depth sleeps on a timer and is woken at that depth, on the
// loop's thread, in both modes.
func TestCoroutineDepths(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := unix.Gettid()
		depth := 0
		for d := 1; d <= 3; d++ {
			var tids, depths []int
			var ctxs []*aiosource.Context
			finished := false
			nestedLoops(m, d, &depth, func() {
				aiosource.NewCoroutine(func(co *aiosource.Coroutine) {
					for i := 0; i < 3; i++ {
						tids = append(tids, unix.Gettid())
						depths = append(depths, depth)
						ctxs = append(ctxs, aiosource.CurrentContext())
						aiosource.CoSleepNS(aiosource.ClockRealtime, 200_000)
					}
					finished = true
				}).Enter()
			}, func() bool { return finished })
			for i := range tids {
				if tids[i] != tid || depths[i] != d || ctxs[i] != m.ctx {
					t.Errorf("depth %d, step %d: ran on thread %d at depth %d in %p; want thread %d, depth %d, %p",
						d, i, tids[i], depths[i], ctxs[i], tid, d, m.ctx)
				}
			}
			if len(tids) != 3 {
				t.Errorf("depth %d: %d steps ran, want 3", d, len(tids))
			}
		}
	})
}

// A coroutine made at depth 1 and woken while a nested loop runs at depth 2: a nested
// Poll is the same callback level and runs it there; a nested GLib iteration is a
// deeper level, so it waits for its own level, which runs it once the nested loop has
// returned, at the end of the dispatch.
func TestCoroutineWokenAtAnotherLevel(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		depth := 0
		var steps []int
		nestedDone, finished := false, false
		nestedLoops(m, 1, &depth, func() {
			aiosource.NewCoroutine(func(*aiosource.Coroutine) {
				steps = append(steps, depth)
				aiosource.CoSleepNS(aiosource.ClockRealtime, 100_000)
				steps = append(steps, depth)
				if nestedDone {
					steps = append(steps, -1) // resumed after the nested loop returned
				}
				finished = true
			}).Enter()
			// A nested loop at depth 2 for 5 ms: the coroutine's timer fires in it.
			stop := false
			tm := m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleMS, func() { stop = true })
			tm.Mod(aiosource.ClockNS(aiosource.ClockRealtime)/1e6 + 5)
			for !stop {
				depth++
				m.iterate(true)
				depth--
			}
			tm.Del()
			nestedDone = true
		}, func() bool { return finished })
		want := []int{1, 2}
		if m.glib {
			want = []int{1, 1, -1}
		}
		if len(steps) != len(want) {
			t.Fatalf("steps %v, want %v", steps, want)
		}
		for i := range want {
			if steps[i] != want[i] {
				t.Fatalf("steps %v, want %v", steps, want)
			}
		}
	})
}

// test-aio.c /aio/coroutine/queue-chaining: two coroutines wake each other 25,000
// times through aio_co_enter; each wake waits for the waker to yield, so the stack
// never deepens.
func TestCoroutineQueueChaining(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		const max = 25000
		type state struct {
			i     int
			other *aiosource.Coroutine
		}
		var a, b state
		body := func(s *state) func(*aiosource.Coroutine) {
			return func(*aiosource.Coroutine) {
				for s.i = 0; s.i < max; s.i++ {
					m.ctx.CoEnter(s.other)
					aiosource.Yield()
				}
			}
		}
		x := aiosource.NewCoroutine(body(&a))
		y := aiosource.NewCoroutine(body(&b))
		a.other, b.other = y, x
		ran := false
		m.ctx.ScheduleOneshot(func() {
			m.ctx.CoEnter(x)
			if a.i != max || b.i != max-1 {
				t.Errorf("after entering X: A.i %d, B.i %d; want %d, %d", a.i, b.i, max, max-1)
			}
			m.ctx.CoEnter(y)
			if b.i != max {
				t.Errorf("after entering Y: B.i %d, want %d", b.i, max)
			}
			ran = true
		})
		for !ran {
			m.iterate(true)
		}
	})
}

// test-aio.c /aio/coroutine/worker-thread-co-enter: a thread that walks no context
// enters a coroutine of the loop: it is scheduled, and runs on the loop's thread.
func TestCoroutineWorkerThreadCoEnter(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := unix.Gettid()
		ranOn := 0
		co := aiosource.NewCoroutine(func(*aiosource.Coroutine) { ranOn = unix.Gettid() })
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.ctx.CoEnter(co)
		}()
		wg.Wait()
		if ranOn != 0 {
			t.Fatal("the coroutine ran on the worker thread")
		}
		if !m.iterate(true) {
			t.Error("the iteration that ran the scheduled coroutine reported no progress")
		}
		if ranOn != tid {
			t.Fatalf("the coroutine ran on thread %d, want the loop's %d", ranOn, tid)
		}
		if m.iterate(false) {
			t.Error("a second iteration reported progress")
		}
	})
}

// The scheduled coroutines run in the order they were scheduled, from any goroutine;
// Wake from another thread schedules; a coroutine that was scheduled twice panics.
func TestCoSchedule(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		var order []int
		var cos []*aiosource.Coroutine
		for i := 0; i < 5; i++ {
			cos = append(cos, aiosource.NewCoroutine(func(*aiosource.Coroutine) {
				order = append(order, i)
				aiosource.Yield()
				order = append(order, 10+i)
			}))
		}
		for _, co := range cos {
			m.ctx.CoSchedule(co)
		}
		mustPanicWith(t, "aio_co_schedule: Co-routine was already scheduled in 'aio_co_schedule'", func() { m.ctx.CoSchedule(cos[0]) })
		for len(order) < 5 {
			m.iterate(true)
		}
		done := make(chan struct{})
		go func() { // Wake from another thread: scheduled on the coroutine's context
			for i := 4; i >= 0; i-- {
				cos[i].Wake()
			}
			close(done)
		}()
		<-done
		for len(order) < 10 {
			m.iterate(true)
		}
		want := []int{0, 1, 2, 3, 4, 14, 13, 12, 11, 10}
		for i := range want {
			if order[i] != want[i] {
				t.Fatalf("order %v, want %v", order, want)
			}
		}
	})
}

// thread_pool_submit_co: the coroutine waits for the work and gets its error; the
// completion resumes it on the loop's thread (test-thread-pool.c /thread-pool/submit-co).
func TestSubmitCo(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := unix.Gettid()
		n := 0
		var got error
		resumedOn, active := 0, 0
		m.ctx.ScheduleOneshot(func() {
			aiosource.NewCoroutine(func(*aiosource.Coroutine) {
				active = 1
				got = aiosource.SubmitCo(func() error { n++; return unix.EAGAIN })
				resumedOn = unix.Gettid()
				active--
			}).Enter()
		})
		for active == 0 {
			m.iterate(true)
		}
		for active == 1 {
			m.iterate(true)
		}
		if n != 1 || got != unix.EAGAIN || resumedOn != tid {
			t.Fatalf("n %d, error %v, resumed on %d; want 1, EAGAIN, %d", n, got, resumedOn, tid)
		}
	})
}

// A wakeable sleep ends early on Wake, and its timer goes with it.
func TestCoSleepWake(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		var w aiosource.CoSleepState
		var slept time.Duration
		done := false
		m.ctx.ScheduleOneshot(func() {
			aiosource.NewCoroutine(func(co *aiosource.Coroutine) {
				start := time.Now()
				w.SleepNS(aiosource.ClockHost, int64(time.Hour))
				slept = time.Since(start)
				done = true
			}).Enter()
		})
		m.iterate(true)
		m.ctx.ScheduleOneshot(w.Wake)
		for !done {
			m.iterate(true)
		}
		if slept > time.Minute {
			t.Fatalf("slept %v", slept)
		}
		w.Wake() // no sleeper: nothing
	})
}

// A panic in a coroutine comes out of the BH that entered it, as that BH's panic, and
// the loop goes on.
func TestCoroutinePanic(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		m.ctx.ScheduleOneshot(func() {
			aiosource.NewCoroutine(func(*aiosource.Coroutine) { panic("boom in a coroutine") }).Enter()
		})
		mustPanicWith(t, "boom in a coroutine", func() { m.iterate(true) })
		ran := false
		m.ctx.ScheduleOneshot(func() {
			aiosource.NewCoroutine(func(*aiosource.Coroutine) { ran = true }).Enter()
		})
		for !ran {
			m.iterate(true)
		}
	})
}

// CoQueue: waiters wake in order (WaitFront jumps the queue), EnterNext releases the
// lock around the wake, RestartAll wakes everyone, and a woken waiter takes the lock
// again before Wait returns.
func TestCoQueue(t *testing.T) {
	eachMode(t, func(t *testing.T, m *mode) {
		var q aiosource.CoQueue
		var mu aiosource.CoMutex
		var order []string
		waiter := func(name string, front bool) *aiosource.Coroutine {
			return aiosource.NewCoroutine(func(*aiosource.Coroutine) {
				mu.Lock()
				if front {
					q.WaitFront(&mu)
				} else {
					q.Wait(&mu)
				}
				mu.AssertLocked()
				order = append(order, name)
				mu.Unlock()
			})
		}
		done := false
		m.ctx.ScheduleOneshot(func() {
			for _, n := range []string{"a", "b", "c"} {
				waiter(n, false).Enter()
			}
			waiter("front", true).Enter()
			if q.Empty() {
				t.Error("Empty() with four waiters")
			}
			// Outside a coroutine, the woken waiter runs before Next returns.
			if !q.Next() || len(order) != 1 || order[0] != "front" {
				t.Errorf("after Next: %v, want [front]", order)
			}
			aiosource.NewCoroutine(func(*aiosource.Coroutine) {
				mu.Lock()
				if !q.EnterNext(&mu) { // wakes a: it runs after this coroutine yields
					t.Error("EnterNext found no waiter")
				}
				if len(order) != 1 {
					t.Errorf("EnterNext from a coroutine ran the waiter at once: %v", order)
				}
				mu.Unlock()
			}).Enter()
			q.RestartAll()
			if !q.Empty() || q.Next() {
				t.Error("waiters left after RestartAll")
			}
			done = true
		})
		for !done {
			m.iterate(true)
		}
		want := []string{"front", "a", "b", "c"}
		for i := range want {
			if len(order) != len(want) || order[i] != want[i] {
				t.Fatalf("order %v, want %v", order, want)
			}
		}
	})
}

// RescheduleSelf moves a coroutine between the two contexts of a MainLoop, both driven
// by its thread; rescheduling to the current context does nothing. To a context that
// another thread drives, it panics (TestCoroutineRescheduleSelfToAnotherThread): Go's
// runtime coroutines cannot change threads.
func TestCoroutineRescheduleSelf(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ml, mc := newMainLoop(t)
	aio, ioh := ml.AioContext(), ml.IOHandler()
	var seen []*aiosource.Context
	done := false
	aio.CoSchedule(aiosource.NewCoroutine(func(*aiosource.Coroutine) {
		seen = append(seen, aiosource.CurrentContext())
		aiosource.RescheduleSelf(aio) // already there
		seen = append(seen, aiosource.CurrentContext())
		aiosource.RescheduleSelf(ioh)
		seen = append(seen, aiosource.CurrentContext())
		aiosource.RescheduleSelf(aio)
		seen = append(seen, aiosource.CurrentContext())
		done = true
	}))
	for !done {
		mc.Iteration(true)
	}
	want := []*aiosource.Context{aio, aio, ioh, aio}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("step %d ran in %p, want %p (aio %p, io-handler %p)", i, seen[i], want[i], aio, ioh)
		}
	}
}

func TestCoroutineRescheduleSelfToAnotherThread(t *testing.T) {
	it := newIOThreads(t, 2)
	got := make(chan any, 1)
	it.ths[0].Context().CoSchedule(aiosource.NewCoroutine(func(*aiosource.Coroutine) {
		defer func() { got <- recover() }()
		aiosource.RescheduleSelf(it.ths[1].Context())
	}))
	select {
	case r := <-got:
		if !strings.Contains(fmt.Sprint(r), "cannot move to another OS thread") {
			t.Fatalf("RescheduleSelf to another thread's context: %v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the coroutine never ran")
	}
}

// A coroutine bound to one IOThread and woken from another runs on its own thread;
// EnterIfInactive leaves a running coroutine alone.
func TestCoroutineWakeAcrossThreads(t *testing.T) {
	it := newIOThreads(t, 2)
	var tid0 int
	it.run(0, func() { tid0 = unix.Gettid() })
	var co *aiosource.Coroutine
	var ranOn []int
	finished := make(chan struct{})
	it.run(0, func() {
		co = aiosource.NewCoroutine(func(self *aiosource.Coroutine) {
			self.EnterIfInactive() // running: nothing
			for i := 0; i < 3; i++ {
				ranOn = append(ranOn, unix.Gettid())
				aiosource.Yield()
			}
			close(finished)
		})
		co.Enter()
	})
	for i := 0; i < 3; i++ {
		it.run(1, co.Wake) // from the other loop: scheduled on co's context
		if i < 2 {
			it.run(0, func() {}) // co has run its step by the time this BH runs
		}
	}
	<-finished
	for _, tid := range ranOn {
		if tid != tid0 {
			t.Fatalf("steps ran on threads %v, want all on %d", ranOn, tid0)
		}
	}
}

// A coroutine first entered by a Poll on one OS thread cannot run when its context is
// driven from another thread later (Go's runtime coroutines never change threads): the
// error handler hears of it, the coroutine stays suspended, and it runs once its own
// thread drives the context again.
func TestCoroutineDriverChangedThreads(t *testing.T) {
	c := newCtx(t)
	errs := make(chan error, 4)
	c.SetErrorHandler(func(err error) { errs <- err })
	steps := 0
	co := aiosource.NewCoroutine(func(*aiosource.Coroutine) {
		steps++
		aiosource.Yield()
		steps++
	})
	// onThread runs fn on a goroutine of its own, locked to a fresh OS thread.
	onThread := func(fn func()) {
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			defer close(done)
			fn()
		}()
		<-done
	}
	home := make(chan func())
	homeDone := make(chan struct{})
	go func() { // the coroutine's own thread: runs what it is sent
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(homeDone)
		for fn := range home {
			fn()
		}
	}()
	onHome := func(fn func()) {
		done := make(chan struct{})
		home <- func() { fn(); close(done) }
		<-done
	}
	onHome(func() {
		c.CoSchedule(co)
		c.Poll(false)
	})
	if steps != 1 {
		t.Fatalf("steps %d after the first Poll, want 1", steps)
	}
	c.CoSchedule(co)
	onThread(func() { c.Poll(false) })
	if steps != 1 {
		t.Fatalf("the coroutine ran %d steps on another thread", steps)
	}
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "cannot change threads") {
			t.Fatalf("error %v", err)
		}
	default:
		t.Fatal("the error handler heard nothing")
	}
	co.Wake() // from outside any walk: scheduled on its context again
	onHome(func() { c.Poll(false) })
	close(home)
	<-homeDone
	if steps != 2 {
		t.Fatalf("steps %d once its thread drove the context again, want 2", steps)
	}
}
