package aiosource

import (
	"testing"
	"time"
)

func registered(c *Context) bool {
	clocks.mu.Lock()
	defer clocks.mu.Unlock()
	_, ok := clocks.contexts[c]
	return ok
}

// ClockEnable reaches the contexts that made a timer (timerlist_new) and forgets them at
// Close (timerlist_free), so a closed context is neither kept alive nor touched; one
// closed already is not registered again by a late NewTimer.
func TestClockRegistryForgetsClosed(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if registered(c) {
		t.Fatal("a context without timers is registered")
	}
	c.NewTimer(ClockVirtual, ScaleNS, func() {})
	if !registered(c) {
		t.Fatal("a context with a timer is not registered")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if registered(c) {
		t.Fatal("a closed context is still registered")
	}
	c.NewTimer(ClockVirtual, ScaleNS, func() {})
	if registered(c) {
		t.Fatal("NewTimer after Close registered the context again")
	}
}

// The deadline the loops sleep on (timerlistgroup_deadline_ns, and the absolute
// CLOCK_MONOTONIC time the timerfd is armed with) follows virtual time: while it stands
// still, a virtual-rt timer that is due counts as due and one that is not counts as
// never; once it runs again after a stop, a virtual timer's deadline is the monotonic
// time at which virtual time, which lags behind, reaches its expiry.
func TestTimerDeadlineFollowsVirtualTime(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Cleanup(func() { ClockEnable(ClockVirtual, true) })
	ClockEnable(ClockVirtual, false)
	frozen := ClockNS(ClockVirtualRT)
	tm := c.NewTimer(ClockVirtualRT, ScaleNS, func() {})
	defer tm.Del()
	tm.ModNS(frozen + 1)
	if d, at := c.timerTimeout(), c.r.Deadline(); d != -1 || at != -1 {
		t.Fatalf("virtual time stopped, a virtual-rt timer 1 ns ahead: timeout %d, deadline %d; want -1, -1", d, at)
	}
	tm.ModNS(frozen)
	if d, at := c.timerTimeout(), c.r.Deadline(); d != 0 || at < 0 || at > ClockNS(ClockRealtime) {
		t.Fatalf("virtual time stopped, a due virtual-rt timer: timeout %d, deadline %d; want 0 and a time not in the future", d, at)
	}
	time.Sleep(20 * time.Millisecond) // virtual time now lags CLOCK_MONOTONIC by 20 ms more
	ClockEnable(ClockVirtual, true)
	const ahead = int64(time.Hour)
	tm.ModNS(ClockNS(ClockVirtualRT) + ahead)
	// Virtual time is CLOCK_MONOTONIC plus an offset; reading it between two monotonic
	// reads brackets the monotonic time at which it reaches the expiry.
	m1 := ClockNS(ClockRealtime)
	virt := ClockNS(ClockVirtualRT)
	m2 := ClockNS(ClockRealtime)
	left := tm.ExpireTimeNS() - virt
	if at := c.r.Deadline(); at < m1+left || at > m2+left {
		t.Fatalf("after a stop, a virtual-rt timer an hour ahead arms the timerfd at %d, outside [%d, %d], the monotonic time when it is due", at, m1+left, m2+left)
	}
	if d := c.timerTimeout(); d > ahead || d < ahead-int64(time.Second) {
		t.Fatalf("after a stop, a virtual-rt timer an hour ahead: timeout %v", time.Duration(d))
	}
}
