package aiosource_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
	"github.com/glibaio/glibaio/internal/testutil"
)

var allClocks = []aiosource.ClockType{aiosource.ClockRealtime, aiosource.ClockVirtual, aiosource.ClockHost, aiosource.ClockVirtualRT}

// disableClock disables ct until the test ends. The clocks are global: the tests that
// change them do not run in parallel with others.
func disableClock(t *testing.T, ct aiosource.ClockType) {
	t.Helper()
	aiosource.ClockEnable(ct, false)
	t.Cleanup(func() { aiosource.ClockEnable(ct, true) })
}

// sleepsUntilNotify runs blocking iterations until a Notify that comes 100 ms after the
// start has been made, and returns how many it took. A loop that sleeps until then
// needs one; a GLib iteration may return early on a signal (g_poll does not retry
// EINTR), which costs one more now and then. A loop whose deadline says "due" spins:
// hundreds.
func sleepsUntilNotify(m *mode) int {
	var notified atomic.Bool
	w := time.AfterFunc(100*time.Millisecond, func() {
		notified.Store(true)
		m.ctx.Notify()
	})
	defer w.Stop()
	n := 0
	for !notified.Load() {
		m.iterate(true)
		n++
	}
	return n
}

// whileBlocked runs blocking iterations while another goroutine, once the loop has
// announced that it blocks, calls fn and then, wake later, Notify. It returns once an
// iteration has returned after fn was called, with how long after the call that was and
// what that iteration returned.
func whileBlocked(m *mode, fn func(), wake time.Duration) (after time.Duration, progress bool) {
	var called atomic.Int64 // UnixNano when fn was called
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !aiosource.LoopWaiting(m.ctx) {
			time.Sleep(100 * time.Microsecond)
		}
		time.Sleep(5 * time.Millisecond) // let it reach the kernel: the handshake covers either way
		called.Store(time.Now().UnixNano())
		fn()
		select {
		case <-time.After(wake):
			m.ctx.Notify()
		case <-stop:
		}
	}()
	for {
		progress = m.iterate(true)
		if at := called.Load(); at != 0 {
			after = time.Since(time.Unix(0, at))
			break
		}
	}
	close(stop)
	wg.Wait()
	return after, progress
}

// iterateUntil runs blocking iterations until done, with a Notify every second so that a
// bug fails the test instead of hanging it.
func iterateUntil(t *testing.T, m *mode, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not done after 10 s", what)
		}
		w := time.AfterFunc(time.Second, m.ctx.Notify)
		m.iterate(true)
		w.Stop()
	}
}

// Every clock starts enabled, and virtual time is never ahead of CLOCK_MONOTONIC, which
// it starts equal to.
func TestClockDefaults(t *testing.T) {
	for _, ct := range allClocks {
		if !aiosource.ClockEnabled(ct) {
			t.Errorf("clock %v is disabled by default", ct)
		}
	}
	for _, ct := range []aiosource.ClockType{aiosource.ClockVirtual, aiosource.ClockVirtualRT} {
		if v, mono := aiosource.ClockNS(ct), aiosource.ClockNS(aiosource.ClockRealtime); v > mono {
			t.Errorf("ClockNS(%v) = %d is ahead of CLOCK_MONOTONIC %d", ct, v, mono)
		}
	}
}

func TestMisuseClockEnable(t *testing.T) {
	for _, ct := range []aiosource.ClockType{-1, 4, 99} {
		testutil.MustPanic(t, fmt.Sprintf("aiosource: ClockEnable: invalid ClockType %d", int(ct)), func() { aiosource.ClockEnable(ct, false) })
		testutil.MustPanic(t, fmt.Sprintf("aiosource: ClockEnabled: invalid ClockType %d", int(ct)), func() { aiosource.ClockEnabled(ct) })
	}
	// Enabling an enabled clock, or disabling a disabled one, changes nothing.
	aiosource.ClockEnable(aiosource.ClockHost, true)
	if !aiosource.ClockEnabled(aiosource.ClockHost) {
		t.Fatal("enabling an enabled clock disabled it")
	}
	disableClock(t, aiosource.ClockVirtual)
	v := aiosource.ClockNS(aiosource.ClockVirtual)
	aiosource.ClockEnable(aiosource.ClockVirtual, false)
	time.Sleep(time.Millisecond)
	if aiosource.ClockEnabled(aiosource.ClockVirtual) || aiosource.ClockNS(aiosource.ClockVirtual) != v {
		t.Fatal("disabling the disabled virtual clock again changed it")
	}
}

