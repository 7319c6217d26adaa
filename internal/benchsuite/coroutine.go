package benchsuite

import (
	"fmt"
	"iter"
	"runtime"
	"sync"
	"time"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/cbaseline"
)

// The coroutine scenarios (issue 12, item 6). Each of ours runs n operations inside
// one BH of an AioContext and is timed inside the BH, so the walk that runs the BH is
// not counted. A coroutine worker pool lasts as long as a walk at its callback level is
// active (aiosource/thread.go): within one walk it is in its steady state, and nothing
// is allocated per operation. The context is driven by Poll(false) on a locked
// goroutine, or, in the GLib form, by a GLib iteration of the GMainContext it is
// attached to, which dispatches the BH from a C-to-Go callback. The baselines: a C
// sigsetjmp/siglongjmp switch pair (cbaseline.SigjmpPairs), a bare Go runtime coroutine
// pair (the floor), a channel round trip from a thread-locked loop, a oneshot BH, and a
// sync.Mutex hand-off between goroutines.

// CoLoop is an AioContext with one BH that runs a coroutine scenario.
type CoLoop struct {
	Ctx *aiosource.Context
	mc  *glibloop.MainContext // nil: driven by Poll
	bh  *aiosource.BH

	body func()        // what the BH runs now
	n    int           // operations it does
	el   time.Duration // how long they took, timed in the BH
	ran  bool          // the BH ran

	// The scenarios' bodies and coroutine entries, bound once, so that running them
	// allocates nothing.
	enterYieldBody, enterYieldPkgBody func()
	createBody, handoffBody           func()
	tick                              func()
	yielder, pkgYielder, nop, locker  func(*aiosource.Coroutine)
	stop                              bool
	mu                                aiosource.CoMutex
	Steps, Locks                      int // yields and lock acquisitions, for the tests
}

// NewCoLoop makes a CoLoop driven by Poll, or with glib by GLib iterations of a
// GMainContext of its own.
func NewCoLoop(glib bool) (*CoLoop, error) {
	c, err := aiosource.New()
	if err != nil {
		return nil, err
	}
	l := &CoLoop{Ctx: c}
	if glib {
		l.mc = glibloop.NewMainContext()
		c.Attach(l.mc)
	}
	l.bh = c.NewBH("cobench", l.runBody)
	l.enterYieldBody, l.enterYieldPkgBody = l.doEnterYield, l.doEnterYieldPkg
	l.createBody, l.handoffBody = l.doCreate, l.doHandoff
	l.tick, l.yielder, l.pkgYielder, l.nop, l.locker = l.oneshotRan, l.yieldLoop, l.pkgYieldLoop, l.nothing, l.lockLoop
	return l, nil
}

func (l *CoLoop) runBody() {
	l.ran = true
	l.body()
}

// run runs body in the BH once, on a locked goroutine, and returns what it timed.
func (l *CoLoop) run(body func(), n int) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l.body, l.n, l.el, l.ran = body, n, 0, false
	l.bh.Schedule()
	for !l.ran {
		if l.mc != nil {
			l.mc.Iteration(false)
		} else {
			l.Ctx.Poll(false)
		}
	}
	return l.el
}

// InBH runs fn inside the BH once (for the allocation checks).
func (l *CoLoop) InBH(fn func()) { l.run(fn, 0) }

// EnterYield enters a coroutine that yields at once (Coroutine.Yield) n times from one
// BH, and returns the time of the n enter+yield pairs. The coroutine is created and
// first entered before the timing starts, and finished after it.
func (l *CoLoop) EnterYield(n int) time.Duration { return l.run(l.enterYieldBody, n) }

// EnterYieldPkg is EnterYield with the package's Yield, which looks up the running
// coroutine.
func (l *CoLoop) EnterYieldPkg(n int) time.Duration { return l.run(l.enterYieldPkgBody, n) }

func (l *CoLoop) doEnterYield()    { l.enterYield(l.yielder) }
func (l *CoLoop) doEnterYieldPkg() { l.enterYield(l.pkgYielder) }

