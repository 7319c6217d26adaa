package aiosource

import (
	"fmt"

	"github.com/glibaio/glibaio/internal/watch"
)

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
	checkClock("NewTimer", t)
	if scale < 1 {
		panic(fmt.Sprintf("aiosource: NewTimer: scale %d is not positive", scale))
	}
	if fn == nil {
		panic("aiosource: NewTimer: nil fn")
	}
	c.registerClocks()
	return &Timer{ctx: c, clock: t, scale: scale, fn: fn, expire: -1,
		wp: watch.NewPoint("timer", watch.FuncName(fn)+" on clock "+t.String(), fn)}
}

// Mod arms the timer to expire at expire, in its scale (timer_mod), replacing any
// earlier expire time.
func (t *Timer) Mod(expire int64) { t.ModNS(expire * t.scale) }

// ModNS arms the timer to expire at expireNS on its clock (timer_mod_ns). A negative
// time is clamped to 0, "already due". The timer goes after every timer that expires at
// the same time or earlier. The loop is notified only when the timer becomes the first
// of its clock, whether or not the clock is enabled. Any goroutine may call it; after
// Close it does nothing.
func (t *Timer) ModNS(expireNS int64) { t.mod(expireNS, false) }

// ModAnticipate arms the timer to expire at expire, in its scale, unless it is pending
// with an earlier or equal expire time (timer_mod_anticipate): it only ever moves the
// expiry earlier.
func (t *Timer) ModAnticipate(expire int64) { t.mod(expire*t.scale, true) }

// ModAnticipateNS is ModNS, except that a pending timer that expires at expireNS or
// earlier is left as it is (timer_mod_anticipate_ns): it only ever moves the expiry
// earlier, and arms a timer that is not pending. A negative time counts as 0 before the
// comparison, so a timer already due at 0 keeps its place among its equals (QEMU
// compares first and re-inserts it behind them). It notifies the loop as ModNS does.
func (t *Timer) ModAnticipateNS(expireNS int64) { t.mod(expireNS, true) }

// mod is timer_mod_ns, and with anticipate timer_mod_anticipate_ns.
func (t *Timer) mod(expireNS int64, anticipate bool) {
	c := t.ctx
	expireNS = max(expireNS, 0)
	c.tmu.Lock()
	if c.closed.Load() || anticipate && t.expire >= 0 && t.expire <= expireNS {
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

// ExpireTimeNS returns the expire time in ns on the timer's clock, whatever its scale,
// or -1 when the timer is not pending (timer_expire_time_ns). A negative time given to
// Mod or ModNS reads back as 0.
func (t *Timer) ExpireTimeNS() int64 {
	t.ctx.tmu.Lock()
	defer t.ctx.tmu.Unlock()
	return t.expire
}

// Expired reports whether the timer has expired at currentTime, in its scale
// (timer_expired): whether its expire time is not after currentTime×scale. It looks at
// the expire time only, not at whether the clock is enabled. A timer that is not
// pending (never armed, deleted, or already run) holds the expire time -1, as in QEMU,
// so it has expired at every time that is not negative.
func (t *Timer) Expired(currentTime int64) bool {
	return t.ExpireTimeNS() <= currentTime*t.scale
}

// headDeadline returns when the first timer of clock ct becomes due: its expire time on
// ct (ClockRealtime and ClockHost), or, for the virtual clocks, the CLOCK_MONOTONIC time
// at which virtual time reaches it. ok is false if no timer of ct can become due by
// waiting: the list is empty, the clock is disabled (timerlist_deadline_ns), or virtual
// time stands still short of the expire time. A timer due already, while virtual time
// stands still, is due at 0. c.tmu is held.
func (c *Context) headDeadline(ct ClockType) (at int64, ok bool) {
	h := c.clocks[ct].head
	if h == nil || !clockEnabled(ct) {
		return 0, false
	}
	if !ct.isVirtual() {
		return h.expire, true
	}
	running, off := virtualState()
	if !running {
		return 0, h.expire <= off
	}
	return max(h.expire-off, 0), true
}

// updateDeadlineLocked publishes the nearest expire time, as absolute CLOCK_MONOTONIC
// ns, to the reactor, whose GSource prepare arms the timerfd with it. Timers that cannot
// become due by waiting (headDeadline) are left out. c.tmu is held.
func (c *Context) updateDeadlineLocked() {
	d := int64(-1)
	for ct := ClockType(0); ct < numClocks; ct++ {
		e, ok := c.headDeadline(ct)
		if !ok {
			continue
		}
		if ct == ClockHost { // wall clock: convert what remains to the monotonic clock
			e = max(watch.Nanotime()+(e-ClockNS(ClockHost)), 0) // a time in the past is due: 0, not "none"
		}
		if d < 0 || e < d {
			d = e
		}
	}
	c.r.SetDeadline(d)
}

// timerDeadline returns when the nearest timer becomes due, as absolute CLOCK_MONOTONIC
// ns at or before now if one is due already, or -1 if none can become due by waiting
// (timerlistgroup_deadline_ns, as an absolute time: QEMU's relative deadline of each
// clock is added to now). now is watch.Nanotime(). Timers of a disabled clock do not
// count, nor, while virtual time stands still, virtual timers that are not due. For
// ClockRealtime, and the virtual clocks while they run, the result does not depend on
// now: Polls that wait for the same timer hand the reactor the same deadline, which it
// then need not write to its timerfd again.
func (c *Context) timerDeadline(now int64) int64 {
	if c.armed.Load() == 0 {
		return -1
	}
	c.tmu.Lock()
	defer c.tmu.Unlock()
	d := int64(-1)
	for ct := ClockType(0); ct < numClocks; ct++ {
		h := c.clocks[ct].head
		if h == nil || !clockEnabled(ct) {
			continue
		}
		var at int64
		switch {
		case ct == ClockRealtime: // watch.Nanotime's clock
			at = h.expire
		case ct == ClockHost: // the wall clock: what remains of it, from now
			at = now + (h.expire - ClockNS(ct))
		default:
			running, off := virtualState()
			if !running {
				if h.expire > off {
					continue // it cannot become due before virtual time runs again
				}
				at = now
			} else {
				at = h.expire - off // virtual time is off + CLOCK_MONOTONIC
			}
		}
		at = max(at, 0) // long due: still not the -1 of "none"
		if d < 0 || at < d {
			d = at
		}
	}
	return d
}

// runTimers runs the due timers of every enabled clock, in clock order, and reports
// whether one ran (timerlistgroup_run_timers). Each clock's time is sampled once, so a
// timer that a callback re-arms relative to its clock's current time runs in a later
// pass. A clock disabled during the pass, by a callback or another goroutine, has no
// further timer taken from its list.
func (c *Context) runTimers() bool {
	if c.armed.Load() == 0 {
		return false // inlined: most walks of most contexts have no timer pending
	}
	return c.runTimersSlow()
}

func (c *Context) runTimersSlow() bool {
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
			if t == nil || !clockEnabled(ct) {
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

// disarmAll forgets c in the clocks' registry, then disarms every timer and describes
// the ones that were pending, for Close.
func (c *Context) disarmAll() []string {
	c.unregisterClocks()
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