// A due timer on a disabled clock stays pending and does not run, on each clock; once
// the clock is enabled again, it runs. Timers of the other clocks are not held.
func TestClockDisabledTimerDoesNotRun(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		for _, ct := range allClocks {
			disableClock(t, ct)
			ran, other := 0, 0
			tm := m.ctx.NewTimer(ct, aiosource.ScaleNS, func() { ran++ })
			tm.ModNS(aiosource.ClockNS(ct) - 1) // due on its clock, even a frozen one
			otherClock := aiosource.ClockRealtime
			if ct == aiosource.ClockRealtime {
				otherClock = aiosource.ClockHost
			}
			ot := m.ctx.NewTimer(otherClock, aiosource.ScaleNS, func() { other++ })
			ot.ModNS(0)
			for i := 0; i < 5; i++ {
				m.iterate(false)
			}
			m.flush()
			if ran != 0 || !tm.Pending() {
				t.Fatalf("%v: a due timer on the disabled clock ran %d times (pending %v)", ct, ran, tm.Pending())
			}
			if other != 1 {
				t.Fatalf("%v: the due timer on enabled clock %v ran %d times, want 1", ct, otherClock, other)
			}
			aiosource.ClockEnable(ct, true)
			iterateUntil(t, m, ct.String()+" timer after enabling", func() bool { return ran == 1 })
			if tm.Pending() {
				t.Fatalf("%v: the timer is still pending after it ran", ct)
			}
		}
	})
}

// With only a due timer on a disabled clock, a blocking iteration sleeps until it is
// notified (the deadline leaves the timer out), and it does not run the timer.
func TestClockDisabledTimerLeftOutOfDeadline(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		for _, ct := range allClocks {
			disableClock(t, ct)
			ran := false
			tm := m.ctx.NewTimer(ct, aiosource.ScaleNS, func() { ran = true })
			tm.ModNS(aiosource.ClockNS(ct) - 1)
			m.flush() // accept the new head's notification
			if n := sleepsUntilNotify(m); n > 3 || ran {
				t.Fatalf("%v: with only a due timer on the disabled clock, %d blocking iterations ran before a Notify 100 ms later (ran %v); want one, asleep until Notify", ct, n, ran)
			}
			tm.Del()
			aiosource.ClockEnable(ct, true)
		}
	})
}

// timerfdArmed finds the reactor's timerfd among the fds GLib polls and reports whether
// it is armed; found is false if GLib does not poll a timerfd.
func timerfdArmed(t *testing.T, fds []glibloop.PollFD) (armed, found bool) {
	t.Helper()
	for _, f := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.FD))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(link, "timerfd") {
			continue
		}
		var its unix.ItimerSpec
		if err := unix.TimerfdGettime(int(f.FD), &its); err != nil {
			t.Fatal(err)
		}
		return its.Value.Sec != 0 || its.Value.Nsec != 0, true
	}
	return false, false
}

// Under GLib, the context's prepare leaves a disabled clock's timer out: no poll timeout
// and a disarmed timerfd, so GLib sleeps; enabling the clock arms the timerfd again.
func TestClockDisabledTimerGLibPrepare(t *testing.T) {
	leakcheck.Handles(t)
	c, mc := newAttached(t)
	if !mc.Acquire() {
		t.Fatal("Acquire")
	}
	defer mc.Release()
	fds := make([]glibloop.PollFD, 8)
	// One prepare-query-check round, then the dispatch if a source is ready.
	round := func() (timeout time.Duration, armed, found, ready bool) {
		_, prio := mc.Prepare()
		var n int
		timeout, n = mc.Query(prio, fds)
		armed, found = timerfdArmed(t, fds[:n])
		if _, err := glibloop.PPoll(fds[:n], 0); err != nil {
			t.Fatal(err)
		}
		ready = mc.Check(prio, fds[:n])
		if ready {
			mc.Dispatch()
		}
		return
	}
	ran := 0
	tm := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { ran++ })
	defer tm.Del()
	// An enabled clock: GLib polls the armed timerfd.
	tm.ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + int64(time.Hour))
	round()
	if _, armed, found, _ := round(); !found || !armed {
		t.Fatalf("with a timer in an hour, the timerfd is polled %v and armed %v; want both", found, armed)
	}
	disableClock(t, aiosource.ClockRealtime)
	// Disabling the clock alone takes its timer out of the deadline GLib sleeps on.
	if timeout, armed, found, _ := round(); timeout >= 0 || armed || !found {
		t.Fatalf("after disabling the clock of a timer in an hour: GLib timeout %v, timerfd armed %v (polled %v); want no timeout, disarmed", timeout, armed, found)
	}
	tm.ModNS(0) // due at once, on a disabled clock
	round()     // the Mod's notification
	timeout, armed, found, ready := round()
	if timeout >= 0 || armed || ready || ran != 0 {
		t.Fatalf("a due timer on a disabled clock: GLib timeout %v, timerfd armed %v (polled %v), ready %v, ran %d; want no timeout, disarmed, not ready, not run",
			timeout, armed, found, ready, ran)
	}
	aiosource.ClockEnable(aiosource.ClockRealtime, true)
	for i := 0; ran == 0 && i < 3; i++ {
		round()
	}
	if ran != 1 {
		t.Fatalf("after enabling the clock, the due timer ran %d times in three rounds, want 1", ran)
	}
}

