package benchsuite

import (
	"fmt"
	"runtime"
	"time"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/cbaseline"
)

// FDCounts are the registered-fd counts of the scaling chart.
var FDCounts = []int{0, 100, 1000, 10000}

// Scaling holds cost per iteration (ns) against registered idle fds.
type Scaling struct {
	FDs        []int
	Ours, GLib []float64
}

// Sections are the names of Run's sections, in order: what progress is told, and what
// Config.Only selects from.
var Sections = []string{
	"fd round trip", "statistics and watchdog overhead", "GSource crossings", "fd scaling", "BH schedule + iteration",
	"oneshot flood from 4 goroutines", "timer lateness", "timer lateness under Poll",
	"IOThread ping-pong", "coroutine enter+yield", "coroutine create+run+finish",
	"CoMutex hand-off", "io_uring reads", "allocations",
}

// The floors and peers that several rows name.
const (
	floorFD = "C GSource shaped like the reactor (can_recurse, kick fd), the same read in C"
	peerFD  = "pure-C GSource without can_recurse (GLib blocks its fd around each dispatch)"
)

// Run measures every scenario that cfg selects and returns the rows and the fd scaling
// data (empty unless the "fd scaling" section ran). progress is told what runs. Each
// row's Target and Pass are decided from its limits (Row.decide).
func Run(cfg Config, progress func(string)) ([]Row, *Scaling, error) {
	rows, sc, err := run(cfg, progress)
	for i := range rows {
		rows[i].decide()
	}
	return rows, sc, err
}

