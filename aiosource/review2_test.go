package aiosource_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

// A panic in thread-pool work raised at Close: Close still releases everything (the
// source is destroyed) and then raises it; a second Close is ErrClosed.
func TestClosePanicsOnlyAfterReleasing(t *testing.T) {
	leakcheck.Handles(t)
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	src := c.Source().Ref()
	defer src.Unref()
	done := make(chan struct{})
	c.Submit(func() error { defer close(done); panic("work-at-close") }, func(error) {})
	<-done
	time.Sleep(10 * time.Millisecond)
	var pe *glibloop.PanicError
	func() {
		defer func() { pe, _ = recover().(*glibloop.PanicError) }()
		c.Close()
	}()
	if pe == nil || pe.Value != "work-at-close" {
		t.Fatalf("Close raised %v, want the work's panic", pe)
	}
	if !src.IsDestroyed() {
		t.Fatal("Close panicked before destroying the GSource")
	}
	if !errors.Is(c.Close(), aiosource.ErrClosed) {
		t.Fatal("second Close")
	}
}

// Close delivers every completion exactly once: ErrClosed for queued jobs, the result
// for jobs that ran.
func TestCloseDeliversEveryCompletion(t *testing.T) {
	leakcheck.Handles(t)
	for round := 0; round < 20; round++ {
		c, _ := aiosource.New()
		const jobs = 200
		var calls atomic.Int32
		for i := 0; i < jobs; i++ {
			c.Submit(func() error { return nil }, func(error) { calls.Add(1) })
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if n := calls.Load(); n != jobs {
			t.Fatalf("round %d: %d of %d completions delivered by Close", round, n, jobs)
		}
	}
}

// Stop from the IOThread's own callback is refused instead of deadlocking; a context
// closed directly ends the thread, and Stop then returns at once.
func TestIOThreadStopEdges(t *testing.T) {
	leakcheck.Handles(t)
	th, err := aiosource.NewIOThread("edge")
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	th.Context().ScheduleOneshot(func() { res <- th.Stop() })
	select {
	case err := <-res:
		if !errors.Is(err, aiosource.ErrStopFromOwnThread) {
			t.Fatalf("Stop from its own thread = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop from the thread's own callback deadlocked")
	}
	if err := th.Stop(); err != nil {
		t.Fatal(err)
	}

	th2, _ := aiosource.NewIOThread("closed-directly")
	th2.Context().ScheduleOneshot(func() { th2.Context().Close() }) // from its own thread
	stopped := make(chan error, 1)
	go func() { stopped <- th2.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop hung after the context was closed directly")
	}
}
