package aiosource

import (
	"fmt"
	"time"

	"github.com/glibaio/glibaio/internal/watch"
)

// ClockType selects the clock of a timer (QEMUClockType). Clocks run in this order.
type ClockType int

// The clocks. There is no guest here, so the virtual clocks follow the host's monotonic
// clock and are always enabled (QEMU starts VIRTUAL disabled until the VM runs).
const (
	ClockRealtime  ClockType = iota // monotonic; runs whatever happens (QEMU_CLOCK_REALTIME)
	ClockVirtual                    // monotonic here (QEMU_CLOCK_VIRTUAL)
	ClockHost                       // wall-clock time; follows NTP and settimeofday (QEMU_CLOCK_HOST)
	ClockVirtualRT                  // monotonic here (QEMU_CLOCK_VIRTUAL_RT)
	numClocks
)

// Timer scales: the unit of a timer's expire time, in ns.
const (
	ScaleNS int64 = 1
	ScaleUS int64 = 1000
	ScaleMS int64 = 1000000
)

func (t ClockType) String() string {
	switch t {
	case ClockRealtime:
		return "realtime"
	case ClockVirtual:
		return "virtual"
	case ClockHost:
		return "host"
	case ClockVirtualRT:
		return "virtual-rt"
	}
	return fmt.Sprintf("ClockType(%d)", int(t))
}

// ClockNS returns the current time of a clock in ns (qemu_clock_get_ns). The monotonic
// clocks share CLOCK_MONOTONIC's epoch; ClockHost is Unix time. It panics if t is not
// one of the four clocks.
func ClockNS(t ClockType) int64 {
	if t < 0 || t >= numClocks {
		panic(fmt.Sprintf("aiosource: ClockNS: invalid ClockType %d", int(t)))
	}
	if t == ClockHost {
		return time.Now().UnixNano()
	}
	return watch.Nanotime()
}

// Timer is a QEMUTimer: a callback that runs on the context's thread once its clock
// reaches the expire time. A timer never fires early.
type Timer struct {
	ctx    *Context
	clock  ClockType
	scale  int64
	fn     func()
	expire int64 // ns; -1 when not pending. Guarded by ctx.tmu.
	next   *Timer
	wp     *watch.Point
}

// timerList is one clock's pending timers, sorted by expire time, FIFO among equals.
type timerList struct{ head *Timer }

// NewTimer creates a timer on clock t whose expire times are in units of scale
// (aio_timer_new). It is not pending until Mod. It panics if t is not one of the four
// clocks or scale is not positive (QEMU asserts), or if fn is nil.
func (c *Context) NewTimer(t ClockType, scale int64, fn func()) *Timer {
	if t < 0 || t >= numClocks {
		panic(fmt.Sprintf("aiosource: NewTimer: invalid ClockType %d", int(t)))
	}
	if scale < 1 {
		panic(fmt.Sprintf("aiosource: NewTimer: scale %d is not positive", scale))
	}
	if fn == nil {
		panic("aiosource: NewTimer: nil fn")
	}
	return &Timer{ctx: c, clock: t, scale: scale, fn: fn, expire: -1,
		wp: watch.NewPoint("timer", watch.FuncName(fn)+" on clock "+t.String(), fn)}
}

// Mod arms the timer to expire at expire, in its scale (timer_mod), replacing any
// earlier expire time.
func (t *Timer) Mod(expire int64) { t.ModNS(expire * t.scale) }

// ModNS arms the timer to expire at expireNS on its clock (timer_mod_ns). A negative
// time is clamped to 0, "already due". The timer goes after every timer that expires at
// the same time or earlier. The loop is notified only when the timer becomes the first
// of its clock. Any goroutine may call it; after Close it does nothing.
func (t *Timer) ModNS(expireNS int64) {
	c := t.ctx
	expireNS = max(expireNS, 0)
	c.tmu.Lock()
	if c.closed.Load() {
		c.tmu.Unlock()
		return
	}
	l := &c.clocks[t.clock]
	if t.expire >= 0 {
		l.unlink(t)
	} else {
		c.armed.Add(1)
	}
	t.expire = expireNS
	p := &l.head
	for *p != nil && (*p).expire <= expireNS {
		p = &(*p).next
	}
	t.next = *p
	*p = t
	head := l.head == t
	if head {
		c.updateDeadlineLocked()
	}
	c.tmu.Unlock()
	if head {
		c.Notify()
	}
}

