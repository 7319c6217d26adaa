package glibloop_test

// Ports, in our own code, of the custom-source cases of GLib's glib/tests/mainloop.c
// that GLib 2.74 supports.

import (
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"
	"github.com/glibaio/glibaio/internal/testutil"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/glibloop"
)

// /mainloop/priorities: when sources of several priorities are ready, only the best
// priority is dispatched in an iteration.
func TestPriorities(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var a, b int
	sa, sb := alwaysReady(&a), alwaysReady(&b)
	sa.SetPriority(1)
	sb.SetPriority(0)
	sa.Attach(c)
	sb.Attach(c)
	if !c.Pending() {
		t.Fatal("Pending: want true with two ready sources")
	}
	for i := 1; i <= 2; i++ {
		if !c.Iteration(false) {
			t.Fatal("Iteration: want true")
		}
		if a != 0 || b != i {
			t.Fatalf("after %d iterations: a=%d b=%d, want a=0 b=%d", i, a, b, i)
		}
	}
	sb.Destroy()
	c.Iteration(false)
	if a != 1 || b != 2 {
		t.Fatalf("after destroying the better source: a=%d b=%d, want 1 2", a, b)
	}
	sa.SetPriority(glibloop.PriorityLow)
	if got := sa.Priority(); got != glibloop.PriorityLow {
		t.Fatalf("Priority = %d, want %d", got, glibloop.PriorityLow)
	}
	sa.Destroy()
	sa.Unref()
	sb.Unref()
	if c.Pending() {
		t.Fatal("Pending: want false once every source is destroyed")
	}
}

// /mainloop/ready-time: a ready time makes the source ready when it passes, dispatch
// does not reset it, and -1 stops it.
func TestReadyTime(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var n int
	s := counter(&n)
	s.Attach(c)
	defer s.Unref()
	defer s.Destroy()

	if got := s.ReadyTime(); got != -1 {
		t.Fatalf("initial ReadyTime = %d, want -1", got)
	}
	if c.Iteration(false) || n != 0 {
		t.Fatalf("no ready time: dispatched %d times", n)
	}
	s.SetReadyTime(glibloop.MonotonicTime() + 3600e6)
	if c.Iteration(false) || n != 0 {
		t.Fatalf("ready time in an hour: dispatched %d times", n)
	}
	s.SetReadyTime(glibloop.MonotonicTime())
	if !c.Iteration(false) || n != 1 {
		t.Fatalf("ready time now: dispatched %d times, want 1", n)
	}
	// Dispatch did not reset it, so the source stays ready.
	if !c.Iteration(false) || n != 2 {
		t.Fatalf("dispatch reset the ready time: dispatched %d times, want 2", n)
	}
	s.SetReadyTime(-1)
	if c.Iteration(false) || n != 2 {
		t.Fatalf("ready time -1: dispatched %d times, want 2", n)
	}
	s.SetReadyTime(0)
	if !c.Iteration(false) || n != 3 {
		t.Fatalf("ready time 0: dispatched %d times, want 3", n)
	}
}

// The usual pattern: dispatch sets -1 again, so the source runs once per SetReadyTime.
func TestReadyTimeResetInDispatch(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var n int
	s := glibloop.NewSource(&dsrc{d: func(s *glibloop.Source) bool { n++; s.SetReadyTime(-1); return true }})
	s.Attach(c)
	defer s.Unref()
	defer s.Destroy()
	for i := 1; i <= 3; i++ {
		s.SetReadyTime(0)
		if got := iterateUntilIdle(c); got != 1 || n != i {
			t.Fatalf("round %d: %d dispatching iterations, n=%d", i, got, n)
		}
	}
}

// /mainloop/various-ready-times: extreme values. On GLib 2.74 every negative value other
// than -1 lies in the past and fires at once; the largest never fires.
func TestVariousReadyTimes(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	for _, tc := range []struct {
		usec  int64
		fires bool
	}{
		{math.MinInt64, true}, {-2, true}, {-1, false}, {0, true}, {1, true},
		{math.MaxInt64, false}, {math.MaxInt64 - 1, false},
	} {
		var n int
		s := counter(&n)
		s.SetReadyTime(tc.usec)
		s.Attach(c)
		c.Iteration(false)
		if (n > 0) != tc.fires {
			t.Errorf("ready time %d: dispatched %d times, want fires=%v", tc.usec, n, tc.fires)
		}
		s.Destroy()
		s.Unref()
	}
}