func (l *CoLoop) enterYield(entry func(*aiosource.Coroutine)) {
	l.stop = false
	co := aiosource.NewCoroutine(entry)
	co.Enter()
	start := time.Now()
	for i := 0; i < l.n; i++ {
		co.Enter()
	}
	l.el = time.Since(start)
	l.stop = true
	co.Enter() // it returns
}

// yieldLoop is `for { co.Yield() }`, with a way out.
func (l *CoLoop) yieldLoop(co *aiosource.Coroutine) {
	for !l.stop {
		co.Yield()
		l.Steps++
	}
}

// pkgYieldLoop is `for { aiosource.Yield() }`, with a way out.
func (l *CoLoop) pkgYieldLoop(*aiosource.Coroutine) {
	for !l.stop {
		aiosource.Yield()
		l.Steps++
	}
}

// CreateRun creates, enters and finishes n coroutines that return at once
// (NewCoroutine(f).Enter()), all in one BH, and returns their time.
func (l *CoLoop) CreateRun(n int) time.Duration { return l.run(l.createBody, n) }

func (l *CoLoop) doCreate() {
	aiosource.NewCoroutine(l.nop).Enter() // the walk's pool has a worker from here on
	start := time.Now()
	for i := 0; i < l.n; i++ {
		aiosource.NewCoroutine(l.nop).Enter()
	}
	l.el = time.Since(start)
}

func (l *CoLoop) nothing(*aiosource.Coroutine) { l.Steps++ }

func (l *CoLoop) oneshotRan() { l.Steps++ }

// Handoff makes two coroutines take a CoMutex in turns n times, in one BH, and returns
// their time. Each loops on Lock, Yield, Unlock: the BH enters the holder, whose Unlock
// hands the lock to the other, which waits in Lock; the holder then waits in Lock in
// turn, and the other runs (before Enter returns) until its Yield. Every Lock but the
// first waits, and every Unlock hands the lock over.
func (l *CoLoop) Handoff(n int) time.Duration { return l.run(l.handoffBody, n) }

func (l *CoLoop) doHandoff() {
	l.stop = false
	holder := aiosource.NewCoroutine(l.locker)
	waiter := aiosource.NewCoroutine(l.locker)
	holder.Enter() // takes the lock, yields holding it
	waiter.Enter() // waits in Lock
	start := time.Now()
	for i := 0; i < l.n; i++ {
		holder.Enter()
		holder, waiter = waiter, holder
	}
	l.el = time.Since(start)
	l.stop = true
	holder.Enter() // hands over and returns; the waiter yields holding the lock
	waiter.Enter() // unlocks with nobody waiting and returns
}

func (l *CoLoop) lockLoop(*aiosource.Coroutine) {
	for {
		l.mu.Lock()
		l.Locks++
		aiosource.Yield()
		l.mu.Unlock()
		if l.stop {
			return
		}
	}
}

// Oneshot is the baseline of CreateRun: n rounds of ScheduleOneshot plus Poll(false),
// on a locked goroutine (Poll form only).
func (l *CoLoop) Oneshot(n int) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	for i := 0; i < n; i++ {
		l.Ctx.ScheduleOneshot(l.tick)
		l.Ctx.Poll(false)
	}
	return time.Since(start)
}

// Close releases everything.
func (l *CoLoop) Close() {
	l.bh.Delete()
	l.Ctx.Close()
	if l.mc != nil {
		l.mc.Unref()
	}
}

// PullPairs is the floor of EnterYield under Poll: n pairs of switches into and out of
// a bare Go runtime coroutine (iter.Pull), which aiosource's coroutines run on, from a
// locked goroutine. It returns their time.
func PullPairs(n int) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	next, stop := iter.Pull(func(yield func(struct{}) bool) {
		for yield(struct{}{}) {
		}
	})
	defer stop()
	next()
	start := time.Now()
	for i := 0; i < n; i++ {
		next()
	}
	return time.Since(start)
}

