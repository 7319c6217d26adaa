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

// counter returns the change counter of a slot state.
func counter(state uint64) uint64 { return state >> 1 }

// While the watchdog runs, every call is shown on its slot: the running bit, its point,
// and a counter that changes at every Enter and Leave; Leave shows the enclosing
// callback again, as a new state, so nested callbacks stack; the slot is idle once the
// outermost returns. Timing keeps to the sampling rules: a sampled point's calls are
// mostly untimed.
func TestWatchedCallsPublished(t *testing.T) {
	p := NewPoint("test", "watched", nil)
	run(p, 10000, constant(10)) // deep in sampling
	watching.Store(true)
	defer watching.Store(false)
	var s Slot
	outer := NewPoint("test", "outer", nil)
	var so State
	s.Enter(&so, outer)
	last := s.state.Load()
	if last&running == 0 || s.what.Load() != outer || so.outerRunning {
		t.Fatalf("after the outer Enter: state %#x, what %p", last, s.what.Load())
	}
	timed := 0
	for i := 0; i < 1000; i++ {
		var st State
		s.Enter(&st, p)
		in := s.state.Load()
		if in&running == 0 || counter(in) <= counter(last) || s.what.Load() != p ||
			!st.outerRunning || st.prevP != outer {
			t.Fatalf("call %d: state %#x after %#x, what %p, outer %v %p", i, in, last, s.what.Load(), st.outerRunning, st.prevP)
		}
		if st.timing != untimed {
			timed++
		}
		s.Leave(&st)
		back := s.state.Load()
		if back&running == 0 || counter(back) <= counter(in) || s.what.Load() != outer {
			t.Fatalf("call %d: Leave did not show the enclosing callback as a new state: %#x after %#x, what %p",
				i, back, in, s.what.Load())
		}
		last = back
	}
	if timed > 200 {
		t.Fatalf("%d of 1000 watched calls of a sampled point timed: the watchdog forced timing", timed)
	}
	s.Leave(&so)
	if end := s.state.Load(); end&running != 0 || counter(end) <= counter(last) {
		t.Fatalf("after the outer one ended the slot shows %#x (was %#x)", end, last)
	}
	if st := outer.Stats(); st.Count != 1 || st.Total <= 0 {
		t.Fatalf("outer stats %+v (its only call is in the warm-up, timed)", st)
	}
	if st := p.Stats(); st.Count != 11000 {
		t.Fatalf("inner stats %+v", st)
	}
}

// A nested callback of the same point as the outer one leaves what alone; one of
// another point first shows idle, so that the point changes only while no call shows
// running (the watchdog never pairs the outer's state with the inner's point).
func TestNestedWhatChangesWhileIdle(t *testing.T) {
	watching.Store(true)
	defer watching.Store(false)
	var s Slot
	a, b := NewPoint("test", "a", nil), NewPoint("test", "b", nil)
	var sa, sa2, sb State
	s.Enter(&sa, a)
	c0 := counter(s.state.Load())
	s.Enter(&sa2, a) // same point: one new state
	if c := counter(s.state.Load()); c != c0+1 {
		t.Fatalf("nested Enter of the same point: counter %d after %d", c, c0)
	}
	s.Leave(&sa2)
	c1 := counter(s.state.Load())
	s.Enter(&sb, b) // another point: an idle state, then the running one
	if c := counter(s.state.Load()); c != c1+2 || s.what.Load() != b {
		t.Fatalf("nested Enter of another point: counter %d after %d", c, c1)
	}
	s.Leave(&sb)
	if c := counter(s.state.Load()); c != c1+4 || s.what.Load() != a || s.state.Load()&running == 0 {
		t.Fatalf("Leave back to the outer point: counter %d after %d, what %p", c, c1+2, s.what.Load())
	}
	s.Leave(&sa)
}

