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

// Panic is a panic that a Go callback raised while GLib was running it. The trampoline
// recovered it, so it never unwound through GLib's frames; the driver call that was
// waiting above those frames hands it back once GLib has returned (glibloop raises it
// as its PanicError).
type Panic struct {
	Value    any    // the value the callback passed to panic
	Stack    []byte // the panicking goroutine's stack at the point of the panic
	Callback string // the callback that panicked, e.g. `Dispatch of source "x"`
	Next     *Panic // a panic that a later callback raised during the same driver call
}

var panicHandler atomic.Pointer[func(*Panic)]

// SetPanicHandler installs fn to receive panics recovered while no driver call waits
// above GLib (foreign C code such as gtk_main drives the context). Without one, such a
// panic is printed like an unrecovered one and the process exits with status 2.
func SetPanicHandler(fn func(*Panic)) { panicHandler.Store(&fn) }

func handlePanic(p *Panic) {
	if fn := panicHandler.Load(); fn != nil && *fn != nil {
		(*fn)(p)
		return
	}
	fmt.Fprintf(os.Stderr, "panic: %v [recovered by glibaio in %s]\n\n%s\n", p.Value, p.Callback, p.Stack)
	os.Exit(2)
}

// deliver hands a recovered panic to the driver call waiting on this thread, or to the
// panic handler when there is none. It runs inside the deferred function of a
// trampoline, so debug.Stack still shows the frames of the panic.
func deliver(r any, callback string, describe func() string) {
	if describe != nil {
		callback = fmt.Sprintf("%s of %s", callback, describe())
	}
	p := &Panic{Value: r, Stack: debug.Stack(), Callback: callback}
	if C.cshim_driven() == 0 {
		handlePanic(p)
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

func takePanic(h C.uintptr_t) *Panic {
	p := cgo.Handle(h).Value().(*Panic)
	ReleaseHandle(cgo.Handle(h))
	return p
}

// taken returns the Panic whose handle a driver call handed back, or nil for 0.
func taken(h C.uintptr_t) *Panic {
	if h == 0 {
		return nil
	}
	return takePanic(h)
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
