package aiosource_test

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

// Timers with equal deadlines run in the order they were armed; negative deadlines
// clamp to 0 and are due at once.
func TestTimerOrderAndClamp(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		var order []int
		mk := func(i int) *aiosource.Timer {
			return m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { order = append(order, i) })
		}
		ts := []*aiosource.Timer{mk(0), mk(1), mk(2), mk(3)}
		at := aiosource.ClockNS(aiosource.ClockRealtime) + 5*aiosource.ScaleMS
		ts[2].ModNS(at + 1)
		ts[0].ModNS(at)
		ts[1].ModNS(at)
		ts[3].ModNS(-100)
		if got := ts[3].ExpireTimeNS(); got != 0 {
			t.Fatalf("negative deadline stored as %d, want 0", got)
		}
		for len(order) < 4 {
			m.iterate(true)
		}
		want := []int{3, 0, 1, 2}
		for i := range want {
			if order[i] != want[i] {
				t.Fatalf("order %v, want %v", order, want)
			}
		}
		for _, tm := range ts {
			if tm.Pending() || tm.ExpireTimeNS() != -1 {
				t.Fatal("a timer that ran is still pending")
			}
		}
	})
}

// The loop is notified only when a timer becomes the first of its clock: arming a later
// timer lets a blocking Poll sleep on; arming an earlier one wakes it (and, as any
// Notify, makes the next Poll(true) return false at once).
func TestTimerNotifyOnlyOnNewHead(t *testing.T) {
	leakcheck.Handles(t)
	c := newCtx(t)
	ran := 0
	var ranAt int64
	first := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleMS, func() {
		ran++
		ranAt = aiosource.ClockNS(aiosource.ClockRealtime)
	})
	later := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleMS, func() { ran++ })
	defer first.Del()
	defer later.Del()
	var nowMS int64
	for try := 0; ; try++ {
		nowMS = aiosource.ClockNS(aiosource.ClockRealtime) / aiosource.ScaleMS
		first.Mod(nowMS + 60)
		c.Poll(false) // accept the new head's notification
		if ran == 0 {
			break
		}
		// The test was descheduled for 60 ms between Mod and Poll: the timer is
		// already spent. Arm it again.
		if try == 3 {
			t.Fatal("the 60 ms timer ran in the Poll(false) right after Mod, four times")
		}
		ran = 0
	}
	later.Mod(nowMS + 3600_000)
	if !c.Poll(true) || ran != 1 {
		t.Fatalf("Poll(true) = ran %d: arming a later timer must not wake the loop", ran)
	}
	// Measured against the expiry, not against a time read after arming it, which a
	// loaded machine may delay.
	if due := (nowMS + 60) * aiosource.ScaleMS; ranAt < due {
		t.Fatalf("the first timer ran %v before it was due", time.Duration(due-ranAt))
	}
	first.Mod(nowMS + 3600_000 - 1) // a new head
	if c.Poll(true) {
		t.Fatal("after a new head, Poll(true) made progress instead of returning on the notification")
	}
}

// Each clock's time is sampled once per run: a timer re-armed into the past runs again
// in the same pass; one re-armed after that time runs in a later pass. Clocks run in
// order, realtime before host.
func TestTimerRunSemantics(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		var order []string
		var rt *aiosource.Timer
		again := 0
		rt = m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() {
			order = append(order, "realtime")
			if again < 2 {
				again++
				rt.ModNS(0) // in the past: same pass
			}
		})
		host := m.ctx.NewTimer(aiosource.ClockHost, aiosource.ScaleNS, func() { order = append(order, "host") })
		host.ModNS(0)
		rt.ModNS(0)
		m.flush()
		want := []string{"realtime", "realtime", "realtime", "host"}
		if len(order) != len(want) {
			t.Fatalf("order %v, want %v", order, want)
		}
		for i := range want {
			if order[i] != want[i] {
				t.Fatalf("order %v, want %v", order, want)
			}
		}
		// Re-armed to the clock's current time: the sampled time is older, so it waits.
		n := 0
		var tm *aiosource.Timer
		tm = m.ctx.NewTimer(aiosource.ClockVirtual, aiosource.ScaleNS, func() {
			n++
			if n == 1 {
				tm.ModNS(aiosource.ClockNS(aiosource.ClockVirtual) + 1)
			}
		})
		tm.ModNS(0)
		if !m.glib {
			m.iterate(false)
			if n != 1 {
				t.Fatalf("n=%d after the first pass, want 1", n)
			}
		}
		for n < 2 {
			m.iterate(true)
		}
	})
}

