// Package cshim is the C half of glibaio's Go-defined GSources and the glue that lets
// GLib call Go safely.
//
// It owns static C GSourceFuncs tables whose trampolines reach the Go state of a source
// through a runtime/cgo.Handle stored in the C struct that extends GSource. It also
// provides the driver calls through which Go runs GLib code that may call back into Go
// (Iteration, Unref, Destroy, the loop driver, ...): every trampoline recovers a Go panic
// so that it never unwinds through GLib's frames, and the driver call that was waiting
// above those frames hands it back once GLib has returned, for glibloop to raise as its
// PanicError. When no Go driver call is waiting (foreign C code such as gtk_main drives
// the context), the handler set with SetPanicHandler receives the panic instead.
//
// Nothing here knows about AIO, and no Go pointer is ever stored in C memory.
//
// This package is glibaio's implementation detail: it has no compatibility promise, and
// no user needs anything it exports. Use package glibloop, which builds the public API
// on top of it, and package aiosource.
package cshim

/*
#cgo pkg-config: glib-2.0
#include "cshim.h"
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Source is the Go side of one Go-defined GSource: the functions its C trampolines
// call. A nil Prepare or Check means GLib sees none (NULL in the GSourceFuncs), so the
// C side answers as GLib does and never crosses into Go for it.
type Source struct {
	Prepare  func() (ready bool, timeoutMS int32) // timeoutMS -1: no timeout
	Check    func() bool
	Dispatch func() bool // false removes the source
	Finalize func()      // may be nil; runs once, on any thread
	Describe func() string
	Owner    any // the Go object the source belongs to (AdoptSource)

	adopted func() // the finalization of an Owner that AdoptSource made (under adoptMu)
}

// adoptMu guards the Owner and adopted fields of Sources once they are published.
var adoptMu sync.Mutex

var liveHandles atomic.Int64

// NewHandle returns a cgo.Handle for v and counts it as live until ReleaseHandle.
func NewHandle(v any) cgo.Handle {
	liveHandles.Add(1)
	return cgo.NewHandle(v)
}

// ReleaseHandle deletes a handle made by NewHandle.
func ReleaseHandle(h cgo.Handle) {
	h.Delete()
	liveHandles.Add(-1)
}

// LiveHandles reports how many handles made by NewHandle, and typed callbacks, are still
// live. Tests use it to prove that sources and callbacks release everything they took.
func LiveHandles() int64 { return liveHandles.Load() + registeredCallbacks() }

// NewSource creates a GSource (one reference, owned by the caller) whose callbacks are
// src's functions, reached through a cgo.Handle that the finalize trampoline releases.
func NewSource(src *Source) unsafe.Pointer {
	h := NewHandle(src)
	return unsafe.Pointer(C.cshim_source_new(C.uintptr_t(h), cbool(src.Prepare != nil), cbool(src.Check != nil)))
}

// AdoptSource returns the Owner of a Go-defined GSource (NewSource, NewReactor), or nil
// for any other source or a finalized one; the caller holds a reference on gsrc. A
// Go-defined source without an Owner gets one: adopt makes it, once per source, and the
// finalized function it returns runs when GLib finalizes the source, before the
// source's Finalize. A reactor's source gets its Go wrapper this way, from the package
// that owns the wrapper type.
func AdoptSource(gsrc unsafe.Pointer, adopt func() (owner any, finalized func())) any {
	h := cgo.Handle(C.cshim_source_handle((*C.GSource)(gsrc)))
	if h == 0 {
		return nil
	}
	s := h.Value().(*Source)
	adoptMu.Lock()
	defer adoptMu.Unlock()
	if s.Owner == nil {
		s.Owner, s.adopted = adopt()
	}
	return s.Owner
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func handler(h C.uintptr_t) *Source {
	return cgo.Handle(h).Value().(*Source)
}

//export cshimSourcePrepare
func cshimSourcePrepare(h C.uintptr_t, timeout *C.gint) (ready C.gboolean) {
	s := handler(h)
	defer func() {
		if r := recover(); r != nil {
			deliver(r, "Prepare", s.Describe)
			ready = 0 // *timeout keeps GLib's -1
		}
	}()
	ok, t := s.Prepare()
	*timeout = C.gint(t)
	if ok {
		return 1
	}
	return 0
}

//export cshimSourceCheck
func cshimSourceCheck(h C.uintptr_t) (ready C.gboolean) {
	s := handler(h)
	defer func() {
		if r := recover(); r != nil {
			deliver(r, "Check", s.Describe)
			ready = 0
		}
	}()
	if s.Check() {
		return 1
	}
	return 0
}

//export cshimSourceDispatch
func cshimSourceDispatch(h C.uintptr_t) (keep C.gboolean) {
	s := handler(h)
	defer func() {
		if r := recover(); r != nil {
			deliver(r, "Dispatch", s.Describe)
			keep = 1 // a panic does not remove the source
		}
	}()
	if s.Dispatch() {
		return 1
	}
	return 0
}

//export cshimSourceFinalize
func cshimSourceFinalize(h C.uintptr_t) {
	s := handler(h)
	defer func() {
		ReleaseHandle(cgo.Handle(h))
		if r := recover(); r != nil {
			deliver(r, "Finalize", s.Describe)
		}
	}()
	adoptMu.Lock()
	adopted := s.adopted
	adoptMu.Unlock()
	if adopted != nil {
		adopted() // the owner goes inert first, as NewSource's owners do in Finalize
	}
	if s.Finalize != nil {
		s.Finalize()
	}
}

//export cshimSourceFunc
func cshimSourceFunc(id C.uintptr_t) (keep C.gboolean) {
	fn := lookup(uintptr(id)).fn
	// A callback that returns false (or panics) ends its source: release it here, and
	// the C side will not cross again for its destroy notify.
	defer func() {
		if r := recover(); r != nil {
			keep = 0
			release(uintptr(id))
			deliver(r, "source function", nil)
		}
	}()
	if fn() {
		return 1
	}
	release(uintptr(id))
	return 0
}

//export cshimUnixFDFunc
func cshimUnixFDFunc(id C.uintptr_t, fd C.gint, cond C.GIOCondition) (keep C.gboolean) {
	fn := lookup(uintptr(id)).fdfn
	defer func() {
		if r := recover(); r != nil {
			keep = 0
			release(uintptr(id))
			deliver(r, fmt.Sprintf("unix fd %d function", int(fd)), nil)
		}
	}()
	if fn(int(fd), uint(cond)) {
		return 1
	}
	release(uintptr(id))
	return 0
}

//export cshimReleaseCallback
func cshimReleaseCallback(id C.uintptr_t) {
	release(uintptr(id))
}

// IdleAdd attaches a GLib idle source that calls fn until it returns false, and returns
// its source id.
func IdleAdd(ctx unsafe.Pointer, priority int, fn func() bool) uint {
	return uint(C.cshim_idle_add((*C.GMainContext)(ctx), C.gint(priority), C.uintptr_t(register(fn, nil))))
}

// TimeoutAdd attaches a GLib timeout source (interval in ms) that calls fn until it
// returns false, and returns its source id.
func TimeoutAdd(ctx unsafe.Pointer, priority int, intervalMS uint32, fn func() bool) uint {
	return uint(C.cshim_timeout_add((*C.GMainContext)(ctx), C.gint(priority), C.guint(intervalMS),
		C.uintptr_t(register(fn, nil))))
}

// UnixFDAdd attaches a GLib unix fd source that calls fn(fd, revents) until it returns
// false, and returns its source id.
func UnixFDAdd(ctx unsafe.Pointer, priority int, fd int, cond uint, fn func(int, uint) bool) uint {
	return uint(C.cshim_unix_fd_add((*C.GMainContext)(ctx), C.gint(priority), C.gint(fd),
		C.GIOCondition(cond), C.uintptr_t(register(nil, fn))))
}
