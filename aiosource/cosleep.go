package aiosource

import (
	"fmt"
	"runtime/debug"
	"sync/atomic"

	"github.com/glibaio/glibaio/glibloop"
)

var sleepName = "qemu_co_sleep_ns"

// CoSleepState is QEMU's QemuCoSleep: a sleep that another party can end early with
// Wake. The zero value is ready to use; one sleep at a time.
type CoSleepState struct {
	toWake atomic.Pointer[Coroutine]
}

// SleepNS suspends the calling coroutine for ns nanoseconds of clock, or until Wake,
// whichever comes first (qemu_co_sleep_ns_wakeable). The timer lives on the current
// context (CurrentContext), as QEMU arms it on the current thread's AioContext. While
// the coroutine sleeps, entering or scheduling it panics.
func (w *CoSleepState) SleepNS(clock ClockType, ns int64) {
	self := mustSelf("qemu_co_sleep_ns")
	c := CurrentContext()
	if c == nil {
		panic("aiosource: qemu_co_sleep_ns: the coroutine runs in no context's walk")
	}
	tm := c.NewTimer(clock, ScaleNS, w.Wake)
	tm.ModNS(ClockNS(clock) + ns)
	w.sleep(self)
	tm.Del()
}

// sleep is qemu_co_sleep: it marks self asleep, so that entering it panics, and yields
// until Wake.
func (w *CoSleepState) sleep(self *Coroutine) {
	if !self.scheduled.CompareAndSwap(nil, &sleepName) {
		panic(fmt.Sprintf("aiosource: qemu_co_sleep: Co-routine was already scheduled in '%s'", *self.scheduled.Load()))
	}
	w.toWake.Store(self)
	self.Yield()
}

// Wake ends the sleep early (qemu_co_sleep_wake); it does nothing if no coroutine
// sleeps on w. Safe from any goroutine.
func (w *CoSleepState) Wake() {
	co := w.toWake.Swap(nil)
	if co == nil {
		return
	}
	if !co.scheduled.CompareAndSwap(&sleepName, nil) {
		panic("aiosource: qemu_co_sleep_wake: the coroutine is not asleep")
	}
	co.Wake()
}

// CoSleepNS suspends the calling coroutine for ns nanoseconds of clock
// (qemu_co_sleep_ns).
func CoSleepNS(clock ClockType, ns int64) {
	var w CoSleepState
	w.SleepNS(clock, ns)
}

// SubmitCo runs work on the current context's thread pool and suspends the calling
// coroutine until it has finished, returning its error (thread_pool_submit_co). A panic
// in work is raised again in the coroutine, as a *glibloop.PanicError with work's stack.
// After the context's Close it returns ErrClosed at once.
func SubmitCo(work func() error) error {
	self := mustSelf("thread_pool_submit_co")
	c := CurrentContext()
	if c == nil {
		panic("aiosource: thread_pool_submit_co: the coroutine runs in no context's walk")
	}
	var (
		res               error
		pe                *glibloop.PanicError
		finished, waiting bool // the completion and this coroutine run on one thread
	)
	c.Submit(func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				pe = &glibloop.PanicError{Value: r, Stack: debug.Stack(), Callback: "aiosource.SubmitCo work"}
			}
		}()
		return work()
	}, func(err error) {
		res, finished = err, true
		if waiting {
			self.Wake()
		}
	})
	if !finished { // Submit after Close completes at once
		waiting = true
		self.Yield()
	}
	if pe != nil {
		panic(pe)
	}
	return res
}
