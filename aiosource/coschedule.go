package aiosource

import (
	"fmt"
	"runtime"
	"sync"
)

// coSched is a context's list of scheduled coroutines (QEMU's scheduled_coroutines and
// co_schedule_bh): aio_co_schedule appends, one oneshot BH runs them in order.
type coSched struct {
	mu         sync.Mutex
	head, tail *Coroutine // linked through schedNext
	bh         func()     // the context's co_schedule_bh_cb, bound once
}

var schedName = "aio_co_schedule"

// CurrentContext returns the context that the calling thread walks now
// (qemu_get_current_aio_context): the context of the innermost Poll, GLib dispatch of a
// context's source or driver (IOThread, MainLoop.Run) active on the calling thread, and
// so, inside a coroutine, the context of the walk that entered it. It returns nil
// outside any walk.
func CurrentContext() *Context {
	t := currentThread()
	defer runtime.UnlockOSThread()
	return t.contextOrNil()
}

// CoEnter enters co in the context c (aio_co_enter). Called on the thread that walks c
// now, outside a coroutine, it runs co at once (Coroutine.Enter); from inside a
// coroutine, co runs after the caller yields or returns. Called anywhere else (another
// thread, a callback of another context, outside any walk) it schedules co on c
// (CoSchedule). A nil c stands for no context: co is entered on the calling thread
// when it walks no context either.
func (c *Context) CoEnter(co *Coroutine) {
	t := currentThread()
	cur, self := t.contextOrNil(), t.current
	// enter locks on its own; the lock of the walk that makes cur non-nil keeps the
	// goroutine on t meanwhile.
	runtime.UnlockOSThread()
	switch {
	case cur != c && c == nil:
		panic("aiosource: CoEnter: a coroutine with no context entered from a context's walk")
	case cur != c:
		c.CoSchedule(co)
	case self == co:
		panic("aiosource: aio_co_enter: a coroutine entered itself")
	case self != nil:
		self.wakeup.push(co)
	default:
		enter(c, false, co)
	}
}

// Wake resumes co where it last ran (aio_co_wake): CoEnter in the context of its most
// recent entry. Nobody else may enter co meanwhile; from another thread, co must have
// yielded already, or be about to yield on its own thread.
func (co *Coroutine) Wake() {
	co.ctx.Load().CoEnter(co)
}

// CoSchedule makes c's thread enter co from a BH (aio_co_schedule), safe from any
// goroutine. Coroutines run in the order they were scheduled; those scheduled while
// that BH runs wait for the next one. Scheduling a coroutine already scheduled, or
// asleep in CoSleepNS, panics with QEMU's message.
func (c *Context) CoSchedule(co *Coroutine) {
	if !co.scheduled.CompareAndSwap(nil, &schedName) {
		panic(fmt.Sprintf("aiosource: aio_co_schedule: Co-routine was already scheduled in '%s'", *co.scheduled.Load()))
	}
	s := &c.coSched
	s.mu.Lock()
	first := s.head == nil
	co.schedNext = nil
	if s.tail == nil {
		s.head = co
	} else {
		s.tail.schedNext = co
	}
	s.tail = co
	s.mu.Unlock()
	if first {
		c.ScheduleOneshot(s.bh)
	}
}

// coScheduleBH is co_schedule_bh_cb: it enters, in order, the coroutines scheduled
// before it began.
func (c *Context) coScheduleBH() {
	s := &c.coSched
	s.mu.Lock()
	co := s.head
	s.head, s.tail = nil, nil
	s.mu.Unlock()
	for co != nil {
		next := co.schedNext
		co.schedNext = nil
		co.scheduled.Store(nil)
		enter(c, false, co)
		co = next
	}
}

// RescheduleSelf moves the calling coroutine to the context to (aio_co_reschedule_self):
// it yields, and resumes from a BH of to. The old context schedules it only once it has
// yielded, so it never runs twice at once. It does nothing when to is the current
// context.
//
// Unlike QEMU's, a coroutine cannot move to another OS thread: Go's runtime coroutines
// run only on the thread they were made on. RescheduleSelf therefore moves between
// contexts that the calling thread drives (a MainLoop's aio-context and io-handler), or
// to a context no thread drives yet, and panics when another thread drives to.
func RescheduleSelf(to *Context) {
	co := Self()
	if co == nil {
		panic("aiosource: RescheduleSelf: not in a coroutine")
	}
	from := CurrentContext()
	if from == to {
		return
	}
	if from == nil {
		panic("aiosource: RescheduleSelf: the coroutine runs in no context's walk")
	}
	if d := to.home.rec.Load(); d != nil && d.m != co.w.t.m && to.active() > 0 {
		panic(fmt.Sprintf("aiosource: RescheduleSelf: thread %d drives the target context; a coroutine cannot move to another OS thread (Go's runtime coroutines run only on the thread they were made on)", d.tid))
	}
	from.ScheduleOneshot(func() { to.CoSchedule(co) })
	co.Yield()
}
