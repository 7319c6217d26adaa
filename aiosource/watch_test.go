package aiosource_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

// stallsSeen holds the kinds of stall the watchdog has reported in the running test.
var stallsSeen struct {
	sync.Mutex
	kinds map[string]bool
}

// watchStalls starts the watchdog with threshold, sending its reports to stalls; the
// slow callbacks below see them.
func watchStalls(threshold time.Duration, stalls chan<- glibloop.Stall) {
	stallsSeen.Lock()
	stallsSeen.kinds = map[string]bool{}
	stallsSeen.Unlock()
	glibloop.SetStallWatchdog(threshold, func(s glibloop.Stall) {
		stallsSeen.Lock()
		stallsSeen.kinds[s.Kind] = true
		stallsSeen.Unlock()
		stalls <- s
	})
}

// slowCallback sleeps d, then on until the watchdog has reported a stall of kind (at
// most 10 s), so that a watchdog tick that comes late on a loaded machine still finds
// it running.
func slowCallback(d time.Duration, kind string) {
	time.Sleep(d)
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		stallsSeen.Lock()
		seen := stallsSeen.kinds[kind]
		stallsSeen.Unlock()
		if seen {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func slowBH()    { slowCallback(60*time.Millisecond, "BH") }
func slowTimer() { slowCallback(60*time.Millisecond, "timer") }

// The watchdog names the BH, timer or fd handler that stalls the loop and shows the
// stack stuck in it; statistics count each callback.
func TestStallWatchdogAio(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		stalls := make(chan glibloop.Stall, 8)
		watchStalls(15*time.Millisecond, stalls)
		defer glibloop.SetStallWatchdog(0, nil)

		bh := m.ctx.NewBH("slow-bh", slowBH)
		defer bh.Delete()
		bh.Schedule()
		tm := m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, slowTimer)
		tm.ModNS(0)
		a, b := socketpair(t)
		m.ctx.SetFDHandler(a, aiosource.FDHandler{Read: func() { drain(a); slowCallback(60*time.Millisecond, "fd handler") }})
		defer m.ctx.SetFDHandler(a, aiosource.FDHandler{})
		writeFD(b, []byte("x"))
		for i := 0; i < 6; i++ {
			m.iterate(false)
		}
		// Each slow callback runs until its stall is reported. Other kinds may be
		// reported too (the dispatch around a slow callback, once it has returned, on a
		// slow machine): wait for the three this test is about.
		got := map[string]glibloop.Stall{}
		has := func(kinds ...string) bool {
			for _, k := range kinds {
				if _, ok := got[k]; !ok {
					return false
				}
			}
			return true
		}
		for !has("BH", "timer", "fd handler") {
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
