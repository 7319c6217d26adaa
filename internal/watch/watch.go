// Package watch times the callbacks that glibaio's loops run and finds the ones that
// stall: the per-callback statistics and the stall watchdog behind glibloop's
// SetCallbackStats, SetStallWatchdog and DispatchStats, shared by glibloop's sources and
// aiosource's BHs, fd handlers and timers. It is plumbing, not API.
package watch

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
	_ "unsafe" // for go:linkname
)

// Every callback a loop runs (a Go source's Dispatch; in aiosource, each BH, fd
// handler and timer) is bracketed by Enter and Leave on the Slot of the loop that runs
// it. That records per-callback statistics on its Point, and lets the watchdog
// goroutine, when enabled, see a callback that has been running for longer than the
// threshold while it still runs: it reports its kind, name and duration and the stack
// of the goroutine stuck in it. That answers the first question of GTK users: what
// froze my UI?
//
// Counting is exact: every call that returns or panics is counted. Timing is sampled,
// because a clock read costs about as much as the crossing from C into Go that a source
// callback is made of (about 30 ns each here, two per timed call). A call is timed when
//
//   - it is among the first warmupCalls calls of its point, or
//   - the stall watchdog is running (it needs each call's start anyway), or
//   - the point's previous timed call took slowNS or more (a callback whose calls are
//     that long is timed on every call, for a cost under 2%), or
//   - it is the sample that the previous timed call drew: 1 to maxGap calls later,
//     uniformly at random (a mean of 32), so a periodic pattern of fast and slow calls
//     cannot hide from the samples.
//
// Each timed call stands for the calls since the previous one (its weight), so Total is
// estimated as the sum of duration × weight, scaled to Count; it is exact when every
// call was timed. Max is the longest timed call.

const (
	warmupCalls = 64
	slowNS      = 4000
	maxGap      = 63
)

// Nanotime returns CLOCK_MONOTONIC in ns through the vDSO, as the runtime reads it: the
// clock of timerfds and of QEMU's host and realtime timer clocks here.
//
//go:linkname Nanotime runtime.nanotime
func Nanotime() int64

// Point names one callback and accumulates its statistics. Make it once per
// callback (per BH, fd handler, timer or source), not per call.
type Point struct {
	count      atomic.Int64 // calls that returned or panicked
	next       atomic.Int64 // a call begun when count is at least next is timed
	lastTimed  atomic.Int64 // count when the last timed call returned: the calls the timed ones stand for
	weightedNS atomic.Int64 // the sum of each timed call's duration × the calls it stands for
	maxNS      atomic.Int64 // the longest timed call

	kind string
	name atomic.Pointer[string]
	pc   atomic.Uintptr // the callback's code, to find its goroutine in a stack dump
}

// NewPoint makes a Point of a kind ("BH", "fd handler", "timer", "source
// dispatch", ...) and name (BH name, "fd 7 read", source name, ...) for callback fn (any
// func value, or nil).
func NewPoint(kind, name string, fn any) *Point {
	p := new(Point)
	p.Init(kind, name, fn)
	return p
}

// Init is NewPoint for a Point embedded in another object (which keeps a callback's
// statistics in the same allocation as the state its calls read). Call it once, before
// the point is used.
func (p *Point) Init(kind, name string, fn any) {
	p.kind = kind
	p.name.Store(&name)
	p.SetFunc(fn)
}

// SetFunc changes the callback the point stands for, keeping its statistics (a handler
// replaced on the same fd, say).
func (p *Point) SetFunc(fn any) { p.pc.Store(funcPC(fn)) }

// SetPC sets the code the point stands for by its entry pc (a method's, say), keeping
// its statistics.
func (p *Point) SetPC(pc uintptr) { p.pc.Store(pc) }

// SetName renames the point.
func (p *Point) SetName(name string) { p.name.Store(&name) }

// Name returns the point's name.
func (p *Point) Name() string { return *p.name.Load() }

// funcPC returns the entry of a func value's code.
func funcPC(fn any) uintptr {
	if fn == nil {
		return 0
	}
	type eface struct {
		typ, data unsafe.Pointer
	}
	e := (*eface)(unsafe.Pointer(&fn))
	if e.data == nil {
		return 0
	}
	// A func value points to a funcval whose first word is the code pointer.
	return **(**uintptr)(unsafe.Pointer(&e.data))
}

// FuncName returns the name of a func value's code ("pkg.fn", "pkg.(*T).m-fm"), "nil"
// for a nil func, to name callbacks in statistics and reports.
func FuncName(fn any) string {
	pc := funcPC(fn)
	if pc == 0 {
		return "nil"
	}
	if f := runtime.FuncForPC(pc); f != nil {
		return f.Name()
	}
	return "?"
}

