package aiosource_test

// Ports, in our own code, of QEMU's tests/unit/test-aio.c. Each scenario runs twice: as
// /aio/* through Poll and as /aio-gsource/* through g_main_context_iteration on a
// context made by NewMainLoop. The GLib forms check what QEMU's gsource tests check: an
// iteration reports whether the source was dispatched, not whether work progressed.

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
)

type bhData struct {
	bh     *aiosource.BH
	n, max int
}

// bhTestCB reschedules itself until it ran max times.
func (d *bhData) bhTestCB() {
	d.n++
	if d.n < d.max {
		d.bh.Schedule()
	}
}

// bhDeleteCB deletes its own BH on its max-th run.
func (d *bhData) bhDeleteCB() {
	d.n++
	if d.n < d.max {
		d.bh.Schedule()
	} else {
		d.bh.Delete()
		d.bh = nil
	}
}

// /aio-gsource/flush and /aio/notify: an empty context makes no progress, and after
// aio_notify neither does a flush: the notification is accepted without progress, and a
// blocking Poll right after it returns at once.
func TestFlush(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		if m.iterate(false) {
			t.Fatal("an empty context made progress")
		}
		m.ctx.Notify()
		if !m.glib {
			if notBlocking(t, m, func() bool { return m.iterate(true) }) {
				t.Fatal("Poll(true) after Notify reported progress")
			}
		}
		m.flush()
		if m.iterate(false) {
			t.Fatal("progress after Notify and a flush")
		}
	})
}

// notBlocking runs fn, which must return without waiting for anything but work already
// queued, and returns its result. A rescue Notify after 10 s fails the test instead of
// hanging it.
func notBlocking(t *testing.T, m *mode, fn func() bool) bool {
	t.Helper()
	var blocked atomic.Bool
	rescue := time.AfterFunc(10*time.Second, func() { blocked.Store(true); m.ctx.Notify() })
	r := fn()
	rescue.Stop()
	if blocked.Load() {
		t.Fatal("a blocking iteration blocked although work was ready")
	}
	return r
}

func TestBHSchedule(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		d := &bhData{}
		d.bh = m.ctx.NewBH("schedule", d.bhTestCB)
		defer d.bh.Delete()
		d.bh.Schedule()
		if d.n != 0 {
			t.Fatal("the BH ran at Schedule")
		}
		if !m.iterate(true) || d.n != 1 {
			t.Fatalf("iterate(true) after Schedule: n=%d", d.n)
		}
		if m.iterate(false) || d.n != 1 {
			t.Fatalf("second iterate: n=%d", d.n)
		}
	})
}

func TestBHSchedule10(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		d := &bhData{max: 10}
		d.bh = m.ctx.NewBH("schedule10", d.bhTestCB)
		defer d.bh.Delete()
		d.bh.Schedule()
		if !m.iterate(false) || d.n != 1 {
			t.Fatalf("n=%d after one non-blocking iteration", d.n)
		}
		if !m.iterate(true) || d.n != 2 {
			t.Fatalf("n=%d after one blocking iteration: a BH scheduled by a BH runs in the next pass", d.n)
		}
		for d.n < 10 {
			m.iterate(true)
		}
		m.flush()
		if d.n != 10 {
			t.Fatalf("n=%d, want 10", d.n)
		}
		if m.iterate(false) {
			t.Fatal("progress after the last run")
		}
	})
}

func TestBHCancel(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		d := &bhData{}
		d.bh = m.ctx.NewBH("cancel", d.bhTestCB)
		defer d.bh.Delete()
		d.bh.Schedule()
		d.bh.Cancel()
		if m.glib {
			m.flush() // GLib may dispatch the source once to find nothing
		} else if m.iterate(false) {
			t.Fatal("a cancelled BH counted as progress")
		}
		if d.n != 0 {
			t.Fatalf("a cancelled BH ran %d times", d.n)
		}
		// Cancel then Schedule: it runs once.
		d.bh.Schedule()
		d.bh.Cancel()
		d.bh.Schedule()
		m.flush()
		if d.n != 1 {
			t.Fatalf("cancel+schedule ran %d times, want 1", d.n)
		}
	})
}