// A run of Laps counts every callback exactly, each Lap shows a new call to the
// watchdog, and Restore records nothing for the callback the last Lap began but that
// never ran.
func TestLapCounts(t *testing.T) {
	for _, watched := range []bool{false, true} {
		watching.Store(watched)
		p := NewPoint("test", "laps", nil)
		var s Slot
		var st State
		s.Enter(&st, p)
		for i := 0; i < 1000; i++ {
			before := s.state.Load()
			s.Lap(&st)
			after := s.state.Load()
			if watched && (after&running == 0 || counter(after) != counter(before)+1 || s.what.Load() != p) {
				t.Fatalf("lap %d: state %#x after %#x", i, after, before)
			}
			if !watched && after != 0 {
				t.Fatalf("lap %d unwatched: state %#x", i, after)
			}
		}
		s.Restore(&st)
		if c := p.Stats().Count; c != 1000 {
			t.Fatalf("watched %v: count %d after 1000 laps, want 1000", watched, c)
		}
		if s.state.Load()&running != 0 {
			t.Fatalf("watched %v: the slot still shows the run after Restore", watched)
		}
	}
	watching.Store(false)
}

// watched registers a new slot with the watchdog for the test, with watching on.
func watched(t *testing.T) *Slot {
	s := new(Slot)
	Register(s)
	watching.Store(true)
	t.Cleanup(func() { Unregister(s); watching.Store(false) })
	return s
}

// names returns the names of the stalls.
func names(stalls []Stall) []string {
	var out []string
	for _, s := range stalls {
		out = append(out, s.Name)
	}
	return out
}

// The watchdog reports a call once it has seen it running, unchanged, for the
// threshold: once, by its point's name, with the time it saw it as Duration and Max. A
// call that returned is not reported, even one of the same point that runs again: the
// next call is a new state, timed afresh.
func TestScanReportsStuckCallOnce(t *testing.T) {
	const thr = int64(100 * time.Millisecond)
	s := watched(t)
	w := watcher{threshold: thr, seen: map[*Slot]seenState{}}
	stuck := NewPoint("test", "stuck", nil)
	run(stuck, 10000, constant(10)) // sampled: its calls are mostly untimed

	var st State
	s.Enter(&st, stuck)
	for _, now := range []int64{1000, 1000 + thr/2, 1000 + thr - 1} {
		if got, _ := w.scan(now); len(got) != 0 {
			t.Fatalf("at %d ns: reported %v before the threshold", now, names(got))
		}
	}
	got, _ := w.scan(1000 + thr)
	if len(got) != 1 || got[0].Name != "stuck" || got[0].Kind != "test" || got[0].Duration != time.Duration(thr) {
		t.Fatalf("at the threshold: %+v", got)
	}
	if got, _ := w.scan(1000 + 3*thr); len(got) != 0 {
		t.Fatalf("reported twice: %v", names(got))
	}
	if m := stuck.Stats().Max; m < 3*time.Duration(thr) {
		t.Fatalf("Max %v after the watchdog saw the call stuck for %v", m, 3*time.Duration(thr))
	}

	// A finished call: seen running, then returned before the next look.
	s.Leave(&st)
	fin := NewPoint("test", "finished", nil)
	var sf State
	s.Enter(&sf, fin)
	w.scan(10 * thr)
	s.Leave(&sf)
	if got, _ := w.scan(20 * thr); len(got) != 0 {
		t.Fatalf("a call that returned was reported: %v", names(got))
	}
	// The same point called again is a new call: it is timed from its first look.
	s.Enter(&sf, fin)
	if got, _ := w.scan(30 * thr); len(got) != 0 {
		t.Fatalf("a new call of a point seen before was reported on first sight: %v", names(got))
	}
	if got, _ := w.scan(31 * thr); len(got) != 1 || got[0].Name != "finished" {
		t.Fatalf("the second call, stuck: %v", names(got))
	}
	s.Leave(&sf)
	if got, _ := w.scan(40 * thr); len(got) != 0 || len(w.seen) != 0 {
		t.Fatalf("idle slot: reports %v, remembered %d slots", names(got), len(w.seen))
	}
}

