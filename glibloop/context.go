package glibloop

/*
#cgo pkg-config: glib-2.0
#include <glib.h>
*/
import "C"

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/glibaio/glibaio/cshim"
)

// MainContext is a GMainContext. Each wrapper owns one reference, released by Unref,
// except the one DefaultContext returns, which lives for the whole process.
type MainContext struct {
	ptr    unsafe.Pointer // *C.GMainContext, accessed atomically; nil once Unref'd
	static bool           // the global default: Unref is a no-op
}

var defaultCtx = sync.OnceValue(func() *MainContext {
	c := &MainContext{static: true}
	c.ptr = unsafe.Pointer(C.g_main_context_default())
	return c
})

// DefaultContext returns the global default context (g_main_context_default), the one
// gtk_main and gotk3 iterate. It returns the same wrapper on every call.
func DefaultContext() *MainContext { return defaultCtx() }

// NewMainContext creates a new GMainContext (g_main_context_new).
func NewMainContext() *MainContext {
	c := &MainContext{}
	c.ptr = unsafe.Pointer(C.g_main_context_new())
	return c
}

// WrapMainContext wraps any GMainContext* (for instance one that gotk3 or C code
// returned) and takes a reference on it. It returns nil for a nil pointer.
func WrapMainContext(p unsafe.Pointer) *MainContext {
	if p == nil {
		return nil
	}
	cp := (*C.GMainContext)(p)
	if cp == C.g_main_context_default() {
		return DefaultContext()
	}
	c := &MainContext{}
	c.ptr = unsafe.Pointer(C.g_main_context_ref(cp))
	return c
}

// native returns the GMainContext*, or nil after Unref. A nil *MainContext stands for
// the default context, as NULL does in GLib.
func (c *MainContext) native() *C.GMainContext {
	if c == nil {
		return C.g_main_context_default()
	}
	return (*C.GMainContext)(atomic.LoadPointer(&c.ptr))
}

// Native returns the GMainContext* (nil after Unref), for passing to C or gotk3.
func (c *MainContext) Native() unsafe.Pointer { return unsafe.Pointer(c.native()) }

// Iteration runs one iteration of the context (g_main_context_iteration) and reports
// whether any source was dispatched. With mayBlock it waits for a source to become
// ready. A panic raised by a callback during the iteration is raised again here as a
// *PanicError. After Unref it returns false.
func (c *MainContext) Iteration(mayBlock bool) bool {
	p := c.native()
	if p == nil {
		return false
	}
	ok, pe := cshim.Iteration(unsafe.Pointer(p), mayBlock)
	raise(pe)
	return ok
}

// Pending reports whether any source has work to do (g_main_context_pending). It runs
// prepare and check callbacks, never dispatch.
func (c *MainContext) Pending() bool {
	p := c.native()
	if p == nil {
		return false
	}
	ok, pe := cshim.Pending(unsafe.Pointer(p))
	raise(pe)
	return ok
}

// Wakeup makes a blocked or the next blocking poll of the context return
// (g_main_context_wakeup). It marks no source ready.
func (c *MainContext) Wakeup() {
	if p := c.native(); p != nil {
		C.g_main_context_wakeup(p)
	}
}

// Invoke runs fn on the context with g_main_context_invoke's rules: at once, on the
// calling goroutine, when the calling thread owns the context (or the context is the
// thread's default and can be acquired); otherwise from an idle source at
// PriorityDefault, on the thread that drives the context. It panics if fn is nil.
func (c *MainContext) Invoke(fn func()) {
	if fn == nil {
		panic("glibloop: Invoke: nil fn")
	}
	c.InvokePriority(PriorityDefault, fn)
}

// InvokePriority is Invoke with the priority of the idle source it may create. It
// panics if fn is nil.
func (c *MainContext) InvokePriority(prio Priority, fn func()) {
	if fn == nil {
		panic("glibloop: InvokePriority: nil fn")
	}
	if p := c.native(); p != nil {
		raise(cshim.Invoke(unsafe.Pointer(p), int(prio), fn))
	}
}

// Unref drops the wrapper's reference (g_main_context_unref). When it was the last one,
// GLib destroys every source still attached, and their finalizers run here. Further
// calls, and Unref on DefaultContext, do nothing.
func (c *MainContext) Unref() {
	if c == nil || c.static {
		return
	}
	if p := atomic.SwapPointer(&c.ptr, nil); p != nil {
		raise(cshim.ContextUnref(p))
	}
}

// Acquire tries to make the calling thread the owner of the context
// (g_main_context_acquire). On success it locks the calling goroutine to its OS thread
// until the matching Release.
func (c *MainContext) Acquire() bool {
	p := c.native()
	if p == nil {
		return false
	}
	runtime.LockOSThread()
	if C.g_main_context_acquire(p) == 0 {
		runtime.UnlockOSThread()
		return false
	}
	return true
}

