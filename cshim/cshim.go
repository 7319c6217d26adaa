// Package cshim is the C half of glibaio's Go-defined GSources and the glue that lets
// GLib call Go safely.
//
// It owns static C GSourceFuncs tables whose trampolines reach the Go state of a source
// through a runtime/cgo.Handle stored in the C struct that extends GSource. It also
// provides the driver calls through which Go runs GLib code that may call back into Go
// (Iteration, Unref, Destroy, the loop driver, ...): every trampoline recovers a Go panic
// so that it never unwinds through GLib's frames, and the driver call that was waiting
// above those frames raises it again as a *PanicError once GLib has returned. When no Go
// driver call is waiting (foreign C code such as gtk_main drives the context), the
// handler set with SetPanicHandler receives the panic instead.
//
// Nothing here knows about AIO, and no Go pointer is ever stored in C memory. Most users
// want package glibloop, which builds the public API on top of this one.
package cshim

/*
#cgo pkg-config: glib-2.0
#include "cshim.h"
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"sync/atomic"
	"unsafe"
)

// SourceHandler is the Go state behind one Go-defined GSource. The trampolines call
// Prepare and Check only when the source was created with them (NewSource), so a
// handler may leave the others unimplemented in spirit; Dispatch and Finalize are
// always called.
type SourceHandler interface {
	// Prepare reports readiness and a poll timeout in ms (-1: none).
	Prepare() (ready bool, timeoutMS int32)
	// Check reports readiness after poll.
	Check() bool
	// Dispatch runs the source; false removes it.
	Dispatch() bool
	// Finalize runs once, when GLib frees the source, on any thread.
	Finalize()
	// Describe names the source in panic reports.
	Describe() string
}

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

// LiveHandles reports how many handles made by NewHandle are still live. Tests use it
// to prove that sources and callbacks release everything they took.
func LiveHandles() int64 { return liveHandles.Load() }

// NewSource creates a GSource (one reference, owned by the caller) whose callbacks reach
// h, whose value must be a SourceHandler. hasPrepare and hasCheck choose whether GLib
// sees a prepare or check callback at all; without one it answers as for NULL and never
// crosses into Go.
func NewSource(h cgo.Handle, hasPrepare, hasCheck bool) unsafe.Pointer {
	return unsafe.Pointer(C.cshim_source_new(C.uintptr_t(h), cbool(hasPrepare), cbool(hasCheck)))
}

// SourceHandle returns the handle behind a GSource made by NewSource, or 0 when the
// source is not a Go-defined one or has been finalized.
func SourceHandle(src unsafe.Pointer) cgo.Handle {
	return cgo.Handle(C.cshim_source_handle((*C.GSource)(src)))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func handler(h C.uintptr_t) SourceHandler {
	return cgo.Handle(h).Value().(SourceHandler)
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
	s.Finalize()
}

//export cshimSourceFunc
func cshimSourceFunc(h C.uintptr_t) (keep C.gboolean) {
	fn := cgo.Handle(h).Value().(func() bool)
	// A callback that returns false (or panics) ends its source: release the handle
	// here, and the C side will not cross again for its destroy notify.
	defer func() {
		if r := recover(); r != nil {
			keep = 0
			ReleaseHandle(cgo.Handle(h))
			deliver(r, "source function", nil)
		}
	}()
	if fn() {
		return 1
	}
	ReleaseHandle(cgo.Handle(h))
	return 0
}

//export cshimUnixFDFunc
func cshimUnixFDFunc(h C.uintptr_t, fd C.gint, cond C.GIOCondition) (keep C.gboolean) {
	fn := cgo.Handle(h).Value().(func(int, uint) bool)
	defer func() {
		if r := recover(); r != nil {
			keep = 0
			ReleaseHandle(cgo.Handle(h))
			deliver(r, fmt.Sprintf("unix fd %d function", int(fd)), nil)
		}
	}()
	if fn(int(fd), uint(cond)) {
		return 1
	}
	ReleaseHandle(cgo.Handle(h))
	return 0
}

//export cshimReleaseHandle
func cshimReleaseHandle(h C.uintptr_t) {
	ReleaseHandle(cgo.Handle(h))
}

// IdleAdd attaches a GLib idle source that calls fn until it returns false, and returns
// its source id.
func IdleAdd(ctx unsafe.Pointer, priority int, fn func() bool) uint {
	return uint(C.cshim_idle_add((*C.GMainContext)(ctx), C.gint(priority), C.uintptr_t(NewHandle(fn))))
}

// TimeoutAdd attaches a GLib timeout source (interval in ms) that calls fn until it
// returns false, and returns its source id.
func TimeoutAdd(ctx unsafe.Pointer, priority int, intervalMS uint32, fn func() bool) uint {
	return uint(C.cshim_timeout_add((*C.GMainContext)(ctx), C.gint(priority), C.guint(intervalMS),
		C.uintptr_t(NewHandle(fn))))
}

// UnixFDAdd attaches a GLib unix fd source that calls fn(fd, revents) until it returns
// false, and returns its source id.
func UnixFDAdd(ctx unsafe.Pointer, priority int, fd int, cond uint, fn func(int, uint) bool) uint {
	return uint(C.cshim_unix_fd_add((*C.GMainContext)(ctx), C.gint(priority), C.gint(fd),
		C.GIOCondition(cond), C.uintptr_t(NewHandle(fn))))
}
