package aiosource_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/leakcheck"
	"github.com/glibaio/glibaio/internal/testutil"

	"github.com/glibaio/glibaio/aiosource"
)

// blockPool fills a pool of one worker with work that waits for the returned channel to
// close, and returns once that work runs.
func blockPool(t *testing.T, c *aiosource.Context, done func(error)) chan struct{} {
	t.Helper()
	if err := c.SetThreadPoolSize(1); err != nil {
		t.Fatal(err)
	}
	release, started := make(chan struct{}), make(chan struct{})
	c.Submit(func() error { close(started); <-release; return nil }, done)
	<-started
	return release
}

// drive iterates until cond holds, or fails after 10 s.
func (m *mode) drive(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10 s", what)
		}
		m.iterate(false)
		time.Sleep(100 * time.Microsecond)
	}
}

// Cancel (thread_pool_cancel via bdrv_aio_cancel_async): a queued request completes on
// the loop with ErrCanceled, which is unix.ECANCELED, and its work never runs; a
// running one completes normally; a completed one is left alone.
func TestRequestCancel(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		errRunning := errors.New("the running request's result")
		var runningErr, queuedErr []error
		var queuedRan atomic.Bool
		release := make(chan struct{})
		started := make(chan struct{})
		if err := m.ctx.SetThreadPoolSize(1); err != nil {
			t.Fatal(err)
		}
		running := m.ctx.SubmitAIO(func() error { close(started); <-release; return errRunning },
			func(err error) { runningErr = append(runningErr, err) })
		<-started
		queued := m.ctx.SubmitAIO(func() error { queuedRan.Store(true); return nil },
			func(err error) { queuedErr = append(queuedErr, err) })

		cancelled := make(chan struct{})
		go func() { queued.Cancel(); close(cancelled) }() // any goroutine may cancel
		<-cancelled
		running.Cancel()
		queued.Cancel() // twice: nothing more
		if len(queuedErr) != 0 {
			t.Fatal("Cancel ran done itself; it must run on the loop")
		}
		m.drive(t, "the cancelled request's completion", func() bool { return len(queuedErr) > 0 })
		if err := queuedErr[0]; !errors.Is(err, unix.ECANCELED) || !errors.Is(err, aiosource.ErrCanceled) ||
			err.Error() != "aiosource: thread-pool request canceled: operation canceled" {
			t.Fatalf("cancelled request: done(%v), want ErrCanceled", err)
		}
		if len(runningErr) != 0 {
			t.Fatal("the running request completed before its work returned")
		}
		close(release)
		m.drive(t, "the running request's completion", func() bool { return len(runningErr) > 0 })
		if runningErr[0] != errRunning {
			t.Fatalf("running request: done(%v), want its work's result", runningErr[0])
		}
		if queuedRan.Load() {
			t.Fatal("the cancelled request's work ran")
		}

		// After completion Cancel does nothing, even to a request queued later.
		release2 := blockPool(t, m.ctx, nil)
		var laterErr []error
		later := m.ctx.SubmitAIO(func() error { return nil }, func(err error) { laterErr = append(laterErr, err) })
		queued.Cancel()
		running.Cancel()
		close(release2)
		m.drive(t, "the later request's completion", func() bool { return len(laterErr) > 0 })
		m.flush()
		if len(queuedErr) != 1 || len(runningErr) != 1 || len(laterErr) != 1 || laterErr[0] != nil {
			t.Fatalf("completions: cancelled %v, running %v, later %v; want each once, later nil", queuedErr, runningErr, laterErr)
		}
		later.Cancel()
	})
}

// CancelSync (bdrv_aio_cancel) returns once done has run: at once for a queued request,
// after its work returns for a running one, and at once for a completed one.
func TestRequestCancelSync(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		var runningDone, queuedDone []error
		var returned atomic.Bool
		release, started := make(chan struct{}), make(chan struct{})
		m.ctx.SetThreadPoolSize(1)
		running := m.ctx.SubmitAIO(func() error {
			close(started)
			<-release
			returned.Store(true)
			return nil
		}, func(err error) { runningDone = append(runningDone, err) })
		<-started
		queued := m.ctx.SubmitAIO(func() error { return nil }, func(err error) { queuedDone = append(queuedDone, err) })
		queued.CancelSync()
		if len(queuedDone) != 1 || !errors.Is(queuedDone[0], unix.ECANCELED) {
			t.Fatalf("after CancelSync of a queued request: done %v, want one ErrCanceled", queuedDone)
		}
		time.AfterFunc(20*time.Millisecond, func() { close(release) })
		running.CancelSync()
		if !returned.Load() || len(runningDone) != 1 || runningDone[0] != nil {
			t.Fatalf("after CancelSync of a running request: work returned %v, done %v", returned.Load(), runningDone)
		}
		running.CancelSync()
		queued.CancelSync()
		if len(runningDone) != 1 || len(queuedDone) != 1 {
			t.Fatal("CancelSync of a completed request ran done again")
		}
		// From the request's own done: it has completed, so CancelSync returns.
		var self *aiosource.Request
		ok := false
		self = m.ctx.SubmitAIO(func() error { return nil }, func(error) { self.CancelSync(); ok = true })
		m.drive(t, "CancelSync from its own done", func() bool { return ok })
	})
}

// SubmitAIO after Close completes at once with ErrClosed; Close completes a queued
// request with ErrClosed; Cancel and CancelSync of either do nothing. A nil work panics.
func TestRequestClosed(t *testing.T) {
	leakcheck.Handles(t)
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	release := blockPool(t, c, nil)
	var queuedErr []error
	queued := c.SubmitAIO(func() error { return nil }, func(err error) { queuedErr = append(queuedErr, err) })
	time.AfterFunc(10*time.Millisecond, func() { close(release) })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if len(queuedErr) != 1 || !errors.Is(queuedErr[0], aiosource.ErrClosed) {
		t.Fatalf("queued request at Close: done %v, want ErrClosed", queuedErr)
	}
	var afterErr []error
	after := c.SubmitAIO(func() error { return nil }, func(err error) { afterErr = append(afterErr, err) })
	if len(afterErr) != 1 || !errors.Is(afterErr[0], aiosource.ErrClosed) {
		t.Fatalf("SubmitAIO after Close: done %v, want ErrClosed at once", afterErr)
	}
	for _, r := range []*aiosource.Request{queued, after} {
		r.Cancel()
		r.CancelSync()
	}
	if len(queuedErr) != 1 || len(afterErr) != 1 {
		t.Fatal("Cancel after Close ran done again")
	}
	testutil.MustPanic(t, "aiosource: SubmitAIO: nil work", func() { c.SubmitAIO(nil, nil) })
	var zero aiosource.Request
	zero.Cancel()
	zero.CancelSync()
}