// Timers never fire early, on every clock and scale.
func TestTimerNeverEarly(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		for _, ct := range []aiosource.ClockType{aiosource.ClockRealtime, aiosource.ClockVirtual, aiosource.ClockHost, aiosource.ClockVirtualRT} {
			for _, scale := range []int64{aiosource.ScaleNS, aiosource.ScaleUS, aiosource.ScaleMS} {
				var firedAt int64
				tm := m.ctx.NewTimer(ct, scale, func() { firedAt = aiosource.ClockNS(ct) })
				expire := aiosource.ClockNS(ct)/scale + 3*aiosource.ScaleMS/scale
				tm.Mod(expire)
				if got := tm.ExpireTimeNS(); got != expire*scale {
					t.Fatalf("%v scale %d: ExpireTimeNS %d, want %d", ct, scale, got, expire*scale)
				}
				for firedAt == 0 {
					m.iterate(true)
				}
				if firedAt < expire*scale {
					t.Fatalf("%v scale %d: fired %d ns early", ct, scale, expire*scale-firedAt)
				}
			}
		}
	})
}

// Under GLib the AioContext never asks for a millisecond poll timeout for its timers:
// the nearest deadline sits on a timerfd that GLib polls, so any GLib loop wakes at the
// right nanosecond. Until a timer is first armed GLib polls, besides its own wakeup fd,
// only the context's kick eventfd.
func TestTimerUnderGLibUsesTimerfd(t *testing.T) {
	leakcheck.Handles(t)
	c, mc := newAttached(t)
	if !mc.Acquire() {
		t.Fatal("Acquire")
	}
	defer mc.Release()
	polled := func() (timeout time.Duration, kinds []string) {
		_, prio := mc.Prepare()
		fds := make([]glibloop.PollFD, 8)
		timeout, n := mc.Query(prio, fds)
		mc.Check(prio, fds[:n])
		for _, f := range fds[:n] {
			link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.FD))
			if err != nil {
				t.Fatal(err)
			}
			kinds = append(kinds, strings.TrimPrefix(link, "anon_inode:"))
		}
		sort.Strings(kinds)
		return timeout, kinds
	}
	if _, kinds := polled(); fmt.Sprint(kinds) != "[[eventfd] [eventfd]]" {
		t.Fatalf("GLib polls %v before any timer, want its wakeup and the kick eventfd", kinds)
	}
	tm := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() {})
	tm.ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + 1500*aiosource.ScaleUS)
	defer tm.Del()
	timeout, kinds := polled()
	if timeout >= 0 {
		t.Fatalf("GLib poll timeout %v with an armed 1.5 ms timer, want none (the timerfd wakes poll)", timeout)
	}
	if want := "[[eventfd] [eventfd] [timerfd]]"; fmt.Sprint(kinds) != want {
		t.Fatalf("GLib polls %v with a timer armed, want %s (its wakeup, the kick, the timer)", kinds, want)
	}
}

// A timer that is armed, fires and is not re-armed costs one blocking GLib iteration,
// and the next blocking iteration sleeps: starting or stopping to watch the timerfd
// does not wake GLib for nothing.
func TestTimerOneShotCostsOneIteration(t *testing.T) {
	leakcheck.Handles(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c, mc := newAttached(t)
	if !mc.Acquire() {
		t.Fatal("Acquire")
	}
	defer mc.Release()
	for mc.Iteration(false) {
	}
	for round := 0; round < 3; round++ {
		fired := false
		tm := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { fired = true })
		tm.ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + int64(10*time.Millisecond))
		iters := 0
		for !fired && iters < 100 {
			iters++
			mc.Iteration(true)
		}
		// The first timer ever armed adds the timerfd to GLib's poll set, which wakes
		// GLib once; after that, one iteration per timer.
		if want := 1; iters != want && !(round == 0 && iters == 2) {
			t.Fatalf("round %d: the timer took %d blocking iterations, want %d", round, iters, want)
		}
		start := time.Now() // before the AfterFunc: Notify comes 100 ms after start at the earliest
		woke := time.AfterFunc(100*time.Millisecond, c.Notify)
		mc.Iteration(true)
		if slept := time.Since(start); slept < 50*time.Millisecond {
			t.Fatalf("round %d: the blocking iteration after the timer returned after %v, want it to sleep until Notify", round, slept)
		}
		woke.Stop()
		for mc.Iteration(false) {
		}
	}
}

func TestTimerDelAndUseAfterClose(t *testing.T) {
	leakcheck.Handles(t)
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	tm := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { n++ })
	tm.ModNS(0)
	tm.Del()
	tm.Del() // twice is harmless
	for c.Poll(false) {
	}
	if n != 0 || tm.Pending() {
		t.Fatal("a deleted timer ran or is pending")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	tm.ModNS(0)
	if tm.Pending() || c.Poll(false) || n != 0 {
		t.Fatal("Mod after Close armed the timer")
	}
}