// A SetReadyTime(0) from another goroutine wakes a loop blocked in another thread.
func TestReadyTimeCrossThreadWakeup(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var n atomic.Int32
	s := glibloop.NewSource(&dsrc{d: func(s *glibloop.Source) bool { n.Add(1); s.SetReadyTime(-1); return true }})
	s.Attach(c)
	defer s.Unref()
	defer s.Destroy()

	entered := make(chan struct{})
	done := make(chan bool)
	go func() {
		// Block in poll: nothing is ready and there is no timeout.
		close(entered)
		done <- c.Iteration(true)
	}()
	<-entered
	time.Sleep(50 * time.Millisecond) // let it reach poll; the test holds either way
	select {
	case <-done:
		t.Fatal("Iteration(true) returned before anything was ready")
	default:
	}
	s.SetReadyTime(0)
	select {
	case ok := <-done:
		if !ok || n.Load() != 1 {
			t.Fatalf("Iteration = %v, dispatches = %d; want true, 1", ok, n.Load())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SetReadyTime(0) from another goroutine did not wake the blocked loop")
	}
}

// /mainloop/unix-fd-source and source-unix-fd-api: add, modify, remove and query, and
// the poll set GLib builds from them.
func TestUnixFDAPI(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])

	var seen glibloop.IOCondition
	var tagR glibloop.FDTag
	var dispatches int
	s := glibloop.NewSource(&dsrc{d: func(s *glibloop.Source) bool {
		dispatches++
		seen = s.QueryUnixFD(tagR)
		return true
	}})
	s.Attach(c)
	defer s.Unref()
	defer s.Destroy()

	tagR = s.AddUnixFD(fds[0], glibloop.IOIn)
	tagW := s.AddUnixFD(fds[1], glibloop.IOOut)
	if tagR.IsZero() || tagW.IsZero() || tagR == tagW {
		t.Fatalf("AddUnixFD tags: %v %v", tagR, tagW)
	}
	assertPollSet(t, c, map[int32]glibloop.IOCondition{int32(fds[0]): glibloop.IOIn, int32(fds[1]): glibloop.IOOut})

	// The write end is writable: a source without Check is ready through its fd.
	if !c.Iteration(false) || dispatches != 1 || seen != 0 {
		t.Fatalf("writable pipe: dispatches=%d read-end revents=%v", dispatches, seen)
	}
	s.ModifyUnixFD(tagW, 0)
	assertPollSet(t, c, map[int32]glibloop.IOCondition{int32(fds[0]): glibloop.IOIn, int32(fds[1]): 0})
	if c.Iteration(false) {
		t.Fatal("dispatched with nothing to read and the write end masked")
	}
	unix.Write(fds[1], []byte("x"))
	if !c.Iteration(false) || dispatches != 2 || seen != glibloop.IOIn {
		t.Fatalf("readable pipe: dispatches=%d revents=%v, want 2 IN", dispatches, seen)
	}
	s.RemoveUnixFD(tagR)
	s.RemoveUnixFD(tagR) // removing twice is ignored
	assertPollSet(t, c, map[int32]glibloop.IOCondition{int32(fds[1]): 0})
	if c.Iteration(false) {
		t.Fatal("dispatched after the readable fd was removed")
	}
	if got := s.QueryUnixFD(tagR); got != 0 {
		t.Fatalf("QueryUnixFD on a removed tag = %v", got)
	}
	if tag := s.AddUnixFD(-1, glibloop.IOIn); !tag.IsZero() {
		t.Fatal("AddUnixFD(-1) returned a tag")
	}
}

// assertPollSet acquires c, prepares and queries it, and compares the fds GLib would
// poll, leaving out the context's own wakeup fd, with want.
func assertPollSet(t *testing.T, c *glibloop.MainContext, want map[int32]glibloop.IOCondition) {
	t.Helper()
	if !c.Acquire() {
		t.Fatal("Acquire failed")
	}
	defer c.Release()
	_, prio := c.Prepare()
	fds := make([]glibloop.PollFD, 1)
	_, n := c.Query(prio, fds)
	for n > len(fds) { // grow until the answer fits, as a loop driver must
		fds = make([]glibloop.PollFD, n)
		_, n = c.Query(prio, fds)
	}
	fds = fds[:n]
	c.Check(prio, fds) // pair the prepare; nothing is dispatched
	got := map[int32]glibloop.IOCondition{}
	for _, f := range fds {
		got[f.FD] = glibloop.IOCondition(f.Events)
	}
	if len(got) != len(want)+1 {
		t.Fatalf("poll set %v, want %v plus the wakeup fd", got, want)
	}
	for fd, ev := range want {
		if g, ok := got[fd]; !ok || g != ev {
			t.Fatalf("poll set %v, want %v plus the wakeup fd", got, want)
		}
	}
}

