package glibloop

import (
	"time"
	"unsafe"

	"github.com/glibaio/glibaio/cshim"
)

// The typed helpers attach one of GLib's own sources (idle, timeout, unix fd) that calls
// a plain Go function: no reflection, no global lock. The function runs on the thread
// that drives the context and is called again until it returns false. Each returns the
// source id, for MainContext.RemoveSource, or 0 when c was Unref'd. A nil c is the
// default context.

// IdleAdd runs fn at PriorityDefaultIdle whenever nothing more important is ready. It
// panics if fn is nil.
func IdleAdd(c *MainContext, fn func() bool) uint {
	if fn == nil {
		panic("glibloop: IdleAdd: nil fn")
	}
	return IdleAddPriority(c, PriorityDefaultIdle, fn)
}

// IdleAddPriority is IdleAdd at the given priority. It panics if fn is nil.
func IdleAddPriority(c *MainContext, prio Priority, fn func() bool) uint {
	if fn == nil {
		panic("glibloop: IdleAddPriority: nil fn")
	}
	p := c.native()
	if p == nil {
		return 0
	}
	return cshim.IdleAdd(unsafe.Pointer(p), int(prio), fn)
}

// TimeoutAdd runs fn every interval at PriorityDefault. GLib counts the interval in
// whole milliseconds; it is rounded up. A negative interval counts as 0, as a time
// already past does for time.AfterFunc: fn runs at every iteration. It panics if fn is
// nil.
func TimeoutAdd(c *MainContext, interval time.Duration, fn func() bool) uint {
	if fn == nil {
		panic("glibloop: TimeoutAdd: nil fn")
	}
	return TimeoutAddPriority(c, PriorityDefault, interval, fn)
}

// TimeoutAddPriority is TimeoutAdd at the given priority. It panics if fn is nil.
func TimeoutAddPriority(c *MainContext, prio Priority, interval time.Duration, fn func() bool) uint {
	if fn == nil {
		panic("glibloop: TimeoutAddPriority: nil fn")
	}
	p := c.native()
	if p == nil {
		return 0
	}
	ms := timeoutMS(interval)
	if ms < 0 {
		ms = 0
	}
	return cshim.TimeoutAdd(unsafe.Pointer(p), int(prio), uint32(ms), fn)
}

// UnixFDAdd runs fn(fd, revents) at PriorityDefault whenever fd reports one of cond
// (ERR and HUP are always reported). It returns 0 for a negative fd. It panics if fn is
// nil.
func UnixFDAdd(c *MainContext, fd int, cond IOCondition, fn func(fd int, revents IOCondition) bool) uint {
	if fn == nil {
		panic("glibloop: UnixFDAdd: nil fn")
	}
	return UnixFDAddPriority(c, PriorityDefault, fd, cond, fn)
}

// UnixFDAddPriority is UnixFDAdd at the given priority. It panics if fn is nil.
func UnixFDAddPriority(c *MainContext, prio Priority, fd int, cond IOCondition, fn func(fd int, revents IOCondition) bool) uint {
	if fn == nil {
		panic("glibloop: UnixFDAddPriority: nil fn")
	}
	p := c.native()
	if p == nil || fd < 0 {
		return 0
	}
	return cshim.UnixFDAdd(unsafe.Pointer(p), int(prio), fd, uint(cond), func(fd int, rev uint) bool {
		return fn(fd, IOCondition(rev))
	})
}
