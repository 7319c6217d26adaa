package glibloop_test

import (
	"unsafe"

	"github.com/glibaio/glibaio/cshim/cbaseline"
	"github.com/glibaio/glibaio/internal/leakcheck"
	"testing"

	"github.com/glibaio/glibaio/glibloop"
	"github.com/gotk3/gotk3/glib"
)

// FromGotk3 names the same GMainContext as gotk3, and gotk3's own GMainLoop dispatches a
// Go-defined source attached through it.
func TestGotk3Interop(t *testing.T) {
	leakcheck.Handles(t)
	g := glib.MainContextDefault()
	c := glibloop.FromGotk3(g)
	if c != glibloop.DefaultContext() || c.Native() != glibloop.DefaultContext().Native() {
		t.Fatal("FromGotk3(glib.MainContextDefault()) is not the default context")
	}
	if c.Gotk3() != g {
		t.Fatal("Gotk3() does not return gotk3's context")
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