// Stats are a callback's statistics; glibloop.CallbackStats converts from it.
type Stats struct {
	Kind, Name string
	Count      int64
	Total, Max time.Duration
}

// Stats returns the point's statistics: Count exact, Total estimated from the timed
// calls (exact when all were timed), Max the longest timed call.
func (p *Point) Stats() Stats {
	count, stood, wns := p.count.Load(), p.lastTimed.Load(), p.weightedNS.Load()
	total := wns
	if stood > 0 && stood != count {
		total = int64(float64(wns) / float64(stood) * float64(count))
	}
	return Stats{Kind: p.kind, Name: p.Name(), Count: count,
		Total: time.Duration(total), Max: time.Duration(p.maxNS.Load())}
}

// How a call is timed (State.timing).
const (
	untimed     = iota
	timedAll    // warm-up, a slow point, or the watchdog: the next call's timing is unchanged
	timedSample // the drawn sample: it draws the next one
)

// timing decides whether the call that begins now is timed.
func (p *Point) timing() uint8 {
	n := p.count.Load()
	switch {
	case n < warmupCalls:
		return timedAll
	case n >= p.next.Load():
		return timedSample
	}
	return untimed
}

// done records a call that returned: its duration d if it was timed.
func (p *Point) done(timing uint8, d int64) {
	c := p.count.Add(1)
	if timing == untimed {
		return
	}
	w := c - p.lastTimed.Load()
	p.lastTimed.Store(c)
	p.weightedNS.Add(d * w)
	for {
		m := p.maxNS.Load()
		if d <= m || p.maxNS.CompareAndSwap(m, d) {
			break
		}
	}
	switch {
	case d >= slowNS:
		p.next.Store(c) // time the next call too
	case timing == timedSample:
		p.next.Store(c + rand.Int64N(maxGap))
	}
}

// Slot tracks the callback running on one loop; nested callbacks (a nested
// Poll or iteration) stack up through their States.
type Slot struct {
	start    atomic.Int64          // nanotime at Enter; 0 while no callback runs (watchdog on only)
	what     atomic.Pointer[Point] // the callback running since start; the last one while start is 0
	reported atomic.Int64          // the start time of the call already reported
}

// State is one running callback's record, from Enter to Leave.
type State struct {
	p       *Point // nil: statistics off
	begun   int64  // Nanotime at Enter (or the last Lap) when timed
	timing  uint8
	watched bool // published on the slot for the watchdog: End restores the previous
	prevP   *Point
	prevAt  int64
}

var callbackStats atomic.Bool

// watching is set while the watchdog runs: only then must a slot publish the callback
// it runs (two stores per Begin and End that the statistics alone do not need).
var watching atomic.Bool

func init() { callbackStats.Store(true) }

// SetEnabled turns the per-callback statistics and the watchdog on or off for the whole
// process; it is on by default. A call costs an atomic add, and two clock reads when it
// is timed (see the sampling rules above).
func SetEnabled(on bool) { callbackStats.Store(on) }

// Enter records that p starts on this slot, in a State that the caller keeps in place
// until the matching Leave (a local that a deferred Leave reads through a pointer, say):
// the State is never copied on a hot path, because a copy of a struct just written field
// by field stalls the CPU's store forwarding. st must be the zero State. A nil s or p
// records nothing.
func (s *Slot) Enter(st *State, p *Point) {
	if s == nil || p == nil || !callbackStats.Load() {
		return
	}
	st.p = p
	if watching.Load() {
		now := Nanotime()
		st.begun, st.timing, st.watched = now, timedAll, true
		if st.prevAt = s.start.Load(); st.prevAt != 0 {
			st.prevP = s.what.Load() // a nested callback: Restore puts the outer one back
		}
		s.publish(p, now)
		return
	}
	if st.timing = p.timing(); st.timing != untimed {
		st.begun = Nanotime()
	}
}

// Leave records that the callback begun with Enter returned (or panicked), and
// restores the enclosing one.
func (s *Slot) Leave(st *State) {
	if st.p == nil {
		return
	}
	var d int64
	if st.timing != untimed {
		d = Nanotime() - st.begun
	}
	st.p.done(st.timing, d)
	s.Restore(st)
}

// Lap records that the callback begun with Enter (or the last Lap) returned and that
// the next one for the same point starts now. A run of callbacks of one point, such as
// a batch of oneshot BHs, reads the clock at most once per callback instead of twice.
// End the run with Restore, or with Leave if a callback panicked.
func (s *Slot) Lap(st *State) {
	p := st.p
	if p == nil {
		return
	}
	var now int64
	if st.timing != untimed {
		now = Nanotime()
		p.done(st.timing, now-st.begun)
	} else {
		p.done(untimed, 0)
	}
	if !st.watched {
		if st.timing = p.timing(); st.timing == untimed {
			return
		}
	}
	if now == 0 {
		now = Nanotime()
	}
	st.begun = now
	if st.watched {
		s.start.Store(now) // the watchdog times the next callback from here
	}
}