// /mainloop/unix-fd-priority: a ready fd of a better priority pre-empts a worse one,
// whose fd is then not even polled.
func TestUnixFDPriority(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	hi, lo := testutil.Eventfd(t), testutil.Eventfd(t)
	testutil.EfdWrite(t, hi)
	testutil.EfdWrite(t, lo)
	var nh, nl int
	sh := glibloop.NewSource(&dsrc{d: func(*glibloop.Source) bool { nh++; testutil.EfdDrain(hi); return true }})
	sl := glibloop.NewSource(&dsrc{d: func(*glibloop.Source) bool { nl++; testutil.EfdDrain(lo); return true }})
	sh.AddUnixFD(hi, glibloop.IOIn)
	sl.AddUnixFD(lo, glibloop.IOIn)
	sh.SetPriority(glibloop.PriorityHigh)
	sl.SetPriority(glibloop.PriorityDefault)
	sl.Attach(c)
	sh.Attach(c)
	defer sh.Unref()
	defer sl.Unref()
	defer sh.Destroy()
	defer sl.Destroy()

	if !c.Iteration(false) || nh != 1 || nl != 0 {
		t.Fatalf("first iteration: high=%d low=%d, want 1 0", nh, nl)
	}
	if !c.Iteration(false) || nh != 1 || nl != 1 {
		t.Fatalf("second iteration: high=%d low=%d, want 1 1", nh, nl)
	}
	// A ready better source keeps the worse one's fd out of the poll set.
	var ready int
	always := alwaysReady(&ready)
	always.SetPriority(glibloop.PriorityHigh)
	always.Attach(c)
	defer always.Unref()
	defer always.Destroy()
	testutil.EfdWrite(t, lo)
	if !c.Acquire() {
		t.Fatal("Acquire")
	}
	_, prio := c.Prepare()
	fds := make([]glibloop.PollFD, 8)
	_, n := c.Query(prio, fds)
	c.Check(prio, fds[:n])
	c.Release()
	for _, f := range fds[:n] {
		if f.FD == int32(lo) {
			t.Fatalf("the low-priority fd is polled while a high-priority source is ready: %v", fds[:n])
		}
	}
}

// Finalize runs exactly once, on the thread that drops the last reference.
func TestFinalizeOnceOnDroppingThread(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	type fin struct {
		n   atomic.Int32
		tid atomic.Int32
	}
	mk := func(f *fin) *glibloop.Source {
		return glibloop.NewSource(&fullsrc{f: func(*glibloop.Source) {
			f.n.Add(1)
			f.tid.Store(int32(unix.Gettid()))
		}})
	}

	t.Run("destroy", func(t *testing.T) {
		var f fin
		s := mk(&f)
		s.Attach(c)
		s.Unref() // the context holds the last reference
		var tid int
		onThread(func() { tid = unix.Gettid(); s.Destroy() })
		if f.n.Load() != 1 || int(f.tid.Load()) != tid {
			t.Fatalf("finalized %d times on thread %d, want once on %d", f.n.Load(), f.tid.Load(), tid)
		}
		s.Destroy() // no-ops after finalize
		s.Unref()
		s.SetReadyTime(0)
		if f.n.Load() != 1 || !s.IsDestroyed() || s.Native() != nil {
			t.Fatal("use after finalize was not a no-op")
		}
	})
	t.Run("unref", func(t *testing.T) {
		var f fin
		s := mk(&f)
		s.Attach(c)
		s.Ref()
		s.Destroy()
		s.Unref()
		if f.n.Load() != 0 {
			t.Fatal("finalized while a reference was held")
		}
		var tid int
		onThread(func() { tid = unix.Gettid(); s.Unref() })
		if f.n.Load() != 1 || int(f.tid.Load()) != tid {
			t.Fatalf("finalized %d times on thread %d, want once on %d", f.n.Load(), f.tid.Load(), tid)
		}
	})
	t.Run("dispatch-remove", func(t *testing.T) {
		var f fin
		s := glibloop.NewSource(&fullsrc{
			p: func(*glibloop.Source) (bool, time.Duration) { return true, 0 },
			d: func(*glibloop.Source) bool { return false },
			f: func(*glibloop.Source) { f.n.Add(1); f.tid.Store(int32(unix.Gettid())) },
		})
		s.Attach(c)
		s.Unref()
		var tid int
		onThread(func() { tid = unix.Gettid(); c.Iteration(false) })
		if f.n.Load() != 1 || int(f.tid.Load()) != tid {
			t.Fatalf("finalized %d times on thread %d, want once on the iterating thread %d", f.n.Load(), f.tid.Load(), tid)
		}
	})
	t.Run("context-unref", func(t *testing.T) {
		var f fin
		c2 := glibloop.NewMainContext()
		s := mk(&f)
		s.Attach(c2)
		s.Unref()
		var tid int
		onThread(func() { tid = unix.Gettid(); c2.Unref() })
		if f.n.Load() != 1 || int(f.tid.Load()) != tid {
			t.Fatalf("finalized %d times on thread %d, want once on %d", f.n.Load(), f.tid.Load(), tid)
		}
		c2.Unref() // twice is harmless
		if c2.Iteration(false) || c2.Native() != nil {
			t.Fatal("use after Unref was not a no-op")
		}
	})
}

