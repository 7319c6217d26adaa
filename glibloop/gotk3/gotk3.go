// Package gotk3 converts between gotk3's *glib.MainContext (github.com/gotk3/gotk3
// v0.6.3) and glibloop's *MainContext. Both name the same GMainContext, so a glibaio
// source, AioContext or loop attached through Wrap(glib.MainContextDefault()) is
// dispatched by gtk.Main and gotk3's glib.MainLoop, and the other way round.
//
// Only programs that import this package compile gotk3; glibloop and aiosource do not
// depend on it.
package gotk3

import (
	"unsafe"

	"github.com/gotk3/gotk3/glib"

	"github.com/glibaio/glibaio/glibloop"
)

// Wrap returns the glibloop context for gotk3's c, or nil for a nil c. Like
// glibloop.WrapMainContext, it takes a reference that the result owns and drops with
// Unref; Wrap(glib.MainContextDefault()) is glibloop.DefaultContext(), which holds none.
func Wrap(c *glib.MainContext) *glibloop.MainContext {
	if c == nil {
		return nil
	}
	return glibloop.WrapMainContext(unsafe.Pointer(c))
}

// Unwrap returns c as gotk3's *glib.MainContext, for gotk3 APIs that take one (nil
// after c's Unref). gotk3's type does not count references: the result borrows c's,
// and is valid for as long as c is not Unref'd.
func Unwrap(c *glibloop.MainContext) *glib.MainContext {
	return (*glib.MainContext)(c.Native())
}
