package glibloop

import (
	"unsafe"

	"github.com/gotk3/gotk3/glib"
)

// FromGotk3 wraps gotk3's *glib.MainContext; both name the same GMainContext, so a
// source attached through the result is dispatched by gotk3's glib.MainLoop and by
// gtk.Main. FromGotk3(glib.MainContextDefault()) is DefaultContext().
func FromGotk3(c *glib.MainContext) *MainContext {
	return WrapMainContext(unsafe.Pointer(c))
}

// Gotk3 returns the context as gotk3's *glib.MainContext, for gotk3 APIs that take one.
func (c *MainContext) Gotk3() *glib.MainContext {
	return (*glib.MainContext)(c.Native())
}
