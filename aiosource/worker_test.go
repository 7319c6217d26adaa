package aiosource_test

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// worker is a goroutine locked to its own OS thread that runs the functions it is given:
// two live workers are two OS threads.
type worker struct {
	fns chan func()
	tid int
}

func newWorker(t *testing.T) *worker {
	t.Helper()
	w := &worker{fns: make(chan func())}
	started := make(chan int)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		started <- unix.Gettid()
		for fn := range w.fns {
			fn()
		}
	}()
	w.tid = <-started
	t.Cleanup(func() { close(w.fns); <-done })
	return w
}

// do runs fn on the worker and waits for it.
func (w *worker) do(fn func()) { <-w.start(fn) }

// start runs fn on the worker and returns a channel closed when fn has returned.
func (w *worker) start(fn func()) <-chan struct{} {
	done := make(chan struct{})
	w.fns <- func() { defer close(done); fn() }
	return done
}

// panicOf runs fn and returns what it panicked with (nil: it did not).
func panicOf(fn func()) (r any) {
	defer func() { r = recover() }()
	fn()
	return nil
}

// waitClosed fails t if ch is not closed within 10 s (a hang, not a timing assertion).
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no progress in 10 s", what)
	}
}