// Destroying sources during dispatch: a source that destroys itself is never dispatched
// again, and a pending source destroyed by an earlier one in the same iteration is
// skipped.
func TestDestroyDuringDispatch(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var na, nb int
	var sb *glibloop.Source
	sa := glibloop.NewSource(&pdsrc{
		p: func(*glibloop.Source) (bool, time.Duration) { return true, 0 },
		d: func(s *glibloop.Source) bool { na++; sb.Destroy(); s.Destroy(); return true },
	})
	sb = alwaysReady(&nb)
	sa.Attach(c) // same priority, attach order: a then b
	sb.Attach(c)
	sa.Unref()
	sb.Unref()
	iterateUntilIdle(c)
	if na != 1 || nb != 0 {
		t.Fatalf("a=%d b=%d, want 1 0", na, nb)
	}
}

// can_recurse: a nested iteration inside Dispatch does not re-enter a source that cannot
// recurse (it is blocked, fds included), and does re-enter one that can.
func TestCanRecurse(t *testing.T) {
	leakcheck.Handles(t)
	for _, recurse := range []bool{false, true} {
		c := testutil.NewContext(t)
		fd := testutil.Eventfd(t)
		testutil.EfdWrite(t, fd) // level-triggered: stays readable
		var calls, maxDepth int
		s := glibloop.NewSource(&dsrc{d: func(s *glibloop.Source) bool {
			calls++
			if d := glibloop.MainDepth(); d > maxDepth {
				maxDepth = d
			}
			if calls == 1 {
				c.Iteration(false) // nested
			}
			return true
		}})
		s.AddUnixFD(fd, glibloop.IOIn)
		s.SetCanRecurse(recurse)
		if s.CanRecurse() != recurse {
			t.Fatal("CanRecurse does not reflect SetCanRecurse")
		}
		s.Attach(c)
		c.Iteration(false)
		want, wantDepth := 1, 1
		if recurse {
			want, wantDepth = 2, 2
		}
		if calls != want || maxDepth != wantDepth {
			t.Errorf("can_recurse=%v: %d dispatches at max depth %d, want %d at %d", recurse, calls, maxDepth, want, wantDepth)
		}
		if glibloop.MainDepth() != 0 {
			t.Fatalf("MainDepth after the iteration = %d", glibloop.MainDepth())
		}
		s.Destroy()
		s.Unref()
	}
}

// /mainloop/child_sources: a child takes its parent's priority, its readiness
// dispatches the parent too, and it lives and dies with the parent.
func TestChildSources(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var np, nc int
	parent := counter(&np)
	child := glibloop.NewSource(&dsrc{d: func(s *glibloop.Source) bool { nc++; s.SetReadyTime(-1); return true }})
	parent.SetPriority(glibloop.PriorityLow)
	parent.AddChildSource(child)
	child.SetPriority(glibloop.PriorityHigh) // ignored: a child has its parent's priority
	if child.Priority() != glibloop.PriorityLow {
		t.Fatalf("child priority = %d, want the parent's %d", child.Priority(), glibloop.PriorityLow)
	}
	parent.Attach(c)
	if child.ID() == 0 {
		t.Fatal("the child was not attached with its parent")
	}
	child.SetReadyTime(0)
	c.Iteration(false)
	if np != 1 || nc != 1 {
		t.Fatalf("child ready: parent=%d child=%d, want 1 1", np, nc)
	}
	parent.SetPriority(glibloop.PriorityHigh)
	if child.Priority() != glibloop.PriorityHigh {
		t.Fatal("the child did not follow its parent's priority")
	}
	parent.RemoveChildSource(child)
	if !child.IsDestroyed() {
		t.Fatal("RemoveChildSource did not destroy the child")
	}
	// A second child dies with its parent.
	child2 := counter(new(int))
	parent.AddChildSource(child2)
	parent.Destroy()
	if !child2.IsDestroyed() {
		t.Fatal("destroying the parent did not destroy its child")
	}
	child.Unref()
	child2.Unref()
	parent.Unref()
}