// Disabling ClockVirtual stops virtual time, both ClockVirtual and ClockVirtualRT;
// enabling it lets it go on from where it stopped, without a jump. ClockVirtualRT's own
// flag holds its timers only.
func TestClockVirtualTimeStops(t *testing.T) {
	lagBefore := aiosource.ClockNS(aiosource.ClockRealtime) - aiosource.ClockNS(aiosource.ClockVirtual)
	disableClock(t, aiosource.ClockVirtual)
	v1, rt1 := aiosource.ClockNS(aiosource.ClockVirtual), aiosource.ClockNS(aiosource.ClockVirtualRT)
	if v1 != rt1 {
		t.Fatalf("stopped virtual time: ClockVirtual %d, ClockVirtualRT %d; want equal", v1, rt1)
	}
	if !aiosource.ClockEnabled(aiosource.ClockVirtualRT) {
		t.Fatal("disabling ClockVirtual disabled ClockVirtualRT's timers")
	}
	time.Sleep(30 * time.Millisecond)
	if v, rt := aiosource.ClockNS(aiosource.ClockVirtual), aiosource.ClockNS(aiosource.ClockVirtualRT); v != v1 || rt != rt1 {
		t.Fatalf("virtual time moved while ClockVirtual was disabled: %d -> %d, virtual-rt %d -> %d", v1, v, rt1, rt)
	}
	before := aiosource.ClockNS(aiosource.ClockRealtime)
	aiosource.ClockEnable(aiosource.ClockVirtual, true)
	v2 := aiosource.ClockNS(aiosource.ClockVirtual)
	after := aiosource.ClockNS(aiosource.ClockRealtime)
	// No jump: across the enable, virtual time moved by at most the real time that passed.
	if v2 < v1 || v2-v1 > after-before {
		t.Fatalf("virtual time jumped on resume: %d -> %d while %v of real time passed", v1, v2, time.Duration(after-before))
	}
	// It runs again, at the rate of real time, and lags CLOCK_MONOTONIC by the time stopped.
	time.Sleep(2 * time.Millisecond)
	if v3 := aiosource.ClockNS(aiosource.ClockVirtualRT); v3 <= v2 {
		t.Fatalf("virtual time does not run after enabling: %d then %d", v2, v3)
	}
	if lag := aiosource.ClockNS(aiosource.ClockRealtime) - aiosource.ClockNS(aiosource.ClockVirtual); lag-lagBefore < int64(30*time.Millisecond) {
		t.Fatalf("virtual time lags CLOCK_MONOTONIC by %v more than before a 30 ms stop", time.Duration(lag-lagBefore))
	}

	// Disabling ClockVirtualRT holds its timers; virtual time goes on.
	disableClock(t, aiosource.ClockVirtualRT)
	v4 := aiosource.ClockNS(aiosource.ClockVirtualRT)
	time.Sleep(2 * time.Millisecond)
	if v5 := aiosource.ClockNS(aiosource.ClockVirtualRT); v5 <= v4 {
		t.Fatal("disabling ClockVirtualRT stopped virtual time")
	}
}