func run(cfg Config, progress func(string)) ([]Row, *Scaling, error) {
	var rows []Row
	add := func(r Row) { rows = append(rows, r) }
	section := func(name string) bool {
		if !cfg.Selects(name) {
			return false
		}
		progress(name)
		return true
	}
	sc := &Scaling{}

	// 1. fd round trip against its floor, a reactor-shaped C source, and its peer, the
	// plain C source; 1b. the cost of callback statistics and the stall watchdog on it.
	if cfg.Selects("fd round trip") || cfg.Selects("statistics and watchdog overhead") {
		if err := fdRoundTripRows(cfg, section, add); err != nil {
			return nil, nil, err
		}
	}

	// 2. Go GSources against the same C source making the same empty crossings.
	if section("GSource crossings") {
		if err := crossingRows(cfg, add); err != nil {
			return nil, nil, err
		}
	}

	// 3. Registered idle fds: flat in N, and against GLib's per-fd sources.
	if section("fd scaling") {
		if err := fdScaling(cfg, sc, add); err != nil {
			return nil, nil, err
		}
	}

	// 4. BH schedule plus one iteration on the loop thread.
	if section("BH schedule + iteration") {
		bi, err := NewBHIteration()
		if err != nil {
			return nil, nil, err
		}
		fmc := glibloop.NewMainContext()
		floor := func(n int) time.Duration { return ReadyIterate(fmc, n) }
		kicks := bi.Ctx.Stats().Kicks
		f := sideBySide(cfg.Rounds, cfg.Ops, bi.RunFromLoop, floor, Gotk3Idle, bi.Run)
		kicks = bi.Ctx.Stats().Kicks - kicks
		bi.Close()
		fmc.Unref()
		goDriven := Median(f.V[3])
		add(Row{Name: "BH schedule + one iteration on the loop thread", OursNS: f.Ours,
			Notes: []Note{{Name: "driven from Go instead: Schedule, then a Go-to-C call per iteration", Value: goDriven, Unit: "ns"},
				{Name: "driven from Go to the floor", Value: medianRatio(f.V[3], f.V[1]), Unit: "x"}},
			Floor: "one GLib iteration dispatching a C source shaped like the reactor", FloorNS: f.Floor, FloorRatio: f.FloorRatio, FloorMax: 1.5,
			Baseline: "gotk3 glib.IdleAdd + Iteration", BaselineNS: f.Peer, Ratio: f.Ratio,
			Conds: []Cond{{Name: "eventfd writes", Value: float64(kicks), Max: 0}}})
	}

	// 5. Oneshot BHs from 4 goroutines.
	if section("oneshot flood from 4 goroutines") {
		mc := glibloop.NewMainContext()
		fc, err := aiosource.New()
		if err != nil {
			return nil, nil, err
		}
		fc.Attach(mc)
		per := floodPer(cfg)
		v, err := rotate(max(cfg.Rounds/3, 3),
			func() (float64, error) { return float64(OneshotFlood(fc, mc, 4, per)), nil },
			func() (float64, error) { d, err := FloodFloor(4, per); return float64(d), err },
			func() (float64, error) { return float64(Gotk3Flood(4, per/10)), nil })
		fc.Close()
		mc.Unref()
		if err != nil {
			return nil, nil, err
		}
		add(Row{Name: "oneshot BHs from 4 goroutines, per event", OursNS: Median(v[0]),
			Floor: "4 C threads, lock-free list, notify_me eventfd, reactor-shaped C source", FloorNS: Median(v[1]), FloorRatio: medianRatio(v[0], v[1]),
			Baseline: "gotk3 glib.IdleAdd from 4 goroutines", BaselineNS: Median(v[2]), Ratio: medianRatio(v[0], v[2]), PeerMax: 0.05})
	}

	// 6. Timer lateness under g_main_loop_run.
	if section("timer lateness") {
		if err := timerRows(cfg, add); err != nil {
			return nil, nil, err
		}
	}

	// 6b. Timer lateness under Poll(true), against a bare timerfd (polltimer.go).
	if section("timer lateness under Poll") {
		pt, err := pollTimerRows(cfg)
		if err != nil {
			return nil, nil, err
		}
		rows = append(rows, pt...)
	}

	// 7. Poll ping-pong between two IOThreads.
	if section("IOThread ping-pong") {
		pp := cfg.Ops
		per := func(d time.Duration, err error) (float64, error) { return float64(d) / float64(pp), err }
		v, err := rotate(max(cfg.Rounds/3, 3),
			func() (float64, error) { return per(PingPong(pp)) },
			func() (float64, error) { return per(cbaseline.PingPong(pp), nil) },
			func() (float64, error) { return per(cbaseline.GLibPingPong(pp)) })
		if err != nil {
			return nil, nil, err
		}
		add(Row{Name: "Poll ping-pong between two IOThreads (event notifiers), per round trip", OursNS: Median(v[0]),
			Floor: "two C threads, eventfd + epoll_wait", FloorNS: Median(v[1]), FloorRatio: medianRatio(v[0], v[1]), FloorMax: 1.2,
			Baseline: "two C threads iterating their GMainContexts, g_unix_fd_add sources", BaselineNS: Median(v[2]), Ratio: medianRatio(v[0], v[2])})
	}

	// 8-10. Coroutines (coroutine.go): enter+yield, create+run+finish, CoMutex hand-off.
	for _, cs := range []struct {
		name string
		rows func(Config) ([]Row, error)
	}{
		{"coroutine enter+yield", coEnterYieldRows},
		{"coroutine create+run+finish", coCreateRows},
		{"CoMutex hand-off", coHandoffRows},
		{"io_uring reads", uringRows}, // uring.go
	} {
		if section(cs.name) {
			cr, err := cs.rows(cfg)
			if err != nil {
				return nil, nil, err
			}
			rows = append(rows, cr...)
		}
	}

	// 11. Steady-state allocations: counts, so no floor or peer (none allocates less than 0).
	if section("allocations") {
		for _, a := range Allocs() {
			add(Row{Name: a.Name + ": allocs per op", Unit: "allocs/op", OursNS: a.PerOp, Floor: "-", Baseline: "-",
				Conds: []Cond{{Name: "allocs/op", Value: a.PerOp, Max: 0}}})
		}
	}
	return rows, sc, nil
}

