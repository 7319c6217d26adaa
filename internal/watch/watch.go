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
//   - the point's previous timed call took slowNS or more (a callback whose calls are
//     that long is timed on every call, for a cost under 2%), or
//   - it is the sample that the previous timed call drew: 1 to maxGap calls later,
//     uniformly at random (a mean of 32), so a periodic pattern of fast and slow calls
//     cannot hide from the samples.
//
// The same rules hold whether the watchdog runs or not: it reads no clock on the loop.
// Each timed call stands for the calls since the previous one (its weight), so Total is
// estimated as the sum of duration × weight, scaled to Count; it is exact when every
// call was timed. Max is the longest timed call, or the longest time the watchdog saw a
// call stuck past its threshold (a lower bound of that call's duration), whichever is
// longer.
//
// The watchdog does not time calls. A Slot shows only which callback runs and a counter
// that changes at every call, and the watchdog goroutine notes, on each tick, when it
// first saw each running state; a state still there threshold later belongs to a call
// that has run at least that long. That is the Linux kernel's hard-lockup check
// (is_hardlockup compares a counter with the copy it saved on its previous look): the
// loop's thread pays three atomic loads and two atomic stores per call (three when the
// slot's callback changes, six for a nested call of another callback), and no clock
// read.

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
	count      Counter      // calls that returned or panicked
	next       atomic.Int64 // a call begun when count is at least next is timed
	lastTimed  atomic.Int64 // count when the last timed call returned: the calls the timed ones stand for
	weightedNS atomic.Int64 // the sum of each timed call's duration × the calls it stands for
	maxNS      atomic.Int64 // the longest timed call, or stall the watchdog saw

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
// calls (exact when all were timed), Max the longest timed call or the longest time the
// watchdog saw a call stuck.
func (p *Point) Stats() Stats {
	count, stood, wns := int64(p.count.Load()), p.lastTimed.Load(), p.weightedNS.Load()
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
	timedAll    // warm-up: the next call's timing is unchanged
	timedSample // the drawn sample (or the call after a slow one): it draws the next one
)

// timing decides whether the call that begins now is timed.
func (p *Point) timing() uint8 {
	n := int64(p.count.Load())
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
	c := int64(p.count.Add(1))
	if timing == untimed {
		return
	}
	w := c - p.lastTimed.Load()
	p.lastTimed.Store(c)
	p.weightedNS.Add(d * w)
	p.raiseMax(d)
	switch {
	case d >= slowNS:
		p.next.Store(c) // time the next call too
	case timing == timedSample:
		p.next.Store(c + rand.Int64N(maxGap))
	}
}

// raiseMax makes d the point's Max if it is longer.
func (p *Point) raiseMax(d int64) {
	for {
		m := p.maxNS.Load()
		if d <= m || p.maxNS.CompareAndSwap(m, d) {
			return
		}
	}
}

// Slot tracks the callback running on one loop; nested callbacks (a nested Poll or
// iteration) stack up through their States. Only the loop's thread writes it, and only
// while the watchdog runs (Enter's watched path); the watchdog goroutine reads it.
//
// state is a change counter shifted left by one, with the running bit below it: every
// Enter, Leave, Lap and Restore that the watchdog sees stores a new counter, so equal
// states read at two times mean that the same call ran all along. what is the callback
// of the running state (the last one while idle). It is written before state, and only
// while state shows idle: when a nested callback must change it while the outer one
// runs, an idle state is stored first. So a reader that reads state, what, then state
// again, and finds the same running state twice, holds that state's callback.
type Slot struct {
	state atomic.Uint64
	what  atomic.Pointer[Point]
	reg   uint64 // its registration (Register), so a new slot at a freed one's address is new to the watchdog; under watchdog.mu
}

// running is the bit of Slot.state that says that a callback runs.
const running = 1

// State is one running callback's record, from Enter to Leave.
type State struct {
	p      *Point // nil: statistics off
	begun  int64  // Nanotime at Enter (or the last Lap) when timed
	timing uint8
	// watched: the call was shown on the slot for the watchdog, and Restore shows
	// what ran before it: prevP if outerRunning (a nested call), nothing otherwise.
	watched, outerRunning bool
	prevP                 *Point
}

var callbackStats atomic.Bool

// watching is set while the watchdog runs: only then must a slot show the callback it
// runs (two to six stores per call that the statistics alone do not need).
var watching atomic.Bool

func init() { callbackStats.Store(true) }

// SetEnabled turns the per-callback statistics and the watchdog on or off for the whole
// process; it is on by default. A call costs an addition to its count (a Counter), and
// two clock reads when it is timed (see the sampling rules above); while the watchdog
// runs, three loads and two stores more (three when the slot's callback changes, six
// for a nested call of another callback).
func SetEnabled(on bool) { callbackStats.Store(on) }

// Enter records that p starts on this slot, in a State that the caller keeps in place
// until the matching Leave (a local that a deferred Leave reads through a pointer, say):
// the State is never copied on a hot path, because a copy of a struct just written field
// by field stalls the CPU's store forwarding. st must be the zero State. A nil s or p
// records nothing.
func (s *Slot) Enter(st *State, p *Point) {
	if s != nil && p != nil && callbackStats.Load() {
		s.enter(st, p) // the guard inlines: a source without a slot makes no call
	}
}

func (s *Slot) enter(st *State, p *Point) {
	st.p = p
	if st.timing = p.timing(); st.timing != untimed {
		st.begun = Nanotime()
	}
	if watching.Load() {
		s.enterWatched(st, p)
	}
}

