// Package watch times the callbacks that glibaio's loops run and finds the ones that
// stall: the per-callback statistics and the stall watchdog behind glibloop's
// SetCallbackStats, SetStallWatchdog and DispatchStats, shared by glibloop's sources and
// aiosource's BHs, fd handlers and timers. It is plumbing, not API.
package watch

import (
	"bytes"
	"log/slog"
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
// handler and timer) is bracketed by Begin and End on the Slot of the loop that runs
// it. That records per-callback statistics (count, total and maximum time) on its
// Point, and lets the watchdog goroutine, when enabled, see a callback that has been
// running for longer than the threshold while it still runs: it reports its kind, name
// and duration and the stack of the goroutine stuck in it. That answers the first
// question of GTK users: what froze my UI?

// Nanotime returns CLOCK_MONOTONIC in ns through the vDSO, as the runtime reads it: the
// clock of timerfds and of QEMU's host and realtime timer clocks here.
//
//go:linkname Nanotime runtime.nanotime
func Nanotime() int64

// Point names one callback and accumulates its statistics. Make it once per
// callback (per BH, fd handler, timer or source), not per call.
type Point struct {
	kind string
	name atomic.Pointer[string]
	pc   atomic.Uintptr // the callback's code, to find its goroutine in a stack dump

	count, totalNS, maxNS atomic.Int64
}

// NewPoint makes a Point of a kind ("BH", "fd handler", "timer", "source
// dispatch", ...) and name (BH name, "fd 7 read", source name, ...) for callback fn (any
// func value, or nil).
func NewPoint(kind, name string, fn any) *Point {
	p := &Point{kind: kind}
	p.name.Store(&name)
	p.SetFunc(fn)
	return p
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

// Stats returns the point's statistics.
func (p *Point) Stats() Stats {
	return Stats{Kind: p.kind, Name: p.Name(), Count: p.count.Load(),
		Total: time.Duration(p.totalNS.Load()), Max: time.Duration(p.maxNS.Load())}
}

// Slot tracks the callback running on one loop; nested callbacks (a nested
// Poll or iteration) stack up through the values Begin returns.
type Slot struct {
	start    atomic.Int64 // nanotime at Begin; 0 while no callback runs
	what     atomic.Pointer[Point]
	reported atomic.Int64 // the start time of the call already reported
}

// State is what Begin returns and End restores.
type State struct {
	start int64 // -1: statistics off; -2: watchdog off, statistics only
	what  *Point
	begun int64
}

var callbackStats atomic.Bool

// watching is set while the watchdog runs: only then must a slot publish the callback
// it runs (two stores per Begin and End that the statistics alone do not need).
var watching atomic.Bool

func init() { callbackStats.Store(true) }

// SetEnabled turns the per-callback timing (statistics and watchdog) on or off for the
// whole process; it is on by default and costs two clock reads per callback.
func SetEnabled(on bool) { callbackStats.Store(on) }

// Begin records that p starts on this slot.
func (s *Slot) Begin(p *Point) State {
	if !callbackStats.Load() {
		return State{start: -1}
	}
	now := Nanotime()
	if !watching.Load() {
		return State{start: -2, what: p, begun: now}
	}
	prev := State{start: s.start.Load(), what: s.what.Load(), begun: now}
	s.what.Store(p)
	s.start.Store(now)
	return prev
}

// End records that the callback begun with Begin returned (or panicked), and restores
// the enclosing one.
func (s *Slot) End(prev State) {
	if prev.start == -1 {
		return
	}
	s.running(prev).record(Nanotime() - prev.begun)
	s.Restore(prev)
}

// Lap records that the callback begun with Begin (or the last Lap) returned and that
// the next one for the same point starts now. A run of callbacks of one point, such as
// a batch of oneshot BHs, reads the clock once per callback instead of twice. End the
// run with Restore, or with End if a callback panicked.
func (s *Slot) Lap(prev State) State {
	if prev.start == -1 {
		return prev
	}
	now := Nanotime()
	s.running(prev).record(now - prev.begun)
	if prev.start != -2 {
		s.start.Store(now) // the watchdog times the next callback from here
	}
	prev.begun = now
	return prev
}

// Restore restores the callback that ran before Begin, recording nothing.
func (s *Slot) Restore(prev State) {
	if prev.start < 0 {
		return
	}
	s.what.Store(prev.what)
	s.start.Store(prev.start)
}

// running returns the point begun with the Begin that returned prev.
func (s *Slot) running(prev State) *Point {
	if prev.start == -2 {
		return prev.what // watchdog off: Begin kept it in prev
	}
	return s.what.Load()
}

func (p *Point) record(d int64) {
	if p == nil {
		return
	}
	p.count.Add(1)
	p.totalNS.Add(d)
	for {
		m := p.maxNS.Load()
		if d <= m || p.maxNS.CompareAndSwap(m, d) {
			return
		}
	}
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
