package watch

import (
	"sync"
	"testing"
	"time"
)

// run makes n calls of p through timing and done, as Enter and Leave do, with the
// durations dur(i) gives, and returns how many were timed and the true total.
func run(p *Point, n int, dur func(i int) int64) (timed int, total int64) {
	for i := 0; i < n; i++ {
		d := dur(i)
		total += d
		tm := p.timing()
		if tm != untimed {
			timed++
		}
		p.done(tm, d)
	}
	return timed, total
}

func constant(d int64) func(int) int64 { return func(int) int64 { return d } }

// A callback's first calls are all timed, so a callback that runs a few times has exact
// statistics.
func TestWarmupExact(t *testing.T) {
	p := NewPoint("test", "warmup", nil)
	timed, total := run(p, warmupCalls, func(i int) int64 { return int64(100 + i) })
	st := p.Stats()
	if timed != warmupCalls || st.Count != warmupCalls || int64(st.Total) != total ||
		st.Max != time.Duration(100+warmupCalls-1) {
		t.Fatalf("timed %d, stats %+v, want all %d timed, total %d", timed, st, warmupCalls, total)
	}
}

// After the warm-up, a fast callback is timed about once in 32 calls; its count stays
// exact and its total is the timed calls' durations scaled to the count.
func TestSampledFast(t *testing.T) {
	p := NewPoint("test", "fast", nil)
	const n = 64000
	timed, total := run(p, n, constant(100))
	st := p.Stats()
	if st.Count != n {
		t.Fatalf("count %d, want %d", st.Count, n)
	}
	// Gaps of 1 to 63 calls, 32 on average: about 2000 samples; far outside a few
	// standard deviations below.
	if timed < 1500 || timed > 2600 {
		t.Fatalf("%d of %d calls timed, want about %d", timed, n, n/32)
	}
	if st.Total != time.Duration(total) || st.Max != 100 {
		t.Fatalf("stats %+v, want total %d, max 100", st, total)
	}
}

// A callback whose calls take slowNS or more is timed on every call: exact statistics.
func TestSlowTimedEveryCall(t *testing.T) {
	p := NewPoint("test", "slow", nil)
	const n = 10 * warmupCalls
	timed, total := run(p, n, func(i int) int64 { return slowNS + int64(i%7) })
	if st := p.Stats(); timed != n || int64(st.Total) != total || st.Count != n {
		t.Fatalf("%d of %d calls timed, stats %+v, want total %d", timed, n, st, total)
	}
}

// Once a timed call is slow, the next call is timed too, however fast the callback was
// before.
func TestSlowCallTimesNext(t *testing.T) {
	p := NewPoint("test", "turns slow", nil)
	run(p, 10000, constant(50))
	for p.timing() == untimed { // reach the next sample
		p.done(untimed, 0)
	}
	p.done(timedSample, slowNS*10)
	if p.timing() == untimed {
		t.Fatal("the call after a slow timed call is not timed")
	}
	if st := p.Stats(); st.Max != slowNS*10 {
		t.Fatalf("max %v, want %v", st.Max, time.Duration(slowNS*10))
	}
}

// Random gaps: a slow call every 32nd call (a pattern that fixed one-in-32 sampling
// would either always or never see) is weighed in at about its share.
func TestSampledPeriodicPattern(t *testing.T) {
	p := NewPoint("test", "periodic", nil)
	const n = 32 * 20000
	_, total := run(p, n, func(i int) int64 {
		if i%32 == 31 {
			return 3100 // below slowNS: the calls stay sampled
		}
		return 100
	})
	got, want := float64(p.Stats().Total), float64(total)
	if got < 0.85*want || got > 1.15*want {
		t.Fatalf("estimated total %.0f ns, true total %.0f ns", got, want)
	}
}

// Counts stay exact when calls race with readers (run with -race).
func TestConcurrentStats(t *testing.T) {
	p := NewPoint("test", "concurrent", nil)
	var s Slot
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20000; i++ {
			var st State
			s.Enter(&st, p)
			s.Leave(&st)
		}
	}()
	for i := 0; i < 100; i++ {
		_ = p.Stats()
	}
	wg.Wait()
	if c := p.Stats().Count; c != 20000 {
		t.Fatalf("count %d, want 20000", c)
	}
}

// While the watchdog runs, every call is timed and published on its slot, whatever
// its point's sampling state; End restores what ran before, so nested callbacks stack.
func TestWatchedCallsPublished(t *testing.T) {
	p := NewPoint("test", "watched", nil)
	run(p, 10000, constant(10)) // deep in sampling
	watching.Store(true)
	defer watching.Store(false)
	var s Slot
	outer := NewPoint("test", "outer", nil)
	var so State
	s.Enter(&so, outer)
	for i := 0; i < 100; i++ {
		var st State
		s.Enter(&st, p)
		if st.timing == untimed || s.what.Load() != p || s.start.Load() != st.begun {
			t.Fatalf("call %d while watching: timing %d, slot %p at %d", i, st.timing, s.what.Load(), s.start.Load())
		}
		s.Leave(&st)
		if s.what.Load() != outer || s.start.Load() != so.begun {
			t.Fatalf("Leave did not restore the enclosing callback")
		}
	}
	s.Leave(&so)
	if s.start.Load() != 0 {
		t.Fatal("the slot still shows a callback after the outer one ended")
	}
	if st := outer.Stats(); st.Count != 1 || st.Total <= 0 {
		t.Fatalf("outer stats %+v", st)
	}
}

// A run of Laps counts every callback exactly, and Restore records nothing for the
// callback the last Lap began but that never ran.
func TestLapCounts(t *testing.T) {
	for _, watched := range []bool{false, true} {
		watching.Store(watched)
		p := NewPoint("test", "laps", nil)
		var s Slot
		var st State
		s.Enter(&st, p)
		for i := 0; i < 1000; i++ {
			s.Lap(&st)
		}
		s.Restore(&st)
		if c := p.Stats().Count; c != 1000 {
			t.Fatalf("watched %v: count %d after 1000 laps, want 1000", watched, c)
		}
		if s.start.Load() != 0 {
			t.Fatalf("watched %v: the slot still shows the run after Restore", watched)
		}
	}
	watching.Store(false)
}

// With statistics off nothing is recorded or published.
func TestDisabled(t *testing.T) {
	SetEnabled(false)
	defer SetEnabled(true)
	p := NewPoint("test", "off", nil)
	var s Slot
	var st State
	s.Enter(&st, p)
	s.Leave(&st)
	if c := p.Stats().Count; c != 0 {
		t.Fatalf("count %d with statistics off", c)
	}
}