// ChanRoundTrips is the peer baseline of EnterYield: a loop goroutine locked to its
// thread (as a GLib loop is) hands work to a worker goroutine over a channel and waits
// for its answer on another, n times. It returns the time of the n round trips.
func ChanRoundTrips(n int) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	req, resp := make(chan struct{}), make(chan struct{})
	go func() {
		for range req {
			resp <- struct{}{}
		}
		close(resp)
	}()
	req <- struct{}{} // the worker is running
	<-resp
	start := time.Now()
	for i := 0; i < n; i++ {
		req <- struct{}{}
		<-resp
	}
	el := time.Since(start)
	close(req)
	<-resp
	return el
}

// MutexHandoffs is the peer baseline of Handoff: two goroutines hand a turn to each
// other through sync.Mutexes n times in all. Each waits in Lock on the mutex that the
// other Unlocks when it hands the turn over (a sync.Mutex may be unlocked by another
// goroutine than the one that locked it), so every Lock but the first may wait and
// every Unlock releases a waiter. It returns the time of the n hand-offs.
func MutexHandoffs(n int) time.Duration {
	var turnA, turnB sync.Mutex // locked: not that goroutine's turn
	turnB.Lock()
	half := max(n/2, 1)
	done := make(chan struct{})
	start := time.Now()
	go func() {
		for i := 0; i < half; i++ {
			turnB.Lock()
			turnA.Unlock()
		}
		close(done)
	}()
	for i := 0; i < half; i++ {
		turnA.Lock()
		turnB.Unlock()
	}
	<-done
	return time.Since(start) * time.Duration(n) / time.Duration(2*half) // n odd: scaled
}

// allocs returns the allocations per operation of the scenario run by body (one of the
// bound bodies), n operations a run, measured inside one BH, where the walk's pool is in
// its steady state.
func (l *CoLoop) allocs(body func(), n int) float64 {
	var a float64
	l.InBH(func() {
		l.n = n
		a = allocsPerRun(100, body) / float64(n)
	})
	return a
}

// coAllocs measures the coroutine scenarios' allocations per operation.
func coAllocs() []Alloc {
	l, err := NewCoLoop(false)
	if err != nil {
		return nil
	}
	defer l.Close()
	return []Alloc{
		{"coroutine enter+yield (in one BH, Poll)", l.allocs(l.enterYieldBody, 100)},
		{"coroutine create+run+finish from the pool (in one BH, Poll)", l.allocs(l.createBody, 100)},
		{"CoMutex hand-off between two coroutines (in one BH, Poll)", l.allocs(l.handoffBody, 100)},
	}
}

// interleaveAll runs each of fs for n operations in each of rounds rounds, rotating
// which one runs first, after one warm-up run each, and returns each one's ns/op in
// every round.
func interleaveAll(rounds, n int, fs ...func(int) time.Duration) [][]float64 {
	for _, f := range fs {
		f(max(n/10, 10))
	}
	out := make([][]float64, len(fs))
	for r := 0; r < rounds; r++ {
		for i := range fs {
			k := (i + r) % len(fs)
			out[k] = append(out[k], float64(fs[k](n))/float64(n))
		}
	}
	return out
}

// medianRatio returns the median over rounds of a[i]/b[i].
func medianRatio(a, b []float64) float64 {
	rs := make([]float64, len(a))
	for i := range a {
		rs[i] = a[i] / b[i]
	}
	return Median(rs)
}