// /mainloop/blocked_child_sources (bugzilla 701283): adding a child from inside the
// parent's dispatch, while the parent is blocked, must work.
func TestAddChildWhileBlocked(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var nc int
	var child *glibloop.Source
	parent := glibloop.NewSource(&pdsrc{
		p: func(*glibloop.Source) (bool, time.Duration) { return child == nil, -1 },
		d: func(s *glibloop.Source) bool {
			if child == nil {
				child = glibloop.NewSource(&dsrc{d: func(s *glibloop.Source) bool { nc++; s.SetReadyTime(-1); return true }})
				child.SetReadyTime(0)
				s.AddChildSource(child)
			}
			return true
		},
	})
	parent.Attach(c)
	iterateUntilIdle(c)
	if nc != 1 {
		t.Fatalf("child added while its parent was blocked dispatched %d times, want 1", nc)
	}
	parent.Destroy()
	parent.Unref()
	child.Unref()
}

// /mainloop/wakeup: a wakeup makes the next blocking iteration return, even with
// nothing to dispatch.
func TestWakeup(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	c.Wakeup()
	done := make(chan bool)
	go func() { done <- c.Iteration(true) }()
	select {
	case got := <-done:
		if got {
			t.Fatal("a bare wakeup dispatched something")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Iteration(true) blocked after Wakeup")
	}
	// And it wakes an iteration that is already blocked.
	go func() { done <- c.Iteration(true) }()
	time.Sleep(20 * time.Millisecond)
	c.Wakeup()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Wakeup did not end a blocked Iteration")
	}
}

// /mainloop/invoke: Invoke runs at once when the caller owns the context, and from the
// driving thread otherwise.
func TestInvoke(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	if !c.Acquire() {
		t.Fatal("Acquire")
	}
	ran := false
	c.Invoke(func() { ran = true })
	if !ran {
		t.Fatal("Invoke by the owner did not run at once")
	}
	c.Release()

	// Not the owner: the function waits for the context to be iterated.
	var ranOn atomic.Int32
	c.Invoke(func() { ranOn.Store(int32(unix.Gettid())) })
	if ranOn.Load() != 0 {
		// A context no thread owns is acquired by Invoke only when it is the thread
		// default; here it is not.
		t.Fatal("Invoke by a non-owner ran at once")
	}
	var tid int
	onThread(func() { tid = unix.Gettid(); iterateUntilIdle(c) })
	if int(ranOn.Load()) != tid {
		t.Fatalf("invoked function ran on thread %d, want the iterating thread %d", ranOn.Load(), tid)
	}

	// The thread-default context of the caller is acquired and run synchronously.
	onThread(func() {
		c.PushThreadDefault()
		defer c.PopThreadDefault()
		c.Release() // push acquired it; Invoke must acquire it on its own
		sync := false
		c.Invoke(func() { sync = true })
		if !sync {
			t.Error("Invoke on the thread-default context did not run at once")
		}
		c.Acquire() // balance the pop
	})
}

// /mainloop/source_time: the time is cached per iteration, shared by the sources
// dispatched together, and advances between iterations.
func TestSourceTime(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var times []int64
	mk := func() *glibloop.Source {
		return glibloop.NewSource(&pdsrc{
			p: func(*glibloop.Source) (bool, time.Duration) { return true, 0 },
			d: func(s *glibloop.Source) bool {
				t1 := s.Time()
				time.Sleep(2 * time.Millisecond)
				if s.Time() != t1 {
					t.Error("Time changed within one dispatch")
				}
				times = append(times, t1)
				return true
			},
		})
	}
	a, b := mk(), mk()
	if a.Time() != 0 {
		t.Fatal("Time of an unattached source should be 0")
	}
	a.Attach(c)
	b.Attach(c)
	c.Iteration(false)
	if len(times) != 2 || times[0] != times[1] {
		t.Fatalf("times in one iteration: %v, want two equal", times)
	}
	c.Iteration(false)
	if len(times) != 4 || times[2] <= times[0] {
		t.Fatalf("times across iterations: %v, want the second pair later", times)
	}
	a.Destroy()
	b.Destroy()
	a.Unref()
	b.Unref()
}

