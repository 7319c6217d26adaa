package glibloop

import (
	"fmt"
	"os"
	"sync/atomic"

	"github.com/glibaio/glibaio/cshim"
)

// PanicError is the value raised again from the call that drove the context
// (Iteration, Pending, Loop.Run, Source.Unref, ...) when a callback panicked while GLib
// ran it. The callback's trampoline recovered the panic, so it never unwound through
// GLib's C frames; the driving call raises it once they have returned.
type PanicError struct {
	// Value is the value the callback passed to panic.
	Value any
	// Stack is the stack of the panicking goroutine at the point of the panic.
	Stack []byte
	// Callback names the callback that panicked, e.g. `Dispatch of source "x"`.
	Callback string
	// Next holds a panic that a later callback raised during the same driving call.
	Next *PanicError
}

// Error describes the panic and includes the original stack.
func (p *PanicError) Error() string {
	s := fmt.Sprintf("panic in %s: %v\n\n%s", p.Callback, p.Value, p.Stack)
	if p.Next != nil {
		s += "\nand then " + p.Next.Error()
	}
	return s
}

// Unwrap returns Value when it is an error, so errors.Is and errors.As see through.
func (p *PanicError) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}

// fromShim converts the panics a driver call handed back. A value that is already a
// *PanicError was raised by a driving call nested inside the callback: it is kept as
// it is, with its own stack and callback.
func fromShim(p *cshim.Panic) *PanicError {
	if p == nil {
		return nil
	}
	pe, ok := p.Value.(*PanicError)
	if !ok {
		pe = &PanicError{Value: p.Value, Stack: p.Stack, Callback: p.Callback}
	}
	if next := fromShim(p.Next); next != nil {
		last := pe
		for last.Next != nil {
			last = last.Next
		}
		last.Next = next
	}
	return pe
}

// raise panics with the panics a driver call handed back, if any.
func raise(p *cshim.Panic) {
	if p != nil {
		panic(fromShim(p))
	}
}

var panicHandler atomic.Pointer[func(*PanicError)]

func init() {
	cshim.SetPanicHandler(func(p *cshim.Panic) { HandlePanic(fromShim(p)) })
}

// SetPanicHandler installs fn to receive panics from callbacks while no glibaio call
// drives the context, for instance under gtk.Main or gotk3's glib.MainLoop. A nil fn
// restores the default handler, which prints the panic like an unrecovered one and
// exits with status 2. It returns the previous handler (nil for the default).
func SetPanicHandler(fn func(*PanicError)) func(*PanicError) {
	var old *func(*PanicError)
	if fn == nil {
		old = panicHandler.Swap(nil)
	} else {
		old = panicHandler.Swap(&fn)
	}
	if old == nil {
		return nil
	}
	return *old
}

// HandlePanic hands p to the handler set with SetPanicHandler, or to the default one.
// Use it where callbacks run with no caller to raise their panic to: a goroutine that
// drives a context with Iteration and recovers the *PanicError, say. aiosource's
// IOThread does this.
func HandlePanic(p *PanicError) {
	if fn := panicHandler.Load(); fn != nil {
		(*fn)(p)
		return
	}
	fmt.Fprintf(os.Stderr, "panic: %v [recovered by glibaio in %s]\n\n%s\n", p.Value, p.Callback, p.Stack)
	for n := p.Next; n != nil; n = n.Next {
		fmt.Fprintf(os.Stderr, "and then panic: %v [in %s]\n\n%s\n", n.Value, n.Callback, n.Stack)
	}
	os.Exit(2)
}