// A virtual timer armed while virtual time stands still fires after the virtual time
// that remained to its expiry, counted from the enable: the pause does not bring it
// closer. A ClockVirtualRT timer runs when due even while virtual time stands still,
// and one that is not due asks for no wakeup then.
func TestClockVirtualTimersAcrossStop(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		disableClock(t, aiosource.ClockVirtual)
		const remain = 40 * time.Millisecond
		var firedRT int64
		tm := m.ctx.NewTimer(aiosource.ClockVirtual, aiosource.ScaleNS, func() {
			firedRT = aiosource.ClockNS(aiosource.ClockRealtime)
		})
		expire := aiosource.ClockNS(aiosource.ClockVirtual) + int64(remain)
		tm.ModNS(expire)

		// ClockVirtualRT, its timers enabled, while virtual time stands still.
		dueRan, laterRan := false, false
		due := m.ctx.NewTimer(aiosource.ClockVirtualRT, aiosource.ScaleNS, func() { dueRan = true })
		later := m.ctx.NewTimer(aiosource.ClockVirtualRT, aiosource.ScaleNS, func() { laterRan = true })
		later.ModNS(aiosource.ClockNS(aiosource.ClockVirtualRT) + 1)
		due.ModNS(aiosource.ClockNS(aiosource.ClockVirtualRT))
		m.flush()
		if !dueRan || laterRan {
			t.Fatalf("stopped virtual time: the due virtual-rt timer ran %v, the one 1 ns later ran %v; want true, false", dueRan, laterRan)
		}
		if n := sleepsUntilNotify(m); n > 3 || laterRan {
			t.Fatalf("stopped virtual time: with a virtual-rt timer 1 ns ahead, %d blocking iterations ran before a Notify 100 ms later (ran %v); want one, asleep until Notify", n, laterRan)
		}

		time.Sleep(2 * remain) // longer than what remains: a jump on resume would make it due
		enabledAt := aiosource.ClockNS(aiosource.ClockRealtime)
		aiosource.ClockEnable(aiosource.ClockVirtual, true)
		iterateUntil(t, m, "virtual timer", func() bool { return firedRT != 0 && laterRan })
		if waited := time.Duration(firedRT - enabledAt); waited < remain {
			t.Fatalf("the virtual timer fired %v after the clock was enabled, want at least the %v of virtual time that remained", waited, remain)
		}
		if got := aiosource.ClockNS(aiosource.ClockVirtual); got < expire {
			t.Fatalf("virtual time %d after the timer ran is before its expiry %d", got, expire)
		}
	})
}

// Enabling a clock from another goroutine wakes a loop that is blocked with only a due
// timer of that clock, and the timer runs: a blocked Poll(true), which reports the
// progress, and a GLib loop (MainLoop.Run), which the timer quits.
func TestClockEnableWakesLoop(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		for _, ct := range []aiosource.ClockType{aiosource.ClockRealtime, aiosource.ClockVirtual} {
			disableClock(t, ct)
			ran := 0
			tm := m.ctx.NewTimer(ct, aiosource.ScaleNS, func() {
				ran++
				if m.glib {
					m.ml.Quit()
				}
			})
			tm.ModNS(aiosource.ClockNS(ct) - 1)
			m.flush()
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !aiosource.LoopWaiting(m.ctx) {
					time.Sleep(100 * time.Microsecond)
				}
				time.Sleep(5 * time.Millisecond) // let it reach the kernel: the handshake covers either way
				aiosource.ClockEnable(ct, true)
			}()
			safety := time.AfterFunc(5*time.Second, func() { m.ctx.Notify(); m.ml.Quit() })
			start := time.Now()
			if m.glib {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := m.ml.Run(ctx)
				cancel()
				if err != nil {
					t.Fatalf("%v: Run: %v", ct, err)
				}
			} else if !m.iterate(true) {
				t.Fatalf("%v: the Poll(true) woken by ClockEnable reported no progress", ct)
			}
			took := time.Since(start)
			safety.Stop()
			wg.Wait()
			if ran != 1 || took >= 5*time.Second {
				t.Fatalf("%v: after ClockEnable from another goroutine the timer ran %d times, the loop returned after %v; want once, at once", ct, ran, took)
			}
		}
	})
}

