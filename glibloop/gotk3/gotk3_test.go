package gotk3_test

import (
	"unsafe"

	"github.com/glibaio/glibaio/glibloop/gotk3"

	"testing"

	"github.com/glibaio/glibaio/internal/cbaseline"
	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/gotk3/gotk3/glib"

	"github.com/glibaio/glibaio/glibloop"
)

// Wrap names the same GMainContext as gotk3, and gotk3's own GMainLoop dispatches a
// Go-defined source attached through it.
func TestGotk3Interop(t *testing.T) {
	leakcheck.Handles(t)
	g := glib.MainContextDefault()
	c := gotk3.Wrap(g)
	if c != glibloop.DefaultContext() || c.Native() != glibloop.DefaultContext().Native() {
		t.Fatal("Wrap(glib.MainContextDefault()) is not the default context")
	}
	if gotk3.Unwrap(c) != g {
		t.Fatal("Unwrap does not return gotk3's context")
	}
	loop := glib.MainLoopNew(g, false)
	defer cbaseline.MainLoopUnref(unsafe.Pointer(loop))
	var n int
	s := glibloop.NewSource(&dsrc{d: func(s *glibloop.Source) bool {
		n++
		loop.Quit()
		return false
	}})
	s.SetReadyTime(glibloop.MonotonicTime() + 10_000)
	s.Attach(c)
	s.Unref()
	timeout := glib.TimeoutAdd(5000, func() bool { loop.Quit(); return false })
	loop.Run()
	if n != 1 {
		t.Fatalf("gotk3's MainLoop dispatched the Go source %d times, want 1", n)
	}
	glib.SourceRemove(timeout)

	// And a context gotk3 hands us by pointer wraps with its own reference.
	own := glibloop.NewMainContext()
	w := glibloop.WrapMainContext(own.Native())
	own.Unref()
	glibloop.IdleAdd(w, func() bool { n++; return false })
	if !w.Iteration(false) || n != 2 {
		t.Fatal("a wrapped context does not work after the original wrapper's Unref")
	}
	w.Unref()
}

// Wrap takes a reference of its own, Unwrap borrows the wrapper's, and both keep nil.
func TestWrapReferences(t *testing.T) {
	leakcheck.Handles(t)
	if gotk3.Wrap(nil) != nil {
		t.Fatal("Wrap(nil) is not nil")
	}
	orig := glibloop.NewMainContext()
	g := gotk3.Unwrap(orig)
	if unsafe.Pointer(g) != orig.Native() {
		t.Fatal("Unwrap does not name the same GMainContext")
	}
	w := gotk3.Wrap(g)
	orig.Unref() // the context lives on: w holds its own reference
	if gotk3.Unwrap(orig) != nil {
		t.Fatal("Unwrap of an Unref'd context is not nil")
	}
	var ran bool
	glibloop.IdleAdd(w, func() bool { ran = true; return false })
	if !gotk3.Unwrap(w).Iteration(false) || !ran {
		t.Fatal("gotk3's iteration of the wrapped context did not dispatch a glibloop callback")
	}
	w.Unref()
}

// dsrc is a Dispatch-only source.
type dsrc struct{ d func(*glibloop.Source) bool }

func (x *dsrc) Dispatch(s *glibloop.Source) bool { return x.d(s) }

func TestMain(m *testing.M) { leakcheck.Main(m) }
