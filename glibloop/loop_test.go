package glibloop_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"
	"github.com/glibaio/glibaio/internal/testutil"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/glibloop"
)

func TestLoopRunQuit(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	l := glibloop.NewLoop(c)
	started := make(chan struct{})
	glibloop.IdleAdd(c, func() bool { close(started); return false })
	done := make(chan error)
	go func() { done <- l.Run(context.Background()) }()
	<-started
	if !l.IsRunning() {
		t.Fatal("IsRunning = false inside Run")
	}
	l.Quit() // from another goroutine, while the loop blocks in ppoll
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Quit from another goroutine did not end Run")
	}
	if l.IsRunning() || l.Iterations() == 0 {
		t.Fatalf("after Run: IsRunning=%v Iterations=%d", l.IsRunning(), l.Iterations())
	}
}

func TestLoopRunContext(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	l := glibloop.NewLoop(c)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()
	if err := l.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want DeadlineExceeded", err)
	}
	// Against the deadline itself (monotonic), not a time read after it was set.
	if early := time.Until(deadline); early > 0 {
		t.Fatalf("Run returned %v before its context's deadline", early)
	}
	// An already cancelled context returns at once.
	if err := l.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run with a done context = %v", err)
	}
}

// Nested Runs: Quit ends every active Run of the same Loop, as g_main_loop_quit does;
// a different Loop nested on the same context ends alone.
func TestLoopNested(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	outer := glibloop.NewLoop(c)
	inner := glibloop.NewLoop(c)
	var steps []string
	glibloop.IdleAdd(c, func() bool {
		steps = append(steps, "outer-dispatch")
		glibloop.IdleAdd(c, func() bool {
			steps = append(steps, "inner-dispatch")
			inner.Quit()
			return false
		})
		if err := inner.Run(context.Background()); err != nil {
			t.Error(err)
		}
		steps = append(steps, "inner-returned")
		// Now nest the same loop and quit it: both levels end.
		glibloop.IdleAdd(c, func() bool { outer.Quit(); return false })
		if err := outer.Run(context.Background()); err != nil {
			t.Error(err)
		}
		steps = append(steps, "nested-outer-returned")
		return false
	})
	done := make(chan error)
	go func() { done <- outer.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("nested loops did not end; steps %v", steps)
	}
	want := []string{"outer-dispatch", "inner-dispatch", "inner-returned", "nested-outer-returned"}
	if len(steps) != len(want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
	for i := range want {
		if steps[i] != want[i] {
			t.Fatalf("steps %v, want %v", steps, want)
		}
	}
}

func TestLoopNotOwner(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	release := make(chan struct{})
	owned := make(chan struct{})
	go func() {
		c.Acquire()
		close(owned)
		<-release
		c.Release()
	}()
	<-owned
	if err := glibloop.NewLoop(c).Run(context.Background()); !errors.Is(err, glibloop.ErrNotOwner) {
		t.Fatalf("Run on a context owned elsewhere = %v, want ErrNotOwner", err)
	}
	close(release)
	gone := glibloop.NewMainContext()
	l := glibloop.NewLoop(gone)
	gone.Unref()
	if err := l.Run(context.Background()); !errors.Is(err, glibloop.ErrContextGone) {
		t.Fatalf("Run on an unref'd context = %v, want ErrContextGone", err)
	}
}

// The fd array grows until GLib's answer fits, and every fd stays watched.
func TestLoopManyFDs(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	l := glibloop.NewLoop(c)
	var fired []int
	var fds []int
	s := glibloop.NewSource(&dsrc{d: func(s *glibloop.Source) bool {
		for _, fd := range fds {
			var b [8]byte
			if n, _ := unix.Read(fd, b[:]); n == 8 {
				fired = append(fired, fd)
			}
		}
		if len(fired) == 3 {
			l.Quit()
		}
		return true
	}})
	for i := 0; i < 200; i++ {
		fd := testutil.Eventfd(t)
		fds = append(fds, fd)
		s.AddUnixFD(fd, glibloop.IOIn)
	}
	s.Attach(c)
	defer s.Unref()
	defer s.Destroy()
	for _, i := range []int{0, 99, 199} {
		testutil.EfdWrite(t, fds[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Run(ctx); err != nil {
		t.Fatalf("Run: %v (fired %v)", err, fired)
	}
}

// Signals interrupt ppoll with EINTR; the driver retries with the remaining timeout, so
// neither the wait nor the iteration count is disturbed.
func TestLoopSurvivesSignalStorm(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	l := glibloop.NewLoop(c)
	var tid atomic.Int64
	started := make(chan struct{})
	glibloop.IdleAdd(c, func() bool { tid.Store(int64(unix.Gettid())); close(started); return false })
	var fired time.Time
	s := glibloop.NewSource(&dsrc{d: func(*glibloop.Source) bool { fired = time.Now(); l.Quit(); return false }})
	done := make(chan error)
	var start time.Time
	go func() {
		<-started
		start = time.Now()
		s.SetReadyTime(glibloop.MonotonicTime() + 300_000)
		s.Attach(c)
		s.Unref()
	}()
	go func() { done <- l.Run(context.Background()) }()
	<-started
	stop := make(chan struct{})
	sent := testutil.SignalStorm(int(tid.Load()), stop)
	err := <-done
	close(stop)
	n := <-sent
	if err != nil {
		t.Fatal(err)
	}
	// Without the retry on EINTR any signal that lands during the wait ends it, so a
	// few dozen signals over 300 ms show the bug. (The storm sleeps 50 µs between
	// signals, but on a loaded machine each sleep may take milliseconds.)
	if n < 30 {
		t.Fatalf("only %d signals were sent in 300 ms: the storm did not run", n)
	}
	if el := fired.Sub(start); el < 295*time.Millisecond {
		t.Fatalf("the 300ms source fired after %v under a signal storm", el)
	}
	// idle, attach wakeup, ready time, and a spare: each EINTR would have added one.
	if it := l.Iterations(); it > 6 {
		t.Fatalf("%d iterations for %d signals: EINTR ended waits early", it, n)
	}
}

func TestPPollEINTR(t *testing.T) {
	leakcheck.Handles(t)
	done := make(chan struct{})
	var tid atomic.Int64
	var el time.Duration
	var n int
	var err error
	go func() {
		defer close(done)
		lockOSThread()
		tid.Store(int64(unix.Gettid()))
		start := time.Now()
		n, err = glibloop.PPoll(nil, 200*time.Millisecond)
		el = time.Since(start)
	}()
	for tid.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	stop := make(chan struct{})
	sent := testutil.SignalStorm(int(tid.Load()), stop)
	<-done
	close(stop)
	<-sent
	if err != nil || n != 0 || el < 195*time.Millisecond {
		t.Fatalf("PPoll(200ms) under signals = %d, %v after %v", n, err, el)
	}
}