// fdRoundTripRows measures the fd round trip against its floor and peer, and the cost of
// callback statistics and the stall watchdog on it, as the sections selected.
func fdRoundTripRows(cfg Config, section func(string) bool, add func(Row)) error {
	fl, err := NewFDLoop(0)
	if err != nil {
		return err
	}
	defer fl.Close()
	floor, err := NewFloorSource()
	if err != nil {
		return err
	}
	defer floor.Close()
	if section("fd round trip") {
		peer, err := NewCSource()
		if err != nil {
			return err
		}
		defer peer.Close()
		naive, err := NewGoSource(false, true)
		if err != nil {
			return err
		}
		defer naive.Close()
		rf, err := NewReactorFloor()
		if err != nil {
			return err
		}
		defer rf.Close()
		f := sideBySide(cfg.Rounds, cfg.Ops, fl.Drive, floor.Drive, peer.Drive, naive.Drive, rf.Drive)
		add(Row{Name: "fd round trip: eventfd write + GLib iteration + Go read handler", OursNS: f.Ours,
			Floor: floorFD, FloorNS: f.Floor, FloorRatio: f.FloorRatio, FloorMax: 1.15,
			Baseline: peerFD, BaselineNS: f.Peer, Ratio: f.Ratio,
			Notes: []Note{
				{Name: "Go floor: a Go GSource with the floor's fds and can_recurse, only Dispatch, reading from Go", Value: Median(f.V[3]), Unit: "ns"},
				{Name: "its ratio to the floor", Value: medianRatio(f.V[3], f.V[1]), Unit: "x"},
				{Name: "reactor alone: glibaio's reactor source (prepare and check in C, with the notify_me handshake) handing its events to a Go dispatch that only reads the fd, no AioContext", Value: Median(f.V[4]), Unit: "ns"},
				{Name: "the reactor alone's ratio to the floor", Value: medianRatio(f.V[4], f.V[1]), Unit: "x"},
			}})
	}
	if section("statistics and watchdog overhead") {
		glibloop.SetStallWatchdog(100*time.Millisecond, func(glibloop.Stall) {})
		without := func(n int) time.Duration {
			glibloop.SetCallbackStats(false)
			defer glibloop.SetCallbackStats(true)
			return fl.Drive(n)
		}
		f := sideBySide(cfg.Rounds, cfg.Ops, fl.Drive, without, floor.Drive)
		glibloop.SetStallWatchdog(0, nil)
		add(Row{Name: "fd round trip with callback statistics and the stall watchdog on", OursNS: f.Ours,
			Floor: "the same round trip with callback timing (statistics and watchdog) off", FloorNS: f.Floor, FloorRatio: f.FloorRatio, FloorMax: 1.05,
			Baseline: floorFD, BaselineNS: f.Peer, Ratio: f.Ratio})
	}
	return nil
}

// crossingRows measures Go GSources (glibloop) with one crossing (Dispatch) and three
// (Prepare, Check, Dispatch) against the same C source making as many empty C-to-Go
// calls (the floor) and making none (the peer). All of them keep GLib's default flags,
// as a glibloop source does: can_recurse off, one unix fd; the C loop reads the eventfd
// back after each iteration.
func crossingRows(cfg Config, add func(Row)) error {
	for _, x := range []struct {
		name, floor, peer string
		pc                bool
		max               float64
	}{
		{"Go GSource, dispatch only: eventfd write + GLib iteration + Go Dispatch",
			"the same C source making one empty C-to-Go call", "the same C source (dispatch only) in pure C", false, 1.03},
		{"Go GSource, Prepare+Check+Dispatch: eventfd write + GLib iteration + three Go callbacks",
			"the same C source making three empty C-to-Go calls", "the same C source (prepare, check, dispatch) in pure C", true, 1.05},
	} {
		ours, err := NewGoSource(x.pc, false)
		if err != nil {
			return err
		}
		floor, err := NewCrossingSource(x.pc, true)
		if err != nil {
			ours.Close()
			return err
		}
		peer, err := NewCrossingSource(x.pc, false)
		if err != nil {
			ours.Close()
			floor.Close()
			return err
		}
		f := sideBySide(cfg.Rounds, cfg.Ops, ours.Drive, floor.Drive, peer.Drive)
		ours.Close()
		floor.Close()
		peer.Close()
		add(Row{Name: x.name, OursNS: f.Ours,
			Floor: x.floor, FloorNS: f.Floor, FloorRatio: f.FloorRatio, FloorMax: x.max,
			Baseline: x.peer, BaselineNS: f.Peer, Ratio: f.Ratio})
	}
	return nil
}

