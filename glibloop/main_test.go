package glibloop_test

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/glibloop"
)

func TestMain(m *testing.M) {
	if os.Getenv("GLIBLOOP_PANIC_CHILD") != "" {
		panicChild() // the default panic handler's subprocess; exits with status 2
	}
	leakcheck.Main(m)
}

// Test sources: one type per combination of optional callbacks, because the callbacks a
// type implements decide which ones GLib sees.

// dsrc implements Dispatch only.
type dsrc struct{ d func(*glibloop.Source) bool }

func (x *dsrc) Dispatch(s *glibloop.Source) bool { return x.d(s) }

// pdsrc implements Prepare and Dispatch.
type pdsrc struct {
	p func(*glibloop.Source) (bool, time.Duration)
	d func(*glibloop.Source) bool
}

func (x *pdsrc) Prepare(s *glibloop.Source) (bool, time.Duration) { return x.p(s) }
func (x *pdsrc) Dispatch(s *glibloop.Source) bool                 { return x.d(s) }

// fullsrc implements all four; nil funcs answer as GLib does for NULL.
type fullsrc struct {
	p func(*glibloop.Source) (bool, time.Duration)
	c func(*glibloop.Source) bool
	d func(*glibloop.Source) bool
	f func(*glibloop.Source)
}

func (x *fullsrc) Prepare(s *glibloop.Source) (bool, time.Duration) {
	if x.p == nil {
		return false, -1
	}
	return x.p(s)
}
func (x *fullsrc) Check(s *glibloop.Source) bool {
	if x.c == nil {
		return false
	}
	return x.c(s)
}
func (x *fullsrc) Dispatch(s *glibloop.Source) bool {
	if x.d == nil {
		return true
	}
	return x.d(s)
}
func (x *fullsrc) Finalize(s *glibloop.Source) {
	if x.f != nil {
		x.f(s)
	}
}

// counter is a Dispatch-only source that counts its dispatches.
func counter(n *int) *glibloop.Source {
	return glibloop.NewSource(&dsrc{d: func(*glibloop.Source) bool { *n++; return true }})
}

// alwaysReady is a source whose Prepare is always ready and whose Dispatch counts.
func alwaysReady(n *int) *glibloop.Source {
	return glibloop.NewSource(&pdsrc{
		p: func(*glibloop.Source) (bool, time.Duration) { return true, 0 },
		d: func(*glibloop.Source) bool { *n++; return true },
	})
}

// iterateUntilIdle runs non-blocking iterations until one dispatches nothing and
// returns how many dispatched something.
func iterateUntilIdle(c *glibloop.MainContext) int {
	n := 0
	for c.Iteration(false) {
		n++
		if n > 10000 {
			panic("context never went idle")
		}
	}
	return n
}

// onThread runs fn on a goroutine locked to its own OS thread and waits for it.
func onThread(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The goroutine exits locked, so the runtime retires the thread with it.
		lockOSThread()
		fn()
	}()
	<-done
}

// lockOSThread pins the calling goroutine; it exits locked so the thread is retired.
func lockOSThread() { runtime.LockOSThread() }
