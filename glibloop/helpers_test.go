package glibloop_test

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/testutil"

	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

func TestIdleAdd(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var order []string
	n := 0
	id := glibloop.IdleAdd(c, func() bool { n++; order = append(order, "idle"); return n < 3 })
	glibloop.IdleAddPriority(c, glibloop.PriorityHigh, func() bool { order = append(order, "high"); return false })
	if id == 0 {
		t.Fatal("IdleAdd returned id 0")
	}
	iterateUntilIdle(c)
	if n != 3 || order[0] != "high" {
		t.Fatalf("idle ran %d times in order %v, want 3 after high", n, order)
	}
	if c.RemoveSource(id) {
		t.Fatal("RemoveSource found an idle that had removed itself")
	}
	// Removed from outside: the callback never runs and its handle is released.
	ran := false
	id = glibloop.IdleAdd(c, func() bool { ran = true; return true })
	if !c.RemoveSource(id) {
		t.Fatal("RemoveSource did not find a live idle")
	}
	iterateUntilIdle(c)
	if ran {
		t.Fatal("a removed idle ran")
	}
	if c.RemoveSource(0) || c.RemoveSource(999999) {
		t.Fatal("RemoveSource of unknown ids reported success")
	}
}

func TestTimeoutAdd(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	start := time.Now()
	var fired []time.Duration
	glibloop.TimeoutAdd(c, 20*time.Millisecond, func() bool {
		fired = append(fired, time.Since(start))
		return len(fired) < 2
	})
	for len(fired) < 2 {
		c.Iteration(true)
	}
	if fired[0] < 20*time.Millisecond || fired[1] < 40*time.Millisecond {
		t.Fatalf("a 20ms timeout fired at %v", fired)
	}
	id := glibloop.TimeoutAddPriority(c, glibloop.PriorityLow, time.Hour, func() bool { return true })
	if !c.RemoveSource(id) {
		t.Fatal("RemoveSource of a pending timeout")
	}
}

func TestUnixFDAdd(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	fd := testutil.Eventfd(t)
	var got []glibloop.IOCondition
	id := glibloop.UnixFDAdd(c, fd, glibloop.IOIn, func(f int, rev glibloop.IOCondition) bool {
		if f != fd {
			t.Errorf("callback fd %d, want %d", f, fd)
		}
		got = append(got, rev)
		testutil.EfdDrain(f)
		return len(got) < 2
	})
	if id == 0 {
		t.Fatal("UnixFDAdd returned 0")
	}
	if c.Iteration(false) {
		t.Fatal("dispatched an fd with nothing to read")
	}
	for i := 0; i < 3; i++ {
		testutil.EfdWrite(t, fd)
		c.Iteration(false)
	}
	if len(got) != 2 || got[0] != glibloop.IOIn {
		t.Fatalf("revents %v, want IN twice and then removed", got)
	}
	if glibloop.UnixFDAddPriority(c, glibloop.PriorityHigh, -1, glibloop.IOIn, func(int, glibloop.IOCondition) bool { return false }) != 0 {
		t.Fatal("UnixFDAdd(-1) returned an id")
	}
}

// 10,000 sources of every kind come and go without leaving a handle or goroutine behind
// (TestMain checks goroutines with goleak).
func TestManySourcesNoLeak(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	fd := testutil.Eventfd(t)
	finalized := 0
	for i := 0; i < 10000; i++ {
		s := glibloop.NewSource(&fullsrc{f: func(*glibloop.Source) { finalized++ }})
		s.AddUnixFD(fd, glibloop.IOIn)
		s.Attach(c)
		s.Unref()
		s.Destroy()
	}
	if finalized != 10000 {
		t.Fatalf("%d of 10000 sources finalized", finalized)
	}
	ids := make([]uint, 0, 10000)
	for i := 0; i < 10000; i++ {
		switch i % 3 {
		case 0:
			ids = append(ids, glibloop.IdleAdd(c, func() bool { return true }))
		case 1:
			ids = append(ids, glibloop.TimeoutAdd(c, time.Hour, func() bool { return true }))
		case 2:
			ids = append(ids, glibloop.UnixFDAdd(c, fd, glibloop.IOIn, func(int, glibloop.IOCondition) bool { return true }))
		}
	}
	for _, id := range ids {
		if !c.RemoveSource(id) {
			t.Fatalf("source %d not found", id)
		}
	}
	// Sources that end themselves release their handles too.
	for i := 0; i < 10000; i++ {
		glibloop.IdleAdd(c, func() bool { return false })
	}
	iterateUntilIdle(c)
}

// An idle added from another goroutine while the owner blocks in Iteration(true) runs in
// the very iteration its attach woke, as with GLib's own idle source.
func TestIdleAddFromOtherGoroutineRunsInWakingIteration(t *testing.T) {
	leakcheck.Handles(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := testutil.NewContext(t)
	if !c.Acquire() {
		t.Fatal("Acquire")
	}
	defer c.Release()
	var ran atomic.Bool
	go func() {
		time.Sleep(20 * time.Millisecond) // let the owner block in poll first
		glibloop.IdleAdd(c, func() bool { ran.Store(true); return false })
	}()
	if dispatched := c.Iteration(true); !dispatched || !ran.Load() {
		t.Fatalf("Iteration(true) = %v, idle ran = %v; want both true", dispatched, ran.Load())
	}
}