// coEnterYieldRows measures enter+yield from a BH under Poll, in the same rounds as
// QEMU's switch (a C sigsetjmp/siglongjmp pair), the GLib form, the floor (a bare Go
// runtime coroutine pair) and a goroutine-and-channel round trip from a locked loop.
func coEnterYieldRows(cfg Config) ([]Row, error) {
	poll, err := NewCoLoop(false)
	if err != nil {
		return nil, err
	}
	defer poll.Close()
	gl, err := NewCoLoop(true)
	if err != nil {
		return nil, err
	}
	defer gl.Close()
	var cerr error
	sigjmp := func(n int) time.Duration {
		d, err := cbaseline.SigjmpPairs(n)
		if err != nil {
			cerr = err
		}
		return d
	}
	// A round trip costs about 100 times an enter+yield: fewer of them, scaled to n.
	chanRT := func(n int) time.Duration {
		m := max(n/50, 10)
		return ChanRoundTrips(m) * time.Duration(n) / time.Duration(m)
	}
	v := interleaveAll(cfg.Rounds, cfg.Ops, sigjmp, poll.EnterYield, gl.EnterYield, PullPairs, chanRT, poll.EnterYieldPkg)
	if cerr != nil {
		return nil, cerr
	}
	c, o, g, f, ch, p := v[0], v[1], v[2], v[3], v[4], v[5]
	const floor = "a bare Go runtime coroutine pair (iter.Pull), which every Coroutine runs on"
	glib := []Note{{Name: "GLib-iteration form", Value: Median(g), Unit: "ns"},
		{Name: "GLib-iteration form to the floor", Value: medianRatio(g, f), Unit: "x"},
		{Name: "with the package's Yield()", Value: Median(p), Unit: "ns"},
		{Name: "with the package's Yield() to the C pair", Value: medianRatio(p, c), Unit: "x"}}
	return []Row{
		{Name: "coroutine enter+yield (Coroutine.Yield) from a BH under Poll, per pair", OursNS: Median(o),
			Floor: floor, FloorNS: Median(f), FloorRatio: medianRatio(o, f),
			Baseline:   "C sigsetjmp/siglongjmp pair between two stacks (QEMU's qemu_coroutine_switch)",
			BaselineNS: Median(c), Ratio: medianRatio(o, c), PeerMax: 8,
			Notes: append(glib, Note{Name: "floor to the C pair", Value: medianRatio(f, c), Unit: "x"})},
		{Name: "coroutine enter+yield (Coroutine.Yield) from a BH under Poll, against a goroutine hand-off", OursNS: Median(o),
			Floor: floor, FloorNS: Median(f), FloorRatio: medianRatio(o, f),
			Baseline:   "channel round trip to a goroutine from a thread-locked loop",
			BaselineNS: Median(ch), Ratio: medianRatio(o, ch), PeerMax: 0.01,
			Notes: []Note{{Name: "GLib-iteration form to the peer", Value: medianRatio(g, ch), Unit: "x"}}},
	}, nil
}

// coCreateRows measures create+run+finish from the pool, many per BH under Poll (the
// steady state of one walk's pool), against its floor, one bare Go runtime coroutine
// switch pair (a pooled worker is switched into, runs the entry and switches back), and
// scheduling and running a oneshot BH.
func coCreateRows(cfg Config) ([]Row, error) {
	l, err := NewCoLoop(false)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	f := sideBySide(cfg.Rounds, cfg.Ops, l.CreateRun, PullPairs, l.Oneshot)
	a := l.allocs(l.createBody, 100)
	return []Row{{
		Name:   fmt.Sprintf("coroutine create+run+finish from the pool, %d per BH under Poll (steady state of one walk's pool)", cfg.Ops),
		OursNS: f.Ours, Floor: "one bare Go runtime coroutine pair (iter.Pull): the switch into a pooled worker and back",
		FloorNS: f.Floor, FloorRatio: f.FloorRatio,
		Baseline: "ScheduleOneshot + Poll(false)", BaselineNS: f.Peer, Ratio: f.Ratio, PeerMax: 3,
		Conds: []Cond{{Name: "allocs/op", Value: a, Max: 0}},
	}}, nil
}

// coHandoffRows measures a CoMutex hand-off between two coroutines in one BH under
// Poll against its floor, two bare Go runtime coroutine pairs (a hand-off is two
// enter+yield pairs), and a sync.Mutex hand-off between two goroutines. The issue names
// no target: the row reports.
func coHandoffRows(cfg Config) ([]Row, error) {
	l, err := NewCoLoop(false)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	pull2 := func(n int) time.Duration { return PullPairs(2 * n) }
	f := sideBySide(cfg.Rounds, cfg.Ops, l.Handoff, pull2, MutexHandoffs)
	return []Row{{
		Name:   "CoMutex hand-off between two coroutines in one BH under Poll, per hand-off",
		OursNS: f.Ours, Floor: "two bare Go runtime coroutine pairs (iter.Pull)", FloorNS: f.Floor, FloorRatio: f.FloorRatio,
		Baseline: "sync.Mutex hand-off between two goroutines", BaselineNS: f.Peer, Ratio: f.Ratio,
	}}, nil
}