// enterWatched shows the watchdog that p runs on the slot, noting in st what ran
// before (a nested call's outer callback) for Restore.
func (s *Slot) enterWatched(st *State, p *Point) {
	st.watched = true
	old := s.state.Load()
	w := s.what.Load()
	if w != p {
		if old&running != 0 {
			old += 2
			s.state.Store(old &^ running) // what changes only while idle shows
		}
		s.what.Store(p)
	}
	if old&running != 0 {
		st.outerRunning, st.prevP = true, w // Restore shows the outer callback again
	}
	s.state.Store((old + 2) | running)
}

// Leave records that the callback begun with Enter returned (or panicked), and
// restores the enclosing one.
func (s *Slot) Leave(st *State) {
	if st.p != nil {
		s.leave(st) // the guard inlines, as Enter's
	}
}

func (s *Slot) leave(st *State) {
	var d int64
	if st.timing != untimed {
		d = Nanotime() - st.begun
	}
	st.p.done(st.timing, d)
	s.Restore(st)
}

// Lap records that the callback begun with Enter (or the last Lap) returned and that
// the next one for the same point starts now. A run of callbacks of one point, such as
// a batch of oneshot BHs, reads the clock at most once per callback instead of twice,
// and the watchdog sees each callback as a call of its own.
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
	if st.watched {
		s.state.Store(s.state.Load() + 2) // a new call: still running, same what
	}
	if st.timing = p.timing(); st.timing != untimed {
		if now == 0 {
			now = Nanotime()
		}
		st.begun = now
	}
}

// Restore restores the callback that ran before Enter, recording nothing: the outer
// callback of a nested call runs again (as a new state: the watchdog times it afresh),
// or the slot shows that nothing runs.
func (s *Slot) Restore(st *State) {
	if !st.watched {
		return
	}
	cur := s.state.Load()
	if !st.outerRunning {
		s.state.Store((cur + 2) &^ running)
		return
	}
	if s.what.Load() != st.prevP {
		cur += 2
		s.state.Store(cur &^ running) // what changes only while idle shows
		s.what.Store(st.prevP)
	}
	s.state.Store((cur + 2) | running)
}

// Stall is one report of the watchdog: a callback that has run longer than the
// threshold and was still running.
type Stall struct {
	Kind, Name string
	// Duration is how long the watchdog had seen the call running when it reported it: a
	// lower bound, short of the truth by up to two ticks (a tick is a quarter of the
	// threshold): the watchdog first sees a call on the tick after it began, and a tick
	// may come late.
	Duration time.Duration
	// Stack holds the stacks of the goroutines running that callback at that moment
	// (normally one: the loop's).
	Stack []byte
}

// watchdog is the process-wide stall watchdog.
var watchdog struct {
	mu        sync.Mutex
	slots     map[*Slot]struct{}
	regs      uint64 // registrations so far
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
	watchdog.regs++
	s.reg = watchdog.regs
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
// default. The watchdog looks at the loops every quarter of the threshold (every
// millisecond at least), so a stall is reported from threshold to about threshold plus
// two ticks after the call began (a tick may come late); a call that a nested call on
// the same slot interrupts is timed afresh from the nested call's return, while nested
// calls on other slots do not reset it.
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

// seenState is what the watchdog goroutine remembers of a slot that it last saw
// running a callback.
type seenState struct {
	state    uint64 // the slot's running state
	reg      uint64 // the slot's registration then
	since    int64  // Nanotime of the tick that first saw it
	reported bool   // its stall has been reported
}

func watchLoop(threshold time.Duration, report func(Stall), stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(max(threshold/4, time.Millisecond))
	defer tick.Stop()
	w := watcher{threshold: int64(threshold), seen: map[*Slot]seenState{}}
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		stalls, pcs := w.scan(Nanotime())
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

// watcher is the watchdog goroutine's memory of the slots, its own alone.
type watcher struct {
	threshold int64
	seen      map[*Slot]seenState // the slots seen running on the last look
}

// scan looks at every registered slot at time now (Nanotime) and returns the stalls to
// report, without their stacks, and the code of each one's callback.
func (w *watcher) scan(now int64) (stalls []Stall, pcs []uintptr) {
	watchdog.mu.Lock()
	defer watchdog.mu.Unlock()
	for s := range w.seen {
		if _, ok := watchdog.slots[s]; !ok {
			delete(w.seen, s) // unregistered
		}
	}
	for s := range watchdog.slots {
		// state, what, state: the same running state twice means that p is its
		// callback (see Slot). A slot that changed meanwhile is looked at next tick.
		st := s.state.Load()
		if st&running == 0 {
			delete(w.seen, s)
			continue
		}
		p := s.what.Load()
		if s.state.Load() != st || p == nil {
			continue
		}
		old, ok := w.seen[s]
		if !ok || old.state != st || old.reg != s.reg {
			w.seen[s] = seenState{state: st, reg: s.reg, since: now} // a new call
			continue
		}
		d := now - old.since
		if d < w.threshold {
			continue
		}
		p.raiseMax(d) // a stall shows in Max even when its call was not timed
		if old.reported {
			continue
		}
		old.reported = true
		w.seen[s] = old
		stalls = append(stalls, Stall{Kind: p.kind, Name: p.Name(), Duration: time.Duration(d)})
		pcs = append(pcs, p.pc.Load())
	}
	return stalls, pcs
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
