package glibloop

import "github.com/glibaio/glibaio/cshim"

// PanicError is the value raised again from the driving call (Iteration, Loop.Run, ...)
// when a callback panicked: it carries the original panic value and stack.
type PanicError = cshim.PanicError

// SetPanicHandler installs fn to receive panics from callbacks while no glibaio call
// drives the context, for instance under gtk.Main or gotk3's glib.MainLoop. A nil fn
// restores the default handler, which prints the panic like an unrecovered one and exits
// with status 2. It returns the previous handler (nil for the default).
func SetPanicHandler(fn func(*PanicError)) func(*PanicError) {
	return cshim.SetPanicHandler(fn)
}

// HandlePanic hands p to the panic handler (SetPanicHandler). Loops that run callbacks
// with no caller to raise a panic to, such as aiosource's IOThread, use it.
func HandlePanic(p *PanicError) { cshim.HandlePanic(p) }

// LiveHandles reports how many cgo handles glibaio holds: one per live Go-defined
// source, typed callback and pending panic. A steady number over time means nothing
// leaks.
func LiveHandles() int64 { return cshim.LiveHandles() }