func TestBHDelete(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		d := &bhData{}
		d.bh = m.ctx.NewBH("delete", d.bhTestCB)
		d.bh.Schedule()
		d.bh.Delete()
		if !m.glib && m.iterate(false) {
			t.Fatal("a deleted BH counted as progress")
		}
		m.flush()
		if d.n != 0 {
			t.Fatalf("a deleted BH ran %d times", d.n)
		}
		d.bh.Schedule() // use after Delete: a no-op
		d.bh.Delete()
		m.flush()
		if d.n != 0 {
			t.Fatal("Schedule after Delete ran the BH")
		}
	})
}

func TestBHDeleteFromCallback(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		d := &bhData{max: 1}
		d.bh = m.ctx.NewBH("delete-from-cb", d.bhDeleteCB)
		d.bh.Schedule()
		if d.n != 0 {
			t.Fatal("the BH ran at Schedule")
		}
		m.iterate(true) // /aio-gsource/bh/callback-delete/one: one iteration runs it
		if d.n != d.max || d.bh != nil {
			t.Fatalf("n=%d after one blocking iteration, want %d and the BH deleted", d.n, d.max)
		}
		// As in QEMU, the deleted BH stays queued until the next pass frees it: under
		// GLib that is exactly one more dispatching iteration; Poll frees it without
		// counting progress.
		if m.glib && !m.iterate(false) {
			t.Fatal("no dispatch freed the deleted BH")
		}
		if m.iterate(false) {
			t.Fatal("progress after the BH deleted itself")
		}
	})
}

func TestBHDeleteFromCallbackMany(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		ds := []*bhData{{max: 1}, {max: 3}, {max: 2}, {max: 4}}
		for _, d := range ds {
			d.bh = m.ctx.NewBH("delete-from-cb-many", d.bhDeleteCB)
			d.bh.Schedule()
		}
		if !m.iterate(false) {
			t.Fatal("no progress with four scheduled BHs")
		}
		for _, d := range ds {
			if d.n != 1 {
				t.Fatalf("after one pass: counts %d %d %d %d, want all 1", ds[0].n, ds[1].n, ds[2].n, ds[3].n)
			}
		}
		if ds[0].bh != nil {
			t.Fatal("the max=1 BH did not delete itself in the first pass")
		}
		for i := 0; ; i++ {
			done := true
			for _, d := range ds {
				done = done && d.n >= d.max
			}
			if done {
				break
			}
			if i > 100 {
				t.Fatal("BHs stopped running")
			}
			m.iterate(false)
		}
		for _, d := range ds {
			if d.n != d.max || d.bh != nil {
				t.Fatalf("BH max=%d ran %d times (deleted=%v)", d.max, d.n, d.bh == nil)
			}
		}
	})
}

func TestBHFlush(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		d := &bhData{}
		d.bh = m.ctx.NewBH("flush", d.bhTestCB)
		defer d.bh.Delete()
		d.bh.Schedule()
		m.flush()
		if d.n != 1 {
			t.Fatalf("n=%d after flush", d.n)
		}
		if m.iterate(false) {
			t.Fatal("progress after flush")
		}
	})
}

type eventData struct {
	e       *aiosource.EventNotifier
	n       int
	active  int
	autoSet bool
	t       *testing.T
}

// eventReadyCB is QEMU's event_ready_cb.
func (d *eventData) eventReadyCB(e *aiosource.EventNotifier) {
	if !e.TestAndClear() {
		d.t.Error("the read handler ran for a notifier that was not set")
	}
	d.n++
	if d.active > 0 {
		d.active--
	}
	if d.autoSet && d.active > 0 {
		e.Set()
	}
}