// Restore restores the callback that ran before Enter, recording nothing.
func (s *Slot) Restore(st *State) {
	if !st.watched {
		return
	}
	if st.prevAt == 0 {
		s.start.Store(0) // nothing runs now; what is ignored
		return
	}
	s.publish(st.prevP, st.prevAt)
}

// publish shows the watchdog that p runs since start. A slot is read as start, then
// what; start 0 means that nothing runs, whatever what holds, so what is written (before
// start) only when it changes: a loop that runs the same callback again and again, or
// one at a time, pays one atomic store per Enter and Leave, not two.
func (s *Slot) publish(p *Point, start int64) {
	if s.what.Load() != p {
		s.what.Store(p)
	}
	s.start.Store(start)
}

// Stall is one report of the watchdog: a callback that has run longer than the
// threshold and was still running.
type Stall struct {
	Kind, Name string
	Duration   time.Duration // how long it had run when the watchdog looked
	// Stack holds the stacks of the goroutines running that callback at that moment
	// (normally one: the loop's).
	Stack []byte
}

// watchdog is the process-wide stall watchdog.
var watchdog struct {
	mu        sync.Mutex
	slots     map[*Slot]struct{}
	threshold time.Duration
	report    func(Stall)
	stop      chan struct{}
	done      chan struct{}
}

// Register makes a slot visible to the watchdog; Unregister removes
// it. Loops register their slot for as long as they live.
func Register(s *Slot) {
	watchdog.mu.Lock()
	if watchdog.slots == nil {
		watchdog.slots = map[*Slot]struct{}{}
	}
	watchdog.slots[s] = struct{}{}
	watchdog.mu.Unlock()
}

// Unregister undoes Register.
func Unregister(s *Slot) {
	watchdog.mu.Lock()
	delete(watchdog.slots, s)
	watchdog.mu.Unlock()
}

// SetWatchdog starts the watchdog: any callback that runs longer than threshold
// is reported once, while it is still running, to report (nil: log/slog at level Warn
// with the stack). A threshold of 0 stops the watchdog and its goroutine. It is off by
// default.
func SetWatchdog(threshold time.Duration, report func(Stall)) {
	watchdog.mu.Lock()
	stop, done := watchdog.stop, watchdog.done
	watchdog.stop, watchdog.done = nil, nil
	watchdog.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	if threshold <= 0 {
		watching.Store(false)
		return
	}
	if report == nil {
		report = logStall
	}
	watchdog.mu.Lock()
	watchdog.threshold, watchdog.report = threshold, report
	watchdog.stop, watchdog.done = make(chan struct{}), make(chan struct{})
	watching.Store(true)
	go watchLoop(threshold, report, watchdog.stop, watchdog.done)
	watchdog.mu.Unlock()
}

func logStall(s Stall) {
	slog.Warn("glibloop: stalled callback", "kind", s.Kind, "name", s.Name,
		"running_for", s.Duration.Round(time.Microsecond).String(), "stack", string(s.Stack))
}

func watchLoop(threshold time.Duration, report func(Stall), stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(max(threshold/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		now := Nanotime()
		var stalls []Stall
		var pcs []uintptr
		watchdog.mu.Lock()
		for s := range watchdog.slots {
			start := s.start.Load()
			p := s.what.Load()
			if start <= 0 || p == nil || now-start < int64(threshold) || s.reported.Load() == start {
				continue
			}
			s.reported.Store(start)
			stalls = append(stalls, Stall{Kind: p.kind, Name: p.Name(), Duration: time.Duration(now - start)})
			pcs = append(pcs, p.pc.Load())
		}
		watchdog.mu.Unlock()
		if len(stalls) == 0 {
			continue
		}
		dump := allStacks()
		for i := range stalls {
			stalls[i].Stack = goroutinesRunning(dump, pcs[i])
			report(stalls[i])
		}
	}
}

func allStacks() []byte {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}

// goroutinesRunning picks, from a full dump, the goroutines whose stack contains the
// function at pc (or, without one, every goroutine inside a glibaio dispatch).
func goroutinesRunning(dump []byte, pc uintptr) []byte {
	marker := "glibaio/"
	if pc != 0 {
		if f := runtime.FuncForPC(pc); f != nil {
			marker = f.Name()
		}
	}
	var out [][]byte
	for _, g := range bytes.Split(dump, []byte("\n\n")) {
		if bytes.Contains(g, []byte(marker)) && !bytes.Contains(g, []byte("watch.watchLoop")) {
			out = append(out, g)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return []byte(strings.TrimSpace(string(bytes.Join(out, []byte("\n\n")))))
}