// A timer callback may disable its own clock (QEMU's qemu_clock_enable would deadlock
// waiting for the pass it runs in): the due timers behind it are not run, in this pass
// or later, until the clock is enabled again.
func TestClockDisableFromOwnTimer(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		t.Cleanup(func() { aiosource.ClockEnable(aiosource.ClockRealtime, true) })
		var order []string
		first := m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() {
			order = append(order, "first")
			aiosource.ClockEnable(aiosource.ClockRealtime, false)
		})
		second := m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { order = append(order, "second") })
		first.ModNS(0)
		second.ModNS(0)
		m.flush()
		if fmt.Sprint(order) != "[first]" || !second.Pending() {
			t.Fatalf("ran %v (second pending %v); want only the first, which disabled the clock", order, second.Pending())
		}
		aiosource.ClockEnable(aiosource.ClockRealtime, true)
		iterateUntil(t, m, "second timer", func() bool { return len(order) == 2 })
	})
}

// ModAnticipate and ModAnticipateNS only move a timer's expiry earlier, or arm one that
// is not pending; moving it to the head of its clock wakes the loop, leaving it does
// not; the timer fires at the anticipated time.
func TestTimerModAnticipate(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		var firedAt int64
		tm := m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleUS, func() { firedAt = aiosource.ClockNS(aiosource.ClockRealtime) })
		defer tm.Del()
		nowUS := aiosource.ClockNS(aiosource.ClockRealtime) / aiosource.ScaleUS
		hour := int64(time.Hour / time.Microsecond)
		tm.ModAnticipate(nowUS + hour) // not pending: arms it
		if got := tm.ExpireTimeNS(); got != (nowUS+hour)*aiosource.ScaleUS {
			t.Fatalf("ModAnticipate of an idle timer: expire %d, want %d", got, (nowUS+hour)*aiosource.ScaleUS)
		}
		m.flush()
		// From another goroutine while the loop sleeps: a later or equal time changes
		// nothing and does not wake it.
		var kicks uint64
		whileBlocked(m, func() {
			k := m.ctx.Stats().Kicks
			for _, later := range []int64{nowUS + 2*hour, nowUS + hour} {
				tm.ModAnticipate(later)
				tm.ModAnticipateNS(later * aiosource.ScaleUS)
			}
			kicks = m.ctx.Stats().Kicks - k
		}, 100*time.Millisecond)
		if got := tm.ExpireTimeNS(); got != (nowUS+hour)*aiosource.ScaleUS {
			t.Fatalf("ModAnticipate to a later or equal time moved the expiry to %d: it delayed the timer", got)
		}
		if kicks != 0 {
			t.Fatalf("a ModAnticipate that moved nothing woke the sleeping loop (%d kicks)", kicks)
		}
		m.flush()
		// Earlier, to 10 minutes from now: the timer stays the head of its clock, with an
		// earlier deadline, and the loop, asleep on the old one, is woken.
		took, progress := whileBlocked(m, func() {
			k := m.ctx.Stats().Kicks
			tm.ModAnticipateNS(aiosource.ClockNS(aiosource.ClockRealtime) + int64(10*time.Minute))
			kicks = m.ctx.Stats().Kicks - k
		}, 5*time.Second)
		if kicks != 1 || took >= 4*time.Second || firedAt != 0 || !m.glib && progress {
			t.Fatalf("after ModAnticipateNS to an earlier time, %d kicks; the blocking iteration returned after %v with progress %v (fired %v); want one kick and an immediate return on it",
				kicks, took, progress, firedAt != 0)
		}
		m.flush()
		// Earlier still, by 30 ms from now on: the timer fires then, never before.
		expire := aiosource.ClockNS(aiosource.ClockRealtime) + int64(30*time.Millisecond)
		tm.ModAnticipateNS(expire)
		if got := tm.ExpireTimeNS(); got != expire {
			t.Fatalf("ModAnticipateNS earlier: expire %d, want %d", got, expire)
		}
		iterateUntil(t, m, "anticipated timer", func() bool { return firedAt != 0 })
		if firedAt < expire {
			t.Fatalf("the anticipated timer fired %v early", time.Duration(expire-firedAt))
		}
		if firedAt-expire > int64(30*time.Minute) {
			t.Fatal("the timer fired at its first expiry, not the anticipated one")
		}
	})
}