func newEvent(t *testing.T, active int, autoSet bool) *eventData {
	e, err := aiosource.NewEventNotifier(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return &eventData{e: e, active: active, autoSet: autoSet, t: t}
}

func TestEventAddRemove(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		d := newEvent(t, 0, false)
		if err := m.ctx.SetEventNotifier(d.e, d.eventReadyCB); err != nil {
			t.Fatal(err)
		}
		m.flush() // the registration notified the loop
		if m.iterate(false) || d.n != 0 {
			t.Fatalf("an unset notifier fired: n=%d", d.n)
		}
		if err := m.ctx.SetEventNotifier(d.e, nil); err != nil {
			t.Fatal(err)
		}
		m.flush()
		if m.iterate(false) || d.n != 0 {
			t.Fatal("progress after removal")
		}
	})
}

func TestEventWait(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		d := newEvent(t, 1, false)
		m.ctx.SetEventNotifier(d.e, d.eventReadyCB)
		m.flush()
		if d.n != 0 || d.active != 1 {
			t.Fatalf("n=%d active=%d before Set", d.n, d.active)
		}
		d.e.Set()
		if !m.iterate(false) || d.n != 1 || d.active != 0 {
			t.Fatalf("after Set: n=%d active=%d", d.n, d.active)
		}
		if m.iterate(false) || d.n != 1 {
			t.Fatalf("the handler ran again: n=%d", d.n)
		}
		m.ctx.SetEventNotifier(d.e, nil)
		m.flush()
		if m.iterate(false) || d.n != 1 {
			t.Fatal("progress after removal")
		}
	})
}

// A blocking iteration waits for the notifier, set from another goroutine.
func TestEventWaitBlocking(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		d := newEvent(t, 1, false)
		m.ctx.SetEventNotifier(d.e, d.eventReadyCB)
		m.flush()
		go func() { time.Sleep(20 * time.Millisecond); d.e.Set() }()
		for d.n == 0 {
			m.iterate(true)
		}
		m.ctx.SetEventNotifier(d.e, nil)
	})
}

func TestEventFlush(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		d := newEvent(t, 10, true)
		m.ctx.SetEventNotifier(d.e, d.eventReadyCB)
		m.flush()
		if d.n != 0 || d.active != 10 {
			t.Fatalf("n=%d active=%d before Set", d.n, d.active)
		}
		d.e.Set()
		if !m.iterate(false) || d.n != 1 || d.active != 9 {
			t.Fatalf("after one pass: n=%d active=%d", d.n, d.active)
		}
		for d.active > 0 {
			m.iterate(true)
		}
		if d.n != 10 {
			t.Fatalf("n=%d, want 10", d.n)
		}
		if m.iterate(false) {
			t.Fatal("progress once inactive")
		}
		m.ctx.SetEventNotifier(d.e, nil)
		m.flush()
		if m.iterate(false) {
			t.Fatal("progress after removal")
		}
	})
}

func TestEventWaitNoFlushCB(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		d := newEvent(t, 1, false)
		m.ctx.SetEventNotifier(d.e, d.eventReadyCB)
		m.flush()
		if m.iterate(false) || d.n != 0 {
			t.Fatalf("n=%d before Set", d.n)
		}
		// /aio/event/wait/no-flush-cb: with the notifier set, a blocking iteration must
		// not block (it may or may not run the callback).
		d.e.Set()
		if !notBlocking(t, m, func() bool { return m.iterate(true) }) {
			t.Fatal("a blocking iteration with a set notifier reported no progress")
		}
		m.flush()
		d.n = 0
		for want := 1; want <= 2; want++ {
			d.e.Set()
			if !m.iterate(false) || d.n != want {
				t.Fatalf("Set %d: n=%d", want, d.n)
			}
		}
		// A second, active notifier makes the loop look at notifiers again.
		dummy := newEvent(t, 1, false)
		m.ctx.SetEventNotifier(dummy.e, dummy.eventReadyCB)
		dummy.e.Set()
		d.e.Set()
		m.flush()
		if d.n != 3 || dummy.n != 1 {
			t.Fatalf("with a dummy notifier: n=%d dummy=%d, want 3 1", d.n, dummy.n)
		}
		if m.iterate(false) {
			t.Fatal("progress with both notifiers clear")
		}
		d.e.Set()
		if !m.iterate(false) || d.n != 4 {
			t.Fatalf("n=%d, want 4", d.n)
		}
		if m.iterate(false) || d.n != 4 || dummy.n != 1 {
			t.Fatalf("n=%d dummy=%d after the last pass", d.n, dummy.n)
		}
		m.ctx.SetEventNotifier(dummy.e, nil)
		m.ctx.SetEventNotifier(d.e, nil)
		m.flush()
		if m.iterate(false) || d.n != 4 {
			t.Fatal("progress after removal")
		}
	})
}