// A nested callback that returns to an outer one that then stays stuck gets the outer
// one reported, by name; the nested call, seen for less than the threshold, is not.
// The outer callback is timed afresh from the nested one's return.
func TestScanNestedReturnsToStuckOuter(t *testing.T) {
	const thr = int64(100 * time.Millisecond)
	s := watched(t)
	w := watcher{threshold: thr, seen: map[*Slot]seenState{}}
	outer, inner := NewPoint("test", "outer", nil), NewPoint("test", "inner", nil)
	var so, si State
	s.Enter(&so, outer)
	w.scan(0)
	s.Enter(&si, inner)
	if got, _ := w.scan(thr / 2); len(got) != 0 {
		t.Fatalf("reported %v", names(got))
	}
	s.Leave(&si)
	if got, _ := w.scan(thr); len(got) != 0 {
		t.Fatalf("reported %v on the first look after the nested call returned", names(got))
	}
	got, _ := w.scan(2 * thr)
	if len(got) != 1 || got[0].Name != "outer" || got[0].Duration != time.Duration(thr) {
		t.Fatalf("outer stuck after its nested call: %+v", got)
	}
	s.Leave(&so)
	if got, _ := w.scan(3 * thr); len(got) != 0 {
		t.Fatalf("reported %v after the outer call returned", names(got))
	}
}

// The running watchdog reports a stuck callback while it runs, once, and nothing for
// a callback that finished.
func TestWatchdogReportsStuckCallback(t *testing.T) {
	s := new(Slot)
	Register(s)
	defer Unregister(s)
	stalls := make(chan Stall, 8)
	SetWatchdog(10*time.Millisecond, func(st Stall) { stalls <- st })
	defer SetWatchdog(0, nil)

	quick := NewPoint("test", "quick", nil)
	for i := 0; i < 100; i++ {
		var st State
		s.Enter(&st, quick)
		s.Leave(&st)
	}
	time.Sleep(50 * time.Millisecond)
	select {
	case st := <-stalls:
		t.Fatalf("a finished callback was reported: %+v", st)
	default:
	}

	stuck := NewPoint("test", "stuck", nil)
	var st State
	s.Enter(&st, stuck)
	var got Stall
	select {
	case got = <-stalls:
	case <-time.After(10 * time.Second):
		t.Fatal("no report of a callback stuck for 10 s")
	}
	if got.Kind != "test" || got.Name != "stuck" || got.Duration < 10*time.Millisecond {
		t.Fatalf("stall %+v", got)
	}
	time.Sleep(50 * time.Millisecond)
	s.Leave(&st)
	SetWatchdog(0, nil) // waits for the watchdog goroutine
	select {
	case extra := <-stalls:
		t.Fatalf("one stall reported twice: %+v", extra)
	default:
	}
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

// A slot registered at the address of one the watchdog saw running is new to it: its
// first call is not measured from the old call's first sighting.
func TestSlotReusedAddress(t *testing.T) {
	const thr = int64(100)
	s := watched(t)
	w := watcher{threshold: thr, seen: map[*Slot]seenState{}}
	var st State
	s.Enter(&st, NewPoint("test", "old", nil))
	w.scan(0) // the old call, first seen at 0
	s.Leave(&st)
	Unregister(s)
	*s = Slot{} // a new slot at the same address, registered before the next look
	Register(s)
	var st2 State
	s.Enter(&st2, NewPoint("test", "new", nil))
	if got, _ := w.scan(thr); len(got) > 0 {
		t.Fatalf("the new slot's first call was reported as stalled for %v", got[0].Duration)
	}
	if got, _ := w.scan(2 * thr); len(got) != 1 || got[0].Name != "new" {
		t.Fatalf("the new call, stuck for the threshold, reported as %v", got)
	}
	s.Leave(&st2)
}