// rotate runs each of fs once per round, rounds times, rotating which one goes first, and
// returns each one's values: for scenarios that measure themselves.
func rotate(rounds int, fs ...func() (float64, error)) ([][]float64, error) {
	out := make([][]float64, len(fs))
	for r := 0; r < rounds; r++ {
		for i := range fs {
			k := (i + r) % len(fs)
			v, err := fs[k]()
			if err != nil {
				return nil, err
			}
			out[k] = append(out[k], v)
		}
	}
	return out, nil
}

// fdScaling measures the cost per iteration against registered idle fds, for the chart
// and the 10,000-fd row.
func fdScaling(cfg Config, sc *Scaling, add func(Row)) error {
	sc.FDs = FDCounts
	all, err := eventfds(FDCounts[len(FDCounts)-1] + 1)
	if err != nil {
		return err
	}
	defer closeAll(all)
	for _, n := range FDCounts {
		// Both watch the same fds: the active one and n idle ones.
		ours, err := NewFDLoopOn(all[0], all[1:n+1])
		if err != nil {
			return err
		}
		gl := NewGLibFDSources(all[0], all[1:n+1])
		// GLib's per-fd sources cost about 0.1 µs per fd per iteration: fewer ops for them.
		gops := cfg.Ops
		if n >= 1000 {
			gops = max(cfg.Ops/(n/100), 20)
		}
		on := measure(cfg.Rounds, cfg.Ops, ours.Drive)
		gn := measure(cfg.Rounds, gops, gl.Drive)
		sc.Ours = append(sc.Ours, on)
		sc.GLib = append(sc.GLib, gn)
		if n == 10000 {
			// The floor: the same context with its idle fds removed. It stays on its
			// epoll backend, so the ratio is the cost of the 10,000 fds themselves.
			on, zero, r := interleaveSame(cfg.Rounds, cfg.Ops, ours)
			add(Row{Name: "10,000 idle fds, one ready: cost per iteration", OursNS: on,
				Floor: "the same context with its idle fds removed", FloorNS: zero, FloorRatio: r, FloorMax: 1.5,
				Baseline: "10,000 g_unix_fd_add sources", BaselineNS: gn, Ratio: on / gn, PeerMax: 0.01})
		}
		ours.Close()
		gl.Close()
	}
	return nil
}

// timerRows measures a 1.5 ms AIO timer's lateness under g_main_loop_run.
func timerRows(cfg Config, add func(Row)) error {
	rounds := 2000
	if cfg.Quick {
		rounds = 300
	}
	period := 1500 * time.Microsecond
	// Four chunks each, rotating which runs first, so drift in the VM's wakeup latency
	// hits all five alike.
	gmc := glibloop.NewMainContext()
	var ours, rt, bare, cfd, gofd []time.Duration
	runs := []func(n int) error{
		func(n int) error { d, err := GoTimerFDLateness(period, n); gofd = append(gofd, d...); return err },
		func(n int) error { d, err := TimerLateness(period, n); ours = append(ours, d...); return err },
		func(n int) error {
			d, err := cbaseline.TimerLateness(gmc.Native(), cbaseline.TimerReadyTime, period, n)
			rt = append(rt, d...)
			return err
		},
		func(n int) error {
			d, err := cbaseline.TimerLateness(gmc.Native(), cbaseline.TimerBareFD, period, n)
			bare = append(bare, d...)
			return err
		},
		func(n int) error {
			d, err := cbaseline.TimerLateness(gmc.Native(), cbaseline.TimerFDSource, period, n)
			cfd = append(cfd, d...)
			return err
		},
	}
	for k := 0; k < 4; k++ {
		for i := range runs {
			if err := runs[(i+k)%len(runs)](rounds / 4); err != nil {
				gmc.Unref()
				return err
			}
		}
	}
	gmc.Unref()
	for _, q := range []struct{ p, max float64 }{{50, 1.15}, {99, 1.5}} {
		o, f, b := lateUS(ours, q.p), lateUS(cfd, q.p), lateUS(rt, q.p)
		add(Row{Name: fmt.Sprintf("1.5 ms AIO timer under g_main_loop_run, lateness p%.0f", q.p), Unit: "µs", OursNS: o,
			Floor: "C GSource polling a timerfd, shaped like the reactor (can_recurse, kick fd)", FloorNS: f, FloorRatio: o / f, FloorMax: q.max,
			Baseline: "GSource with g_source_set_ready_time", BaselineNS: b, Ratio: o / b,
			Notes: []Note{{Name: "bare timerfd wait", Value: lateUS(bare, q.p), Unit: "µs"},
				{Name: "Go floor: the same source in Go, one crossing (Dispatch)", Value: lateUS(gofd, q.p), Unit: "µs"},
				{Name: "Go floor to the C floor", Value: lateUS(gofd, q.p) / f, Unit: "x"}}})
	}
	return nil
}