type timerData struct {
	timer *aiosource.Timer
	clock aiosource.ClockType
	n     int
	max   int
	ns    int64
	ranAt int64 // the clock when the callback last ran
}

// timerTestCB re-arms the timer ns later until it ran max times.
func (d *timerData) timerTestCB() {
	d.ranAt = aiosource.ClockNS(d.clock)
	d.n++
	if d.n < d.max {
		d.timer.ModNS(d.ranAt + d.ns)
	}
}

// /aio/timer/schedule: a 750 ms timer fires after it is due and not before, and a
// blocking iteration waits for it. "Not before" compares the clock in the callback with
// the expiry the timer was armed with, never with a time the test read later, so a
// loaded machine that delays the test only makes the timer look later, never early.
func TestTimerSchedule(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		t.Parallel()
		d := &timerData{clock: aiosource.ClockRealtime, max: 2, ns: 750 * aiosource.ScaleMS}
		d.timer = m.ctx.NewTimer(d.clock, aiosource.ScaleNS, d.timerTestCB)
		// The test-aio.c dummy notifier: a registered fd.
		dummy := newEvent(t, 0, false)
		m.ctx.SetEventNotifier(dummy.e, func(*aiosource.EventNotifier) {})
		defer m.ctx.SetEventNotifier(dummy.e, nil)

		expire := aiosource.ClockNS(d.clock) + d.ns
		d.timer.ModNS(expire)
		m.flush() // Mod of the new head notified the loop
		// A machine that descheduled the test for the whole 750 ms has already run the
		// timer here: that run is checked for "not before" alone, and the second expiry
		// below is checked in full either way.
		if progress := m.iterate(false); d.n == 0 {
			if progress {
				t.Fatal("a non-blocking iteration made progress before the timer was due")
			}
			time.Sleep(time.Second)
			if d.n != 0 {
				t.Fatal("the timer ran without an iteration")
			}
			if !m.iterate(false) || d.n != 1 {
				t.Fatalf("the due timer did not run: n=%d", d.n)
			}
		}
		if d.ranAt < expire {
			t.Fatalf("the timer fired %v early", time.Duration(expire-d.ranAt))
		}
		// The callback re-armed it ns after it ran.
		expire = d.ranAt + d.ns
		if got := d.timer.ExpireTimeNS(); got != expire {
			t.Fatalf("re-armed to expire at %d, want %d", got, expire)
		}
		m.flush() // the callback re-armed it: accept that notification
		if progress := m.iterate(false); d.n == 1 && progress {
			t.Fatal("a non-blocking iteration made progress before the second expiry")
		}
		// /aio/timer/schedule: one blocking iteration waits for the timer and runs it.
		if !m.iterate(true) || d.n != 2 {
			t.Fatalf("one blocking iteration: n=%d, want 2", d.n)
		}
		if d.ranAt < expire {
			t.Fatalf("the blocking iteration ran the timer %v before it was due", time.Duration(expire-d.ranAt))
		}
		if m.iterate(false) || d.n != 2 {
			t.Fatalf("n=%d, want 2 and nothing more", d.n)
		}
		d.timer.Del()
	})
}
