package cshim

/*
#include "cshim.h"
*/
import "C"

import (
	"errors"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The driver calls below run GLib code that may call back into Go. Each returns only
// after GLib's frames are gone, and then raises any panic a callback recovered during
// the call as a *PanicError.

func ctxp(c unsafe.Pointer) *C.GMainContext { return (*C.GMainContext)(c) }
func srcp(s unsafe.Pointer) *C.GSource      { return (*C.GSource)(s) }

// Iteration runs g_main_context_iteration.
func Iteration(ctx unsafe.Pointer, mayBlock bool) bool {
	r := C.cshim_iteration(ctxp(ctx), cbool(mayBlock))
	raise(r.panic)
	return r.ret != 0
}

// Pending runs g_main_context_pending.
func Pending(ctx unsafe.Pointer) bool {
	r := C.cshim_pending(ctxp(ctx))
	raise(r.panic)
	return r.ret != 0
}

// Prepare runs g_main_context_prepare and returns its result and max priority.
func Prepare(ctx unsafe.Pointer) (ready bool, maxPriority int) {
	var prio C.gint // C memory is not needed: the pointer does not outlive the call
	r := C.cshim_prepare(ctxp(ctx), &prio)
	raise(r.panic)
	return r.ret != 0, int(prio)
}

// Check runs g_main_context_check over fds, a GPollFD array of n entries that the
// caller keeps alive for the call.
func Check(ctx unsafe.Pointer, maxPriority int, fds unsafe.Pointer, n int) bool {
	r := C.cshim_check(ctxp(ctx), C.gint(maxPriority), (*C.GPollFD)(fds), C.gint(n))
	raise(r.panic)
	return r.ret != 0
}

// Dispatch runs g_main_context_dispatch.
func Dispatch(ctx unsafe.Pointer) {
	raise(C.cshim_dispatch(ctxp(ctx)).panic)
}

// SourceUnref runs g_source_unref, which may finalize the source on this thread.
func SourceUnref(src unsafe.Pointer) {
	raise(C.cshim_source_unref(srcp(src)).panic)
}

// SourceDestroy runs g_source_destroy.
func SourceDestroy(src unsafe.Pointer) {
	raise(C.cshim_source_destroy(srcp(src)).panic)
}

// RemoveChildSource runs g_source_remove_child_source.
func RemoveChildSource(parent, child unsafe.Pointer) {
	raise(C.cshim_remove_child_source(srcp(parent), srcp(child)).panic)
}

// ContextUnref runs g_main_context_unref, which may destroy and finalize sources.
func ContextUnref(ctx unsafe.Pointer) {
	raise(C.cshim_context_unref(ctxp(ctx)).panic)
}

// RemoveByID destroys the source with the given id on ctx and reports whether one
// was found. Unlike g_source_remove it logs nothing for an unknown id.
func RemoveByID(ctx unsafe.Pointer, id uint) bool {
	r := C.cshim_remove_by_id(ctxp(ctx), C.guint(id))
	raise(r.panic)
	return r.ret != 0
}

// Invoke runs g_main_context_invoke_full with fn: synchronously when the calling thread
// owns ctx (or may acquire it as its thread default), otherwise from an idle source.
func Invoke(ctx unsafe.Pointer, priority int, fn func()) {
	id := register(func() bool { fn(); return false }, nil)
	raise(C.cshim_invoke(ctxp(ctx), C.gint(priority), C.uintptr_t(id)).panic)
}

// ErrNotOwner is returned by Loop.Run when another thread owns the context.
var ErrNotOwner = errors.New("glibaio: the main context is owned by another thread")

// Loop is the C state of one running loop driver: the quit flag and the GPollFD
// array. It lives in C memory so the driver never crosses into Go between iterations.
type Loop struct {
	c *C.cshim_loop
}

// NewLoop allocates the C state of a loop driver. Free releases it.
func NewLoop() *Loop { return &Loop{c: C.cshim_loop_new()} }

// Free releases the C state. The loop must not be running.
func (l *Loop) Free() {
	C.cshim_loop_free(l.c)
	l.c = nil
}

// Run drives ctx until Quit, a panic (raised again here), or maxIterations
// iterations (0: no limit). Each iteration is prepare, query (growing the fd array
// until it fits), one ppoll with a nanosecond timeout retried on EINTR, check and
// dispatch. It acquires ctx for the duration and returns ErrNotOwner if another thread
// owns it. The caller should be locked to its OS thread.
func (l *Loop) Run(ctx unsafe.Pointer, maxIterations int64) error {
	r := C.cshim_loop_run(ctxp(ctx), l.c, C.gint64(maxIterations))
	raise(r.panic)
	switch {
	case r.ret == 0:
		return nil
	case r.ret == 1:
		return ErrNotOwner
	default:
		return &ErrPoll{Errno: syscall.Errno(-r.ret)}
	}
}

// Quit asks Run to return after the current iteration. Any goroutine may call it; the
// caller must also wake the context (g_main_context_wakeup) so a blocked poll returns.
func (l *Loop) Quit() {
	atomic.StoreInt32((*int32)(unsafe.Pointer(&l.c.quit)), 1)
}

// Iterations reports how many iterations Run has completed on this state. Read it only
// while the loop is not running or from the loop's own thread.
func (l *Loop) Iterations() uint64 { return uint64(l.c.iterations) }

// ErrPoll reports a ppoll failure other than EINTR.
type ErrPoll struct{ Errno syscall.Errno }

func (e *ErrPoll) Error() string { return "glibaio: ppoll: " + e.Errno.Error() }

// Unwrap returns the errno.
func (e *ErrPoll) Unwrap() error { return e.Errno }

// PPoll runs ppoll over a GPollFD array with a nanosecond timeout (< 0: infinite),
// retrying on EINTR with the remaining time. It returns the number of ready fds.
func PPoll(fds unsafe.Pointer, n int, timeoutNS int64) (int, error) {
	r := C.cshim_ppoll((*C.GPollFD)(fds), C.guint(n), C.gint64(timeoutNS))
	if r < 0 {
		return 0, syscall.Errno(-r)
	}
	return int(r), nil
}
