// Package cshim is the C half of glibaio's Go-defined GSources and the glue that lets
// GLib call Go safely.
//
// It owns static C GSourceFuncs tables whose trampolines reach the Go state of a source
// through a key stored in the C struct that extends GSource: an index into a Go-side
// table and a generation that tells a stale key apart (registry.go). It also
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

	"github.com/glibaio/glibaio/internal/watch"
)

// Source is the Go side of one Go-defined GSource: the functions its C trampolines
// call. A nil Prepare or Check means GLib sees none (NULL in the GSourceFuncs), so the
// C side answers as GLib does and never crosses into Go for it. The fields a crossing
// reads come first, so that they share a cache line; embedding the Source in the
// object it belongs to, next to its Point, keeps a crossing's memory together.
type Source struct {
	key      uintptr                              // the key in the source table (registry.go); set once
	Dispatch func() bool                          // false removes the source
	Prepare  func() (ready bool, timeoutMS int32) // timeoutMS -1: no timeout
	Check    func() bool

	// Slot and Point, when both are set, bracket every Dispatch (a panicking one
	// included) with the slot's Enter and Leave: the callback statistics of Point and
	// the stall watchdog (internal/watch).
	Slot  *watch.Slot
	Point *watch.Point

	Finalize func() // may be nil; runs once, on any thread
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

// LiveHandles reports how many references from C to Go state are still live: the keys
// of Go-defined sources not yet finalized, typed callbacks not yet released, and handles
// made by NewHandle (stored panics). Tests use it to prove that sources and callbacks
// release everything they took.
func LiveHandles() int64 { return liveHandles.Load() + registeredCallbacks() + liveSources() }

// NewSource creates a GSource (one reference, owned by the caller) whose callbacks are
// src's functions, reached through a key in the source table that the finalize
// trampoline releases. src must not be used for another source.
func NewSource(src *Source) unsafe.Pointer {
	key := newSourceKey(src)
	return unsafe.Pointer(C.cshim_source_new(C.uintptr_t(key), cbool(src.Prepare != nil), cbool(src.Check != nil)))
}

// AdoptSource returns the Owner of a Go-defined GSource (NewSource, NewReactor), or nil
// for any other source or a finalized one; the caller holds a reference on gsrc. A
// Go-defined source without an Owner gets one: adopt makes it, once per source, and the
// finalized function it returns runs when GLib finalizes the source, before the
// source's Finalize. A reactor's source gets its Go wrapper this way, from the package
// that owns the wrapper type.
func AdoptSource(gsrc unsafe.Pointer, adopt func() (owner any, finalized func())) any {
	s := lookupSource(uintptr(C.cshim_source_handle((*C.GSource)(gsrc))))
	if s == nil {
		return nil // not Go-defined, or finalized (its key is 0)
	}
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

// The trampolines below are what cshim.c's GSourceFuncs call, with the key that the
// source's C struct carries. Each recovers a panic of the Go callback (deliver), so that
// it never unwinds through GLib. A key that resolves to no live source means C holds a
// key that outlived its source (GLib finalizes a source once and frees it after, so only
// a use after free can do it): that is reported as a panic, and the source answers as
// one that is not ready and removes itself, never reaching another source's state.

//export cshimSourcePrepare
func cshimSourcePrepare(key C.uintptr_t, timeout *C.gint) C.gboolean {
	ready, t := sourcePrepare(uintptr(key))
	if t != -1 {
		*timeout = C.gint(t) // GLib preset -1
	}
	return cbool(ready)
}

//export cshimSourceCheck
func cshimSourceCheck(key C.uintptr_t) C.gboolean { return cbool(sourceCheck(uintptr(key))) }

//export cshimSourceDispatch
func cshimSourceDispatch(key C.uintptr_t) C.gboolean {
	return cbool(sourceDispatch(uintptr(key)))
}

//export cshimSourceFinalize
func cshimSourceFinalize(key C.uintptr_t) { sourceFinalize(uintptr(key)) }

// staleKey reports a trampoline's key that resolves to no live source.
func staleKey(key uintptr, callback string) {
	deliver(fmt.Sprintf("cshim: GLib called %s of a Go-defined GSource whose key %#x is stale "+
		"(index %d, generation %d): its Go state was already released", callback, key,
		key&keyIndexMask, key>>keyIndexBits), callback+" of a Go-defined GSource with a stale key", nil)
}

// sourcePrepare runs GSourceFuncs.prepare: timeoutMS -1 means none.
func sourcePrepare(key uintptr) (ready bool, timeoutMS int32) {
	s := lookupSource(key)
	if s == nil {
		staleKey(key, "Prepare")
		return false, -1
	}
	defer func() {
		if r := recover(); r != nil {
			deliver(r, "Prepare", s.Describe)
			ready, timeoutMS = false, -1
		}
	}()
	return s.Prepare()
}

// sourceCheck runs GSourceFuncs.check.
func sourceCheck(key uintptr) (ready bool) {
	s := lookupSource(key)
	if s == nil {
		staleKey(key, "Check")
		return false
	}
	defer func() {
		if r := recover(); r != nil {
			deliver(r, "Check", s.Describe)
			ready = false
		}
	}()
	return s.Check()
}

// sourceDispatch runs GSourceFuncs.dispatch: false removes the source.
func sourceDispatch(key uintptr) (keep bool) {
	s := lookupSource(key)
	if s == nil {
		staleKey(key, "Dispatch")
		return false
	}
	var st watch.State // in place: the deferred Leave reads it through a pointer
	defer func() {
		s.Slot.Leave(&st)
		if r := recover(); r != nil {
			deliver(r, "Dispatch", s.Describe)
			keep = true // a panic does not remove the source
		}
	}()
	s.Slot.Enter(&st, s.Point)
	return s.Dispatch()
}

// sourceFinalize runs GSourceFuncs.finalize, once, on any thread; C has cleared its
// copy of the key. The key is released even if a finalizer panics.
func sourceFinalize(key uintptr) {
	s := lookupSource(key)
	if s == nil {
		staleKey(key, "Finalize")
		return
	}
	defer func() {
		releaseSourceKey(key)
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
