package aiosource_test

import (
	"strings"
	"testing"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

func catch(fn func()) (pe *glibloop.PanicError, other any) {
	defer func() {
		if r := recover(); r != nil {
			var ok bool
			if pe, ok = r.(*glibloop.PanicError); !ok {
				other = r
			}
		}
	}()
	fn()
	return nil, nil
}

// A panic in a BH, an fd handler or a timer comes out of the driving call with its value
// and stack; the context stays consistent and nothing else that was queued is lost.
func TestPanicInCallbacks(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		var ran []string
		boom := m.ctx.NewBH("boom", func() { panic("bh-boom") })
		after := m.ctx.NewBH("after", func() { ran = append(ran, "after") })
		defer boom.Delete()
		defer after.Delete()
		// LIFO within a pass: after is pushed first so it runs after boom.
		after.Schedule()
		boom.Schedule()
		pe, other := catch(func() {
			for i := 0; i < 10; i++ {
				m.iterate(false)
			}
		})
		if other != nil || pe == nil || pe.Value != "bh-boom" || !strings.Contains(string(pe.Stack), "TestPanicInCallbacks") {
			t.Fatalf("want bh-boom as a PanicError with its stack, got %v / %v", pe, other)
		}
		m.flush()
		if len(ran) != 1 {
			t.Fatalf("the BH queued behind the panicking one ran %d times, want 1", len(ran))
		}

		a, b := socketpair(t)
		m.ctx.SetFDHandler(a, aiosource.FDHandler{Read: func() { drain(a); panic("fd-boom") }})
		writeFD(b, []byte("x"))
		pe, _ = catch(func() {
			for i := 0; i < 10; i++ {
				m.iterate(false)
			}
		})
		if pe == nil || pe.Value != "fd-boom" {
			t.Fatalf("fd handler panic: %v", pe)
		}
		m.ctx.SetFDHandler(a, aiosource.FDHandler{})

		tm := m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { panic("timer-boom") })
		n := 0
		tm2 := m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { n++ })
		tm.ModNS(0)
		tm2.ModNS(1) // after tm
		pe, _ = catch(func() {
			for i := 0; i < 10; i++ {
				m.iterate(false)
			}
		})
		if pe == nil || pe.Value != "timer-boom" {
			t.Fatalf("timer panic: %v", pe)
		}
		m.flush()
		if n != 1 {
			t.Fatalf("the timer due after the panicking one ran %d times, want 1", n)
		}
		// Still fully working.
		ok := false
		m.ctx.ScheduleOneshot(func() { ok = true })
		m.flush()
		if !ok {
			t.Fatal("the context does not run BHs after the panics")
		}
		if glibloop.MainDepth() != 0 {
			t.Fatalf("MainDepth %d after the panics", glibloop.MainDepth())
		}
	})
}
