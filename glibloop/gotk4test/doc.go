// Package gotk4test holds only tests. They show that a gotk4 program
// (github.com/diamondburned/gotk4/pkg v0.3.1) and glibaio share GTK's default
// GMainContext. There is no gotk4 adapter package to import: glibloop.DefaultContext()
// is the context that gotk4's core/glib ("coreglib") and GTK use. Nothing in glibloop
// or aiosource imports gotk4, so only these tests compile it.
//
// # Version limits
//
// gotk4 v0.3.1's generated package github.com/diamondburned/gotk4/pkg/glib/v2 was
// generated from GLib 2.80 and calls it without version guards. It uses GPathBuf
// (2.76), g_utf8_truncate_middle (2.78), and g_dir_unref,
// g_date_time_new_from_unix_utc_usec and g_log_writer_syslog (2.80). It therefore needs
// GLib >= 2.80. This was found by checking every GLib symbol that glib/v2 calls against
// the 2.74 headers; a failed build names only the first missing symbols. glib/v2 does
// not build on GLib 2.74 (Debian 12), and neither do the gotk4 packages that import it
// (gio/v2, gtk3, gtk4).
// github.com/diamondburned/gotk4/pkg/core/glib builds on GLib 2.74 and needs only the
// glib-2.0, gobject-2.0 and gio-2.0 pkg-config modules. gobject-introspection-1.0
// (libgirepository1.0-dev) is needed by gotk4's core/gerror, which glib/v2 imports,
// not by core/glib. These tests use only core/glib and core/gextras, so they run on
// GLib 2.74 without a display: GTK is never initialised.
//
// # What the tests prove
//
//   - coreglib.IdleAdd and IdleAddPriority, glibloop's idle helpers, Go-defined
//     glibloop sources, and the BHs of an aiosource.Context attached to
//     glibloop.DefaultContext() run in the same iterations of that context. GLib runs
//     one priority level per iteration, highest level first, and within a level in
//     the order the callbacks were attached. This holds whether
//     glibloop.DefaultContext().Iteration or glibloop.NewLoop(...).Run drives the
//     context.
//   - coreglib.TimeoutAdd and TimeoutAddPriority, glibloop.TimeoutAdd and aiosource
//     timers on ClockRealtime and ClockHost fire in deadline order on the same loop.
//     Each fires in its own iteration and none fires early.
//   - Removing a coreglib source with coreglib.SourceRemove and its handle, before
//     dispatch or from a glibaio callback in the same iteration, stops only that
//     source. Source ids form one namespace: coreglib.SourceRemove removes a glibaio
//     source by the id from Attach, and MainContext.RemoveSource removes a coreglib
//     source by its handle.
//   - coreglib's priorities have the same values as glibloop's.
//
// # How coreglib schedules
//
// coreglib.IdleAdd, IdleAddPriority, TimeoutAdd, TimeoutAddPriority, TimeoutSecondsAdd
// and TimeoutSecondsAddPriority call g_idle_add_full, g_timeout_add_full or
// g_timeout_add_seconds_full. These always use the global default context: coreglib
// has no way to target another context. Each callback is a func() or func() bool kept
// in a gotk4 registry, and it runs on whichever thread iterates the default context.
// coreglib does not start a loop, start goroutines or lock threads. It also queues the
// release of GObjects collected by Go's GC on the default context (with
// g_main_context_invoke), so a gotk4 program must keep iterating that context.
//
// A panic in a coreglib callback is not caught by glibaio. coreglib re-panics inside
// its cgo callback, so the panic unwinds through GLib's dispatch. It reaches the
// caller of Iteration or Loop.Run as coreglib's string, not as a
// *glibloop.PanicError. The default context is then left owned by that OS thread,
// with g_main_depth stuck at 1 (measured). Recover inside coreglib callbacks, or
// schedule with glibloop.IdleAdd and glibaio's sources, which do recover.
//
// # A GMainContext from glib/v2 (GLib >= 2.80)
//
// Where glib/v2 builds, its *glib.MainContext is a gotk4 record. gotk4 gives records
// no Native method; core/gextras.StructNative returns the GMainContext*.
// glibloop.WrapMainContext takes its own reference, so the glib/v2 value may be
// garbage-collected afterwards. The runtime.KeepAlive keeps glib/v2's finalizer from
// dropping the context before WrapMainContext has taken its reference. This code is
// not compiled here (glib/v2 cannot build on GLib 2.74). TestWrapMainContextFromGotk4Record
// compiles and tests the same path with a record of the same shape.
//
//	import (
//		"runtime"
//		"unsafe"
//
//		"github.com/diamondburned/gotk4/pkg/core/gextras"
//		"github.com/diamondburned/gotk4/pkg/glib/v2"
//		"github.com/glibaio/glibaio/aiosource"
//		"github.com/glibaio/glibaio/glibloop"
//	)
//
//	mc := glib.NewMainContext() // or glib.MainContextDefault(), glib.MainContextRefThreadDefault()
//	c := glibloop.WrapMainContext(gextras.StructNative(unsafe.Pointer(mc)))
//	runtime.KeepAlive(mc)
//	defer c.Unref()
//	aio, _ := aiosource.New()
//	aio.Attach(c)
//
// For glib.MainContextDefault(), WrapMainContext returns glibloop.DefaultContext()
// itself, and its Unref does nothing.
package gotk4test