// The optional interfaces: with no Prepare and no Check the C side never calls Go for
// them, and GLib's NULL semantics hold (not ready, but fds and ready time still work).
func TestOptionalCallbacks(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var n int
	s := counter(&n)
	s.Attach(c)
	defer s.Unref()
	defer s.Destroy()
	if c.Iteration(false) || n != 0 {
		t.Fatal("a source with no Prepare and no Check was dispatched")
	}
	var mu sync.Mutex
	var prepared, checked int
	full := glibloop.NewSource(&fullsrc{
		p: func(*glibloop.Source) (bool, time.Duration) {
			mu.Lock()
			prepared++
			mu.Unlock()
			return false, 5 * time.Microsecond
		},
		c: func(*glibloop.Source) bool { mu.Lock(); checked++; mu.Unlock(); return true },
	})
	full.Attach(c)
	defer full.Unref()
	defer full.Destroy()
	if !c.Iteration(false) || prepared != 1 || checked != 1 {
		t.Fatalf("prepare=%d check=%d, want 1 1", prepared, checked)
	}
}

// Prepare's timeout is rounded up to whole milliseconds, so a 1 µs timeout still
// waits about a millisecond and a blocking iteration returns.
func TestPrepareTimeout(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var n int
	start := time.Now() // before the deadline is set, so el below never undercounts
	deadline := start.Add(30 * time.Millisecond)
	s := glibloop.NewSource(&pdsrc{
		p: func(*glibloop.Source) (bool, time.Duration) {
			d := time.Until(deadline)
			if d <= 0 {
				return true, 0
			}
			return false, d
		},
		d: func(*glibloop.Source) bool { n++; return false },
	})
	s.Attach(c)
	s.Unref()
	for n == 0 {
		c.Iteration(true)
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Fatalf("dispatched after %v, before the 30ms the source asked for", el)
	}
}

// Misuse of child sources is stopped before GLib sees it: removing a child after either
// side was destroyed, or from a source that is not its parent, logs no critical.
func TestChildSourceMisuseNoCriticals(t *testing.T) {
	leakcheck.Handles(t)
	stop := cshim.CountGLibWarnings()
	c := testutil.NewContext(t)
	parent, child, other := counter(new(int)), counter(new(int)), counter(new(int))
	parent.AddChildSource(child)
	parent.Attach(c)
	other.RemoveChildSource(child) // not its parent
	parent.Destroy()
	parent.RemoveChildSource(child) // already detached by the destroy
	parent.AddChildSource(other)    // destroyed parent
	child.Unref()
	parent.Unref()
	other.Unref()
	if n := stop(); n != 0 {
		t.Fatalf("GLib logged %d criticals or warnings", n)
	}
}

// CurrentSource and SourceFromNative find the Go source being dispatched;
// ThreadDefaultContext follows PushThreadDefault.
func TestCurrentSourceAndThreadDefault(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var s, seen *glibloop.Source
	s = glibloop.NewSource(&pdsrc{
		p: func(*glibloop.Source) (bool, time.Duration) { return true, 0 },
		d: func(*glibloop.Source) bool { seen = glibloop.CurrentSource(); return false },
	})
	s.Attach(c)
	if glibloop.SourceFromNative(s.Native()) != s {
		t.Fatal("SourceFromNative did not return the source")
	}
	s.Unref()
	c.Iteration(false)
	if seen != s || glibloop.CurrentSource() != nil {
		t.Fatalf("CurrentSource in Dispatch = %p, want %p; outside = %p", seen, s, glibloop.CurrentSource())
	}
	onThread(func() {
		if d := glibloop.ThreadDefaultContext(); d != glibloop.DefaultContext() {
			t.Error("ThreadDefaultContext without a push is not the default context")
		}
		c.PushThreadDefault()
		d := glibloop.ThreadDefaultContext()
		if d.Native() != c.Native() {
			t.Error("ThreadDefaultContext does not follow PushThreadDefault")
		}
		d.Unref()
		c.PopThreadDefault()
	})
}
