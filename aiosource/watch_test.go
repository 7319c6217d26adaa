package aiosource_test

import (
	"strings"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

func slowBH()    { time.Sleep(60 * time.Millisecond) }
func slowTimer() { time.Sleep(60 * time.Millisecond) }

// The watchdog names the BH, timer or fd handler that stalls the loop and shows the
// stack stuck in it; statistics count each callback.
func TestStallWatchdogAio(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		stalls := make(chan glibloop.Stall, 8)
		glibloop.SetStallWatchdog(15*time.Millisecond, func(s glibloop.Stall) { stalls <- s })
		defer glibloop.SetStallWatchdog(0, nil)

		bh := m.ctx.NewBH("slow-bh", slowBH)
		defer bh.Delete()
		bh.Schedule()
		tm := m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, slowTimer)
		tm.ModNS(0)
		a, b := socketpair(t)
		m.ctx.SetFDHandler(a, aiosource.FDHandler{Read: func() { drain(a); time.Sleep(60 * time.Millisecond) }})
		defer m.ctx.SetFDHandler(a, aiosource.FDHandler{})
		writeFD(b, []byte("x"))
		for i := 0; i < 6; i++ {
			m.iterate(false)
		}
		got := map[string]glibloop.Stall{}
		for len(got) < 3 {
			select {
			case s := <-stalls:
				got[s.Kind] = s
			case <-time.After(5 * time.Second):
				t.Fatalf("stalls reported: %v", got)
			}
		}
		if s := got["BH"]; s.Name != "slow-bh" || !strings.Contains(string(s.Stack), "aiosource_test.slowBH") {
			t.Fatalf("BH stall %+v", s)
		}
		if s := got["timer"]; !strings.Contains(s.Name, "slowTimer") || !strings.Contains(string(s.Stack), "aiosource_test.slowTimer") {
			t.Fatalf("timer stall %+v", s)
		}
		if s := got["fd handler"]; !strings.Contains(s.Name, "read") || s.Duration < 15*time.Millisecond {
			t.Fatalf("fd handler stall %+v", s)
		}
		found := 0
		for _, cs := range m.ctx.CallbackStats() {
			if (cs.Name == "slow-bh" || strings.HasSuffix(cs.Name, " read")) && cs.Count == 1 && cs.Max >= 60*time.Millisecond {
				found++
			}
		}
		if found != 2 {
			t.Fatalf("callback stats do not show the BH and the fd handler: %+v", m.ctx.CallbackStats())
		}
	})
}