// interleaveSame measures one FDLoop with its idle fds registered and removed, in
// alternating rounds, and returns the medians and the median ratio with/without.
func interleaveSame(rounds, n int, l *FDLoop) (with, without, ratio float64) {
	var ws, wos, rs []float64
	for r := 0; r < rounds; r++ {
		tw := float64(l.Drive(n)) / float64(n)
		if err := l.RemoveIdle(); err != nil {
			break
		}
		to := float64(l.Drive(n)) / float64(n)
		if err := l.AddIdle(); err != nil {
			break
		}
		ws, wos, rs = append(ws, tw), append(wos, to), append(rs, tw/to)
	}
	return Median(ws), Median(wos), Median(rs)
}

// measure returns the median ns/op of rounds runs of n operations.
func measure(rounds, n int, f func(int) time.Duration) float64 {
	f(max(n/10, 10))
	v := make([]float64, rounds)
	for i := range v {
		v[i] = float64(f(n)) / float64(n)
	}
	return Median(v)
}

// Alloc is one steady-state allocation measurement.
type Alloc struct {
	Name  string
	PerOp float64
}

// allocsPerRun is testing.AllocsPerRun without the testing package: the average,
// truncated to an integer as testing does, so amortised growth of a reused buffer does
// not count.
func allocsPerRun(runs int, f func()) float64 {
	f()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < runs; i++ {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64((after.Mallocs - before.Mallocs) / uint64(runs))
}

// Allocs measures the steady-state hot paths: a BH run, an fd dispatch, a timer re-arm,
// a thread-pool completion, and a coroutine's enter+yield, create+run+finish and CoMutex
// hand-off (coroutine.go).
func Allocs() []Alloc {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c, err := aiosource.New()
	if err != nil {
		return nil
	}
	defer c.Close()
	var out []Alloc
	bh := c.NewBH("allocs", func() {})
	out = append(out, Alloc{"BH schedule + run (Poll)", allocsPerRun(1000, func() { bh.Schedule(); c.Poll(false) })})
	bh.Delete()
	nop := func() {}
	out = append(out, Alloc{"oneshot schedule + run (Poll)", allocsPerRun(1000, func() { c.ScheduleOneshot(nop); c.Poll(false) })})

	fl, err := NewFDLoop(0)
	if err == nil {
		out = append(out, Alloc{"fd dispatch (GLib iteration)", allocsPerRun(1000, func() { fl.Drive(1) })})
		fl.Close()
	}

	t := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() {})
	out = append(out, Alloc{"timer re-arm + run (Poll)", allocsPerRun(1000, func() { t.ModNS(0); c.Poll(false) })})

	done := make(chan struct{}, 1)
	work := func() error { return nil }
	fin := func(error) { done <- struct{}{} }
	out = append(out, Alloc{"thread-pool submit + completion (Poll)", allocsPerRun(1000, func() {
		c.Submit(work, fin)
		for {
			c.Poll(true)
			select {
			case <-done:
				return
			default:
			}
		}
	})})
	return append(out, coAllocs()...)
}

// floodPer is how many oneshots each producer of the flood schedules: 100,000 even in a
// quick run. A flood of 4 x 10,000 (about 1.6 ms) is shorter than one slice of the
// kernel's scheduler, so a single late wakeup of the loop thread, queued behind the
// CPU-bound producers for 1-4 ms on this 2-core VM (seen between the reactor's prepare
// and check, with the kick already written), decided the whole sample.
func floodPer(cfg Config) int { return max(cfg.Ops, 20000) * 5 }