// ModAnticipateNS clamps a negative time to 0 before it compares: a timer already due at
// 0 is left where it is among timers due at 0.
func TestTimerModAnticipateNegative(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		var order []string
		a := m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { order = append(order, "a") })
		b := m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { order = append(order, "b") })
		c := m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { order = append(order, "c") })
		a.ModNS(0)
		b.ModNS(0)
		c.ModNS(int64(time.Hour) + aiosource.ClockNS(aiosource.ClockRealtime))
		a.ModAnticipateNS(-5)
		c.ModAnticipateNS(-5) // earlier: to 0, behind a and b
		if a.ExpireTimeNS() != 0 || c.ExpireTimeNS() != 0 {
			t.Fatalf("expire times %d, %d after ModAnticipateNS(-5), want 0", a.ExpireTimeNS(), c.ExpireTimeNS())
		}
		m.flush()
		if fmt.Sprint(order) != "[a b c]" {
			t.Fatalf("order %v, want [a b c]", order)
		}
	})
}

// Expired is timer_expired: the expire time is not after the given time in the timer's
// scale; a timer that is not pending (never armed, deleted, run) has expired, as QEMU's
// expire time -1 has.
func TestTimerExpired(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		ran := false
		tm := m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleUS, func() { ran = true })
		if !tm.Expired(0) || !tm.Expired(1<<40) || tm.Expired(-1) {
			t.Fatalf("a timer never armed: Expired(0) %v, Expired(1<<40) %v, Expired(-1) %v; want true, true, false (its expire time is -1)",
				tm.Expired(0), tm.Expired(1<<40), tm.Expired(-1))
		}
		nowUS := aiosource.ClockNS(aiosource.ClockRealtime) / aiosource.ScaleUS
		tm.Mod(nowUS + 1000)
		for _, c := range []struct {
			at   int64
			want bool
		}{{nowUS, false}, {nowUS + 999, false}, {nowUS + 1000, true}, {nowUS + 1001, true}} {
			if got := tm.Expired(c.at); got != c.want {
				t.Fatalf("armed at %d µs: Expired(%d) = %v, want %v", nowUS+1000, c.at, got, c.want)
			}
		}
		if !tm.Expired(aiosource.ClockNS(aiosource.ClockRealtime)/aiosource.ScaleUS+1000) || ran {
			t.Fatal("Expired disagrees with the clock, or ran the timer")
		}
		tm.Del()
		if !tm.Expired(0) {
			t.Fatal("a deleted timer has not expired")
		}
		tm.Mod(-7) // clamped to 0
		if !tm.Expired(0) || tm.Expired(-1) || tm.ExpireTimeNS() != 0 {
			t.Fatalf("armed at -7: ExpireTimeNS %d, Expired(0) %v, Expired(-1) %v; want 0, true, false", tm.ExpireTimeNS(), tm.Expired(0), tm.Expired(-1))
		}
		m.flush()
		if !ran || tm.Pending() || !tm.Expired(0) || tm.ExpireTimeNS() != -1 {
			t.Fatalf("after it ran: ran %v, pending %v, Expired(0) %v, ExpireTimeNS %d", ran, tm.Pending(), tm.Expired(0), tm.ExpireTimeNS())
		}
	})
}

// Virtual time never goes backwards while other goroutines stop and start it, and
// contexts come and go meanwhile; under -race this also checks the clocks' locking.
func TestClockVirtualMonotonicUnderToggle(t *testing.T) {
	leakcheck.Handles(t)
	t.Cleanup(func() { aiosource.ClockEnable(aiosource.ClockVirtual, true) })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			aiosource.ClockEnable(aiosource.ClockVirtual, i%2 == 1)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := aiosource.New()
			if err != nil {
				t.Error(err)
				return
			}
			tm := c.NewTimer(aiosource.ClockVirtual, aiosource.ScaleNS, func() {})
			tm.ModNS(aiosource.ClockNS(aiosource.ClockVirtual) + 1000)
			c.Poll(false)
			tm.Del()
			c.Close()
		}
	}()
	errs := make(chan string, 2)
	var readers sync.WaitGroup
	for _, ct := range []aiosource.ClockType{aiosource.ClockVirtual, aiosource.ClockVirtualRT} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			last := aiosource.ClockNS(ct)
			for i := 0; i < 300000; i++ {
				v := aiosource.ClockNS(ct)
				if v < last {
					errs <- fmt.Sprintf("ClockNS(%v) went back from %d to %d", ct, last, v)
					return
				}
				last = v
			}
		}()
	}
	readers.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
