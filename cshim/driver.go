package cshim

/*
#include "cshim.h"
*/
import "C"

import (
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The driver calls below run GLib code that may call back into Go. Each returns only
// after GLib's frames are gone, with the panic (or chain of panics) that the
// trampolines recovered during the call, or nil; the caller raises it.

func ctxp(c unsafe.Pointer) *C.GMainContext { return (*C.GMainContext)(c) }
func srcp(s unsafe.Pointer) *C.GSource      { return (*C.GSource)(s) }

// Iteration runs g_main_context_iteration.
func Iteration(ctx unsafe.Pointer, mayBlock bool) (bool, *Panic) {
	r := C.cshim_iteration(ctxp(ctx), cbool(mayBlock))
	return r.ret != 0, taken(r.panic)
}

// Pending runs g_main_context_pending.
func Pending(ctx unsafe.Pointer) (bool, *Panic) {
	r := C.cshim_pending(ctxp(ctx))
	return r.ret != 0, taken(r.panic)
}

// Prepare runs g_main_context_prepare and returns its result and max priority.
func Prepare(ctx unsafe.Pointer) (ready bool, maxPriority int, p *Panic) {
	var prio C.gint // C memory is not needed: the pointer does not outlive the call
	r := C.cshim_prepare(ctxp(ctx), &prio)
	return r.ret != 0, int(prio), taken(r.panic)
}

// Check runs g_main_context_check over fds, a GPollFD array of n entries that the
// caller keeps alive for the call.
func Check(ctx unsafe.Pointer, maxPriority int, fds unsafe.Pointer, n int) (bool, *Panic) {
	r := C.cshim_check(ctxp(ctx), C.gint(maxPriority), (*C.GPollFD)(fds), C.gint(n))
	return r.ret != 0, taken(r.panic)
}

// Dispatch runs g_main_context_dispatch.
func Dispatch(ctx unsafe.Pointer) *Panic {
	return taken(C.cshim_dispatch(ctxp(ctx)).panic)
}

// SourceUnref runs g_source_unref, which may finalize the source on this thread.
func SourceUnref(src unsafe.Pointer) *Panic {
	return taken(C.cshim_source_unref(srcp(src)).panic)
}

// SourceDestroy runs g_source_destroy.
func SourceDestroy(src unsafe.Pointer) *Panic {
	return taken(C.cshim_source_destroy(srcp(src)).panic)
}

// RemoveChildSource runs g_source_remove_child_source.
func RemoveChildSource(parent, child unsafe.Pointer) *Panic {
	return taken(C.cshim_remove_child_source(srcp(parent), srcp(child)).panic)
}

// ContextUnref runs g_main_context_unref, which may destroy and finalize sources.
func ContextUnref(ctx unsafe.Pointer) *Panic {
	return taken(C.cshim_context_unref(ctxp(ctx)).panic)
}

// RemoveByID destroys the source with the given id on ctx and reports whether one
// was found. Unlike g_source_remove it logs nothing for an unknown id.
func RemoveByID(ctx unsafe.Pointer, id uint) (bool, *Panic) {
	r := C.cshim_remove_by_id(ctxp(ctx), C.guint(id))
	return r.ret != 0, taken(r.panic)
}

// Invoke runs g_main_context_invoke_full with fn: synchronously when the calling thread
// owns ctx (or may acquire it as its thread default), otherwise from an idle source.
func Invoke(ctx unsafe.Pointer, priority int, fn func()) *Panic {
	id := register(func() bool { fn(); return false }, nil)
	return taken(C.cshim_invoke(ctxp(ctx), C.gint(priority), C.uintptr_t(id)).panic)
}

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

// Run drives ctx until Quit, a panic (handed back), or maxIterations iterations (0: no
// limit). Each iteration is prepare, query (growing the fd array until it fits), one
// ppoll with a nanosecond timeout retried on EINTR, check and dispatch. It acquires ctx
// for the duration and reports notOwner, doing nothing, if another thread owns it; a
// ppoll failure other than EINTR ends it with that errno. The caller should be locked
// to its OS thread, whose timer slack it sets to 1 ns (InitTimerSlack).
func (l *Loop) Run(ctx unsafe.Pointer, maxIterations int64) (notOwner bool, errno syscall.Errno, p *Panic) {
	r := C.cshim_loop_run(ctxp(ctx), l.c, C.gint64(maxIterations))
	p = taken(r.panic)
	switch {
	case r.ret == 1:
		return true, 0, p
	case r.ret < 0:
		return false, syscall.Errno(-r.ret), p
	}
	return false, 0, p
}

// Quit asks Run to return after the current iteration. Any goroutine may call it; the
// caller must also wake the context (g_main_context_wakeup) so a blocked poll returns.
func (l *Loop) Quit() {
	atomic.StoreInt32((*int32)(unsafe.Pointer(&l.c.quit)), 1)
}

// Iterations reports how many iterations Run has completed on this state. Read it only
// while the loop is not running or from the loop's own thread.
func (l *Loop) Iterations() uint64 { return uint64(l.c.iterations) }

// PPoll runs ppoll over a GPollFD array with a nanosecond timeout (< 0: infinite),
// retrying on EINTR with the remaining time. It returns the number of ready fds.
func PPoll(fds unsafe.Pointer, n int, timeoutNS int64) (int, error) {
	r := C.cshim_ppoll((*C.GPollFD)(fds), C.guint(n), C.gint64(timeoutNS))
	if r < 0 {
		return 0, syscall.Errno(-r)
	}
	return int(r), nil
}
