package cshim

/*
#include "cshim.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime/cgo"
	"runtime/debug"
	"sync/atomic"
)

// PanicError carries a panic that a Go callback raised while GLib was running it. The
// trampoline recovered it, so it never unwound through GLib's frames; the Go call that
// drove the context raises it again, as a *PanicError, after GLib has returned.
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

var panicHandler atomic.Pointer[func(*PanicError)]

// SetPanicHandler installs fn to receive panics recovered from callbacks while no Go
// driver call waits above GLib, for instance under gtk_main or a gotk3 glib.MainLoop. A
// nil fn restores the default, which prints the panic like an unrecovered one and exits
// the process with status 2. It returns the handler it replaced (nil for the default).
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

// HandlePanic hands p to the handler installed with SetPanicHandler, or to the default
// one. It is for loops that drive callbacks with no Go caller to raise a panic to.
func HandlePanic(p *PanicError) {
	h := defaultPanicHandler
	if fn := panicHandler.Load(); fn != nil {
		h = *fn
	}
	h(p)
}

// defaultPanicHandler mirrors the runtime's report of an unrecovered panic.
func defaultPanicHandler(p *PanicError) {
	fmt.Fprintf(os.Stderr, "panic: %v [recovered by glibaio in %s]\n\n%s\n", p.Value, p.Callback, p.Stack)
	for n := p.Next; n != nil; n = n.Next {
		fmt.Fprintf(os.Stderr, "and then panic: %v [in %s]\n\n%s\n", n.Value, n.Callback, n.Stack)
	}
	os.Exit(2)
}

// deliver hands a recovered panic to the driver call waiting on this thread, or to the
// panic handler when there is none. It runs inside the deferred function of a
// trampoline, so debug.Stack still shows the frames of the panic.
func deliver(r any, callback string, describe func() string) {
	p, ok := r.(*PanicError)
	if !ok {
		if describe != nil {
			callback = fmt.Sprintf("%s of %s", callback, describe())
		}
		p = &PanicError{Value: r, Stack: debug.Stack(), Callback: callback}
	}
	if C.cshim_driven() == 0 {
		HandlePanic(p)
		return
	}
	if prev := C.cshim_take_panic(); prev != 0 {
		first := takePanic(prev)
		last := first
		for last.Next != nil {
			last = last.Next
		}
		last.Next = p
		p = first
	}
	C.cshim_put_panic(C.uintptr_t(NewHandle(p)))
}

func takePanic(h C.uintptr_t) *PanicError {
	p := cgo.Handle(h).Value().(*PanicError)
	ReleaseHandle(cgo.Handle(h))
	return p
}

// raise panics with the PanicError that a driver call handed back, if any.
func raise(h C.uintptr_t) {
	if h != 0 {
		panic(takePanic(h))
	}
}

// CountGLibWarnings starts counting the criticals and warnings GLib logs (they are still
// printed) and returns a function that stops counting and reports how many there were.
// Tests use it to prove that misuse is stopped before it reaches GLib.
func CountGLibWarnings() (stop func() int64) {
	C.cshim_count_glib_warnings(1)
	start := C.cshim_glib_warnings()
	return func() int64 {
		n := C.cshim_glib_warnings() - start
		C.cshim_count_glib_warnings(0)
		return int64(n)
	}
}