func (l *timerList) unlink(t *Timer) {
	for p := &l.head; *p != nil; p = &(*p).next {
		if *p == t {
			*p = t.next
			t.next = nil
			return
		}
	}
}

// Del disarms the timer (timer_del). It does not notify the loop.
func (t *Timer) Del() {
	c := t.ctx
	c.tmu.Lock()
	if t.expire >= 0 {
		l := &c.clocks[t.clock]
		wasHead := l.head == t
		l.unlink(t)
		t.expire = -1
		c.armed.Add(-1)
		if wasHead {
			c.updateDeadlineLocked()
		}
	}
	c.tmu.Unlock()
}

// Pending reports whether the timer is armed (timer_pending).
func (t *Timer) Pending() bool { return t.ExpireTimeNS() >= 0 }

// ExpireTimeNS returns the expire time in ns, or -1 when the timer is not pending.
func (t *Timer) ExpireTimeNS() int64 {
	t.ctx.tmu.Lock()
	defer t.ctx.tmu.Unlock()
	return t.expire
}

// updateDeadlineLocked publishes the nearest expire time, as absolute CLOCK_MONOTONIC
// ns, to the reactor, whose GSource prepare arms the timerfd with it. c.tmu is held.
func (c *Context) updateDeadlineLocked() {
	d := int64(-1)
	for ct := ClockType(0); ct < numClocks; ct++ {
		h := c.clocks[ct].head
		if h == nil {
			continue
		}
		e := h.expire
		if ct == ClockHost { // wall clock: convert what remains to the monotonic clock
			e = max(watch.Nanotime()+(e-ClockNS(ClockHost)), 0) // a time in the past is due: 0, not "none"
		}
		if d < 0 || e < d {
			d = e
		}
	}
	c.r.SetDeadline(d)
}

// timerTimeout returns the time until the nearest timer in ns: 0 if one is due, -1 if
// none is pending (timerlistgroup_deadline_ns).
func (c *Context) timerTimeout() int64 {
	if c.armed.Load() == 0 {
		return -1
	}
	c.tmu.Lock()
	defer c.tmu.Unlock()
	d := int64(-1)
	for ct := ClockType(0); ct < numClocks; ct++ {
		if h := c.clocks[ct].head; h != nil {
			left := max(h.expire-ClockNS(ct), 0)
			if d < 0 || left < d {
				d = left
			}
		}
	}
	return d
}

// runTimers runs the due timers of every clock, in clock order, and reports whether one
// ran (timerlistgroup_run_timers). Each clock's time is sampled once, so a timer that a
// callback re-arms relative to its clock's current time runs in a later pass.
func (c *Context) runTimers() bool {
	if c.armed.Load() == 0 {
		return false
	}
	progress := false
	// Republish the deadline on the way out, even if a callback panics.
	defer func() {
		c.tmu.Lock()
		c.updateDeadlineLocked()
		c.tmu.Unlock()
	}()
	for ct := ClockType(0); ct < numClocks; ct++ {
		l := &c.clocks[ct]
		now := int64(-1)
		for {
			c.tmu.Lock()
			t := l.head
			if t == nil {
				c.tmu.Unlock()
				break
			}
			if now < 0 {
				now = ClockNS(ct)
			}
			if t.expire > now {
				c.tmu.Unlock()
				break
			}
			l.head = t.next
			t.next = nil
			t.expire = -1 // before the callback, which may re-arm it
			c.armed.Add(-1)
			c.tmu.Unlock()
			c.stats.timers.Add(1)
			c.call(t.wp, t.fn)
			progress = true
		}
	}
	return progress
}

// disarmAll disarms every timer and describes the ones that were pending, for Close.
func (c *Context) disarmAll() []string {
	c.tmu.Lock()
	defer c.tmu.Unlock()
	var out []string
	for ct := ClockType(0); ct < numClocks; ct++ {
		for t := c.clocks[ct].head; t != nil; {
			out = append(out, fmt.Sprintf("timer on clock %s (callback %s) still armed", ct, watch.FuncName(t.fn)))
			next := t.next
			t.expire, t.next = -1, nil
			t = next
		}
		c.clocks[ct].head = nil
	}
	c.armed.Store(0)
	c.r.SetDeadline(-1)
	return out
}