// Release gives up one level of ownership taken by Acquire and unlocks the OS thread.
// It does nothing when the calling thread is not the owner.
func (c *MainContext) Release() {
	p := c.native()
	if p == nil || C.g_main_context_is_owner(p) == 0 {
		return
	}
	C.g_main_context_release(p)
	runtime.UnlockOSThread()
}

// IsOwner reports whether the calling thread owns the context.
func (c *MainContext) IsOwner() bool {
	p := c.native()
	return p != nil && C.g_main_context_is_owner(p) != 0
}

// PushThreadDefault makes the context the thread-default context of the calling thread
// (g_main_context_push_thread_default), acquiring it, and locks the goroutine to the
// thread until PopThreadDefault.
func (c *MainContext) PushThreadDefault() {
	p := c.native()
	if p == nil {
		return
	}
	runtime.LockOSThread()
	C.g_main_context_push_thread_default(p)
}

// PopThreadDefault undoes PushThreadDefault. It does nothing when the context is not
// the calling thread's current thread-default context.
func (c *MainContext) PopThreadDefault() {
	p := c.native()
	if p == nil {
		return
	}
	top := C.g_main_context_get_thread_default()
	if top == nil {
		top = C.g_main_context_default()
	}
	if top != p {
		return
	}
	C.g_main_context_pop_thread_default(p)
	runtime.UnlockOSThread()
}

// ThreadDefaultContext returns the calling thread's thread-default context
// (g_main_context_ref_thread_default), which is the global default when none was
// pushed. The caller owns the returned wrapper's reference.
func ThreadDefaultContext() *MainContext {
	p := C.g_main_context_ref_thread_default()
	if p == C.g_main_context_default() {
		C.g_main_context_unref(p)
		return DefaultContext()
	}
	c := &MainContext{}
	c.ptr = unsafe.Pointer(p)
	return c
}

// RemoveSource destroys the source with the given id on this context and reports
// whether there was one. Unlike g_source_remove it logs nothing for an unknown id.
func (c *MainContext) RemoveSource(id uint) bool {
	p := c.native()
	if p == nil || id == 0 {
		return false
	}
	ok, pe := cshim.RemoveByID(unsafe.Pointer(p), id)
	raise(pe)
	return ok
}

// Prepare is the first step of driving the context by hand
// (g_main_context_prepare). The calling thread must own the context (Acquire). It
// reports whether a source is ready and the best ready priority to pass to Query and
// Check.
func (c *MainContext) Prepare() (ready bool, maxPriority int) {
	p := c.native()
	if p == nil {
		return false, 0
	}
	ready, maxPriority, pe := cshim.Prepare(unsafe.Pointer(p))
	raise(pe)
	return ready, maxPriority
}

// Query fills fds with the descriptors to poll (g_main_context_query) and returns the
// poll timeout (< 0: none; GLib counts it in whole ms) and the number of descriptors
// GLib wants. When n is larger than len(fds), grow fds and call Query again.
func (c *MainContext) Query(maxPriority int, fds []PollFD) (timeout time.Duration, n int) {
	p := c.native()
	if p == nil {
		return -1, 0
	}
	var t C.gint
	var fp *C.GPollFD
	if len(fds) > 0 {
		fp = (*C.GPollFD)(unsafe.Pointer(&fds[0]))
	}
	n = int(C.g_main_context_query(p, C.gint(maxPriority), &t, fp, C.gint(len(fds))))
	if t < 0 {
		return -1, n
	}
	return time.Duration(t) * time.Millisecond, n
}

// Check passes the polled descriptors back to GLib (g_main_context_check) and reports
// whether any source is ready to dispatch. fds must be the slice Query filled, cut to
// the n it returned.
func (c *MainContext) Check(maxPriority int, fds []PollFD) bool {
	p := c.native()
	if p == nil {
		return false
	}
	var fp unsafe.Pointer
	if len(fds) > 0 {
		fp = unsafe.Pointer(&fds[0])
	}
	ok, pe := cshim.Check(unsafe.Pointer(p), maxPriority, fp, len(fds))
	raise(pe)
	return ok
}

// Dispatch dispatches the sources that Check found ready (g_main_context_dispatch).
func (c *MainContext) Dispatch() {
	if p := c.native(); p != nil {
		raise(cshim.Dispatch(unsafe.Pointer(p)))
	}
}

// PPoll polls fds like ppoll(2) with a nanosecond-precise timeout (< 0: none), retrying
// on EINTR with the time that remains, and returns how many have revents. A failure is
// the errno, a syscall.Errno.
func PPoll(fds []PollFD, timeout time.Duration) (int, error) {
	var fp unsafe.Pointer
	if len(fds) > 0 {
		fp = unsafe.Pointer(&fds[0])
	}
	return cshim.PPoll(fp, len(fds), int64(timeout))
}

// MainDepth returns g_main_depth: how deeply the calling thread is nested in dispatch.
func MainDepth() int { return int(C.g_main_depth()) }

// MonotonicTime returns g_get_monotonic_time, in µs: the clock of ready times.
func MonotonicTime() int64 { return int64(C.g_get_monotonic_time()) }
