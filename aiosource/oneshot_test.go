package aiosource_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

func oneshotCount(c *aiosource.Context) int64 {
	for _, s := range c.CallbackStats() {
		if s.Kind == "BH" && s.Name == "oneshot" {
			return s.Count
		}
	}
	return -1
}

// More oneshots than the ring holds, scheduled from the loop's own goroutine (which
// cannot drain the ring while it schedules): the overflow goes to the BH list, and every
// oneshot runs exactly once, counted in Stats and in the statistics.
func TestOneshotRingOverflow(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		const n = 3000 // the ring holds 1024
		runs := make([]int, n)
		bhs, stats := m.ctx.Stats().BHs, oneshotCount(m.ctx)
		for i := range n {
			m.ctx.ScheduleOneshot(func() { runs[i]++ })
		}
		m.flush()
		for i, r := range runs {
			if r != 1 {
				t.Fatalf("oneshot %d ran %d times", i, r)
			}
		}
		if got := m.ctx.Stats().BHs - bhs; got != n {
			t.Fatalf("Stats().BHs grew by %d, want %d", got, n)
		}
		if got := oneshotCount(m.ctx) - stats; got != n {
			t.Fatalf("oneshot statistics count %d, want %d", got, n)
		}
	})
}

// Close counts the oneshots that never ran, in the ring and on the list alike.
func TestCloseCountsRingAndListOneshots(t *testing.T) {
	leakcheck.Handles(t)
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	for range 1500 {
		c.ScheduleOneshot(func() { t.Error("a oneshot ran after Close") })
	}
	err = c.Close()
	if err == nil || !strings.Contains(err.Error(), "1500 oneshot BH(s) never ran") {
		t.Fatalf("Close: %v", err)
	}
}

// A panic in the middle of a batch of oneshots: it comes out of the driving call, and
// the oneshots behind it run in a later pass, once each. Its time is counted too.
func TestOneshotPanicMidBatch(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		runs := make([]int, 5)
		stats := oneshotCount(m.ctx)
		for i := range runs {
			m.ctx.ScheduleOneshot(func() {
				runs[i]++
				if i == 2 {
					panic("oneshot-boom")
				}
			})
		}
		pe, other := catch(func() { m.flush() })
		if other != nil || pe == nil || pe.Value != "oneshot-boom" {
			t.Fatalf("want the oneshot's panic, got %v / %v", pe, other)
		}
		m.flush()
		for i, r := range runs {
			if r != 1 {
				t.Fatalf("oneshot %d ran %d times: %v", i, r, runs)
			}
		}
		if got := oneshotCount(m.ctx) - stats; got != 5 {
			t.Fatalf("oneshot statistics count %d, want 5 (the panicking one included)", got)
		}
	})
}

// Producers on many goroutines race the loop through the ring and its overflow: each
// oneshot runs exactly once and no wakeup is lost (a lost one would leave the blocking
// iteration asleep; the rescue below then fails the test instead of hanging it).
func TestOneshotConcurrentExactlyOnce(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		const producers, per = 6, 4000
		runs := make([]atomic.Int32, producers*per)
		var done atomic.Int64
		var wg sync.WaitGroup
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per {
					k := p*per + i
					m.ctx.ScheduleOneshot(func() { runs[k].Add(1); done.Add(1) })
				}
			}()
		}
		var lost atomic.Bool
		rescue := time.AfterFunc(60*time.Second, func() { lost.Store(true); m.ctx.Notify() })
		for done.Load() < producers*per && !lost.Load() {
			m.iterate(true)
		}
		rescue.Stop()
		wg.Wait()
		if lost.Load() {
			t.Fatalf("the loop slept with %d of %d oneshots run: a lost wakeup", done.Load(), producers*per)
		}
		m.flush()
		for k := range runs {
			if n := runs[k].Load(); n != 1 {
				t.Fatalf("oneshot %d ran %d times", k, n)
			}
		}
	})
}

// The watchdog times each oneshot of a batch from its own start: three quick ones before
// a slow one do not add up to a stall, and the stall it reports is the slow one's. The
// quick ones together pass the threshold, each alone stays far below it (a sleep that
// overruns by 120 ms on a loaded machine is still no stall), and the slow one runs until
// its stall is reported.
func TestOneshotBatchWatchdog(t *testing.T) {
	leakcheck.Handles(t)
	c := newCtx(t)
	stalls := make(chan glibloop.Stall, 8)
	watchStalls(200*time.Millisecond, stalls)
	defer glibloop.SetStallWatchdog(0, nil)
	for i := 0; i < 3; i++ {
		c.ScheduleOneshot(func() { time.Sleep(80 * time.Millisecond) })
	}
	c.ScheduleOneshot(slowOneshot)
	c.Poll(false)
	glibloop.SetStallWatchdog(0, nil) // waits for the watchdog: every report is in stalls
	var got []glibloop.Stall
	for len(stalls) > 0 {
		got = append(got, <-stalls)
	}
	if len(got) != 1 || got[0].Name != "oneshot" || !strings.Contains(string(got[0].Stack), "slowOneshot") {
		for _, s := range got {
			t.Logf("stall %s %q %v\n%s", s.Kind, s.Name, s.Duration, s.Stack)
		}
		t.Fatalf("want one stall, in slowOneshot; got %d", len(got))
	}
}

func slowOneshot() { slowCallback(300*time.Millisecond, "BH") }

// Close from a callback ends the pass: what Close reported as never run does not run,
// whether it waits in the oneshot ring or on the BH list.
func TestCloseFromCallbackStopsThePass(t *testing.T) {
	leakcheck.Handles(t)
	for _, kind := range []string{"oneshot", "BH"} {
		c, err := aiosource.New()
		if err != nil {
			t.Fatal(err)
		}
		var closeErr error
		ranAfter := 0
		switch kind {
		case "oneshot":
			c.ScheduleOneshot(func() { closeErr = c.Close() })
			c.ScheduleOneshot(func() { ranAfter++ })
			c.ScheduleOneshot(func() { ranAfter++ })
		case "BH":
			var a, b *aiosource.BH
			b = c.NewBH("b", func() { ranAfter++ })
			a = c.NewBH("a", func() { b.Delete(); closeErr = c.Close() })
			b.Schedule() // LIFO: a runs first
			a.Schedule()
			defer a.Delete()
		}
		c.Poll(false)
		if !c.Closed() || ranAfter != 0 {
			t.Fatalf("%s: %d callbacks ran after Close", kind, ranAfter)
		}
		if kind == "oneshot" && (closeErr == nil || !strings.Contains(closeErr.Error(), "2 oneshot BH(s) never ran")) {
			t.Fatalf("Close: %v", closeErr)
		}
	}
}
