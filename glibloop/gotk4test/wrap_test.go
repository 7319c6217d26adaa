package gotk4test_test

import (
	"runtime"
	"testing"

	"github.com/diamondburned/gotk4/pkg/core/gextras"

	"github.com/glibaio/glibaio/glibloop"
)

// gotk4's generated records, glib/v2's *glib.MainContext among them, are built with
// gextras.NewStructNative and give their C pointer back through gextras.StructNative.
// glib/v2 does not build on GLib 2.74, so this test builds a record of the same shape
// around a GMainContext* and takes the path the package doc shows for glib/v2:
// glibloop.WrapMainContext(gextras.StructNative(unsafe.Pointer(mc))).
func TestWrapMainContextFromGotk4Record(t *testing.T) {
	setup(t)

	// The default context: WrapMainContext returns glibloop's own wrapper.
	rec := gextras.NewStructNative(glibloop.DefaultContext().Native())
	if c := glibloop.WrapMainContext(gextras.StructNative(rec)); c != glibloop.DefaultContext() {
		t.Fatal("a gotk4 record of g_main_context_default() did not wrap to DefaultContext()")
	}

	// Another context: the wrapper takes its own reference, so it keeps working after
	// the reference behind the record is dropped (as glib/v2's finalizer would do).
	own := glibloop.NewMainContext()
	rec = gextras.NewStructNative(own.Native())
	c := glibloop.WrapMainContext(gextras.StructNative(rec))
	runtime.KeepAlive(rec)
	if c == nil || c.Native() != own.Native() || c == own {
		t.Fatal("WrapMainContext did not make a new wrapper of the record's GMainContext*")
	}
	own.Unref()
	n := 0
	glibloop.IdleAdd(c, func() bool { n++; return false })
	if !c.Iteration(false) || n != 1 {
		t.Fatalf("the wrapped context dispatched %d callbacks after the original Unref, want 1", n)
	}
	c.Unref()
}
