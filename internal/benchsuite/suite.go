// Package benchsuite holds the scenarios that cmd/aiobench measures and that the
// go test benchmarks back: each scenario runs glibaio, its floor and its peer (Row), built
// by the same run (pure C from internal/cbaseline, GLib's own sources, gotk3, the bare Go
// runtime), in interleaved rounds.
package benchsuite

import (
	"fmt"
	"math"
	"regexp"
	"runtime"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gotk3/gotk3/glib"
	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/cbaseline"
	"github.com/glibaio/glibaio/internal/reactor"
	"github.com/glibaio/glibaio/internal/watch"
)

// Config scales the runs.
type Config struct {
	Rounds int // interleaved rounds per comparison; the medians are reported
	Ops    int // operations per round
	Quick  bool
	Only   *regexp.Regexp // if set, only the sections (Sections) whose name it matches run
}

// Selects reports whether the section named name runs under c.
func (c Config) Selects(name string) bool {
	if !slices.Contains(Sections, name) {
		panic("benchsuite: unknown section " + name)
	}
	return c.Only == nil || c.Only.MatchString(name)
}

// QuickConfig finishes the whole suite in well under a minute on 2 cores.
func QuickConfig() Config { return Config{Rounds: 7, Ops: 2000, Quick: true} }

// FullConfig is what `make bench` runs.
func FullConfig() Config { return Config{Rounds: 21, Ops: 20000} }

// Median returns the median of v.
func Median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// Percentile returns the p-th percentile (0..100) of v.
func Percentile(v []float64, p float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	i := int(math.Ceil(p/100*float64(len(v)))) - 1
	return v[max(0, min(i, len(v)-1))]
}

// Figures are glibaio's ns/op, its floor's and its peer's, from the same interleaved
// rounds: the medians, and the medians of the per-round ratios to the floor and the peer.
// V holds every round's ns/op: ours, the floor, the peer, then the further functions.
type Figures struct {
	Ours, Floor, FloorRatio, Peer, Ratio float64
	V                                    [][]float64
}

// sideBySide measures ours, its floor, its peer and more in the same rounds (interleaveAll:
// each round runs each of them for n operations, rotating which goes first).
func sideBySide(rounds, n int, ours, floor, peer func(int) time.Duration, more ...func(int) time.Duration) Figures {
	v := interleaveAll(rounds, n, append([]func(int) time.Duration{ours, floor, peer}, more...)...)
	return Figures{Ours: Median(v[0]), Floor: Median(v[1]), FloorRatio: medianRatio(v[0], v[1]),
		Peer: Median(v[2]), Ratio: medianRatio(v[0], v[2]), V: v}
}

// eventfds makes n non-blocking eventfds.
func eventfds(n int) ([]int, error) {
	fds := make([]int, 0, n)
	for i := 0; i < n; i++ {
		fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("eventfd %d of %d: %w", i, n, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func readEventfd(fd int) {
	var b [8]byte
	unix.Read(fd, b[:])
}

// FDLoop is an AioContext attached to its own GMainContext with one active eventfd
// whose read handler drains it, plus idle eventfds with handlers that never fire.
type FDLoop struct {
	MC     *glibloop.MainContext
	Ctx    *aiosource.Context
	Active int
	idle   []int
	owned  bool
}

// NewFDLoop builds an FDLoop with the given number of idle fds.
func NewFDLoop(idle int) (*FDLoop, error) {
	fds, err := eventfds(idle + 1)
	if err != nil {
		return nil, err
	}
	l, err := NewFDLoopOn(fds[0], fds[1:])
	if err != nil {
		closeAll(fds)
		return nil, err
	}
	l.owned = true
	return l, nil
}

// NewFDLoopOn builds an FDLoop on fds the caller owns.
func NewFDLoopOn(active int, idle []int) (*FDLoop, error) {
	l := &FDLoop{MC: glibloop.NewMainContext(), Active: active, idle: idle}
	var err error
	l.Ctx, err = aiosource.New()
	if err != nil {
		l.MC.Unref()
		return nil, err
	}
	l.Ctx.Attach(l.MC)
	if err := l.Ctx.SetFDHandler(active, aiosource.FDHandler{Read: func() { readEventfd(active) }}); err != nil {
		l.Close()
		return nil, err
	}
	if err := l.AddIdle(); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// AddIdle registers a never-firing read handler on every idle fd.
func (l *FDLoop) AddIdle() error {
	for _, fd := range l.idle {
		if err := l.Ctx.SetFDHandler(fd, aiosource.FDHandler{Read: func() {}}); err != nil {
			return err
		}
	}
	return nil
}

// RemoveIdle removes the idle fds' handlers (the context keeps its backend).
func (l *FDLoop) RemoveIdle() error {
	for _, fd := range l.idle {
		if err := l.Ctx.SetFDHandler(fd, aiosource.FDHandler{}); err != nil {
			return err
		}
	}
	return nil
}

// Drive runs n rounds of: write the active eventfd, one GLib iteration (all in C).
func (l *FDLoop) Drive(n int) time.Duration {
	return cbaseline.Drive(l.MC.Native(), l.Active, n, false)
}

// ReactorFloor is the fd round trip on glibaio's reactor source alone, the GSource
// under every AioContext: prepare and check in C with QEMU's notify_me handshake, the
// events harvested in C and handed, in one crossing, to a Go dispatch that reads the fd
// of each event whose tag is its registration's. No AioContext runs around it: no
// home-thread check, no statistics, no BHs, timers or walk levels. glibaio's figure
// minus this one is what the AioContext adds.
type ReactorFloor struct {
	mc  *glibloop.MainContext
	r   *reactor.Reactor
	fd  int
	Ran int // dispatches that read the fd
}

// NewReactorFloor builds a ReactorFloor attached to its own GMainContext, with
// can_recurse set as aiosource sets it.
func NewReactorFloor() (*ReactorFloor, error) {
	fds, err := eventfds(1)
	if err != nil {
		return nil, err
	}
	f := &ReactorFloor{mc: glibloop.NewMainContext(), fd: fds[0]}
	const tag = 1
	f.r, err = reactor.New(func(events []reactor.Event) {
		for _, ev := range events {
			if ev.FD == int32(f.fd) && ev.Tag == tag {
				readEventfd(f.fd)
				f.Ran++
			}
		}
	}, nil)
	if err == nil {
		err = f.r.Add(f.fd, unix.EPOLLIN, tag)
	}
	if err != nil {
		if f.r != nil {
			f.r.Close()
		}
		f.mc.Unref()
		unix.Close(f.fd)
		return nil, err
	}
	f.r.Source().SetCanRecurse(true)
	f.r.Source().Attach(f.mc)
	return f, nil
}

// Drive runs n rounds of: write the eventfd, one GLib iteration (all in C).
func (f *ReactorFloor) Drive(n int) time.Duration {
	return cbaseline.Drive(f.mc.Native(), f.fd, n, false)
}

// Close releases everything.
func (f *ReactorFloor) Close() {
	f.r.Close()
	f.mc.Unref()
	unix.Close(f.fd)
}

// Close releases everything.
func (l *FDLoop) Close() {
	if l.Ctx != nil {
		l.Ctx.Close()
	}
	l.MC.Unref()
	if l.owned {
		closeAll(append(l.idle, l.Active))
	}
}

// CSource is a pure-C GSource on its own context that watches an eventfd and reads it
// in its dispatch: the fd round trip's floor (NewFloorSource) or its peer (NewCSource).
type CSource struct {
	mc    *glibloop.MainContext
	fds   []int // the eventfd it reads first, then any idle one
	src   unsafe.Pointer
	count func(unsafe.Pointer) int64
}

// NewCSource builds the fd round trip's peer: a plain C GSource, as a C programmer
// would write it, whose dispatch reads the eventfd. It does not set can_recurse, so GLib
// blocks and unblocks its fd around every dispatch, which writes and acknowledges
// GLib's wakeup fd: more work than glibaio's source does, so it is no floor.
func NewCSource() (*CSource, error) {
	return newCSource(1, func(fds []int) unsafe.Pointer { return cbaseline.NewSource(fds[0], false, true, false) })
}

// NewFloorSource builds the fd round trip's floor: the same read in C, from a source
// shaped as GLib sees aiosource's reactor source (cbaseline.NewReactorShaped):
// prepare and check in C, can_recurse, an idle kick eventfd besides the one it reads.
func NewFloorSource() (*CSource, error) {
	c, err := newCSource(2, func(fds []int) unsafe.Pointer { return cbaseline.NewReactorShaped(fds[0], fds[1], true) })
	if c != nil {
		c.count = cbaseline.ReactorShapedCount
	}
	return c, err
}

func newCSource(nfds int, mk func([]int) unsafe.Pointer) (*CSource, error) {
	fds, err := eventfds(nfds)
	if err != nil {
		return nil, err
	}
	c := &CSource{mc: glibloop.NewMainContext(), fds: fds, count: cbaseline.Count}
	c.src = mk(fds)
	cbaseline.Attach(c.src, c.mc.Native())
	return c, nil
}

// Drive is FDLoop.Drive for the C source.
func (c *CSource) Drive(n int) time.Duration {
	return cbaseline.Drive(c.mc.Native(), c.fds[0], n, false)
}

// Count returns how many times the C source dispatched.
func (c *CSource) Count() int64 { return c.count(c.src) }

// Close releases everything.
func (c *CSource) Close() {
	cbaseline.DestroyUnref(c.src)
	c.mc.Unref()
	closeAll(c.fds)
}

// GoSource is a Go GSource (glibloop.NewSource) watching an eventfd on its own context,
// driven by the same C loop as the C sources.
type GoSource struct {
	mc    *glibloop.MainContext
	fd    int
	kick  int // an idle eventfd watched before fd (read only), as the fd round trip floor watches one
	src   *glibloop.Source
	drain bool
	count func() int // dispatches (with read: that read a value)
}

// goDispatch is a Go GSource with only Dispatch: one C-to-Go crossing per iteration.
type goDispatch struct{ n int }

func (x *goDispatch) Dispatch(*glibloop.Source) bool { x.n++; return true }

// goPCD is a Go GSource with Prepare, Check and Dispatch: three crossings.
type goPCD struct{ n int }

func (x *goPCD) Prepare(*glibloop.Source) (bool, time.Duration) { return false, -1 }
func (x *goPCD) Check(*glibloop.Source) bool                    { return false }
func (x *goPCD) Dispatch(*glibloop.Source) bool                 { x.n++; return true }

// goRead is a Go GSource with only Dispatch, which reads the eventfd from Go: the
// simplest Go source that does the fd round trip's work.
type goRead struct{ fd, n int }

func (x *goRead) Dispatch(*glibloop.Source) bool {
	var b [8]byte
	if k, _ := unix.Read(x.fd, b[:]); k == 8 {
		x.n++
	}
	return true
}

// NewGoSource attaches a Go GSource to its own context, watching an eventfd: with
// prepareCheck it implements Prepare, Check and Dispatch, without it only Dispatch; with
// read its Dispatch reads the eventfd, can_recurse is set and an idle kick eventfd is
// watched first, as on the fd round trip's floor (the Go floor of that row); without it
// the drive loop reads the eventfd back in C and can_recurse stays false, GLib's default
// and glibloop's, as on the C sources it is compared with.
func NewGoSource(prepareCheck, read bool) (*GoSource, error) {
	fds, err := eventfds(2)
	if err != nil {
		return nil, err
	}
	g := &GoSource{mc: glibloop.NewMainContext(), fd: fds[0], kick: fds[1], drain: !read}
	var f glibloop.SourceFuncs
	switch {
	case read:
		x := &goRead{fd: g.fd}
		f, g.count = x, func() int { return x.n }
	case prepareCheck:
		x := &goPCD{}
		f, g.count = x, func() int { return x.n }
	default:
		x := &goDispatch{}
		f, g.count = x, func() int { return x.n }
	}
	g.src = glibloop.NewSource(f)
	g.src.SetCanRecurse(read)
	if read {
		g.src.AddUnixFD(g.kick, glibloop.IOIn)
	}
	g.src.AddUnixFD(g.fd, glibloop.IOIn)
	g.src.Attach(g.mc)
	return g, nil
}

// Drive runs n rounds of: write the eventfd, one GLib iteration, and (without read) read
// the eventfd back, all in C.
func (g *GoSource) Drive(n int) time.Duration {
	return cbaseline.Drive(g.mc.Native(), g.fd, n, g.drain)
}

// Count returns how many times the Go source dispatched (with read: read a value).
func (g *GoSource) Count() int { return g.count() }

// Close releases everything.
func (g *GoSource) Close() {
	g.src.Destroy()
	g.src.Unref()
	g.mc.Unref()
	closeAll([]int{g.fd, g.kick})
}

// CrossingSource is the floor of a Go GSource: a C GSource watching an eventfd whose
// callbacks each make one empty call into Go (cbaseline.NewSource with cross), with
// prepareCheck three of them, without it one; the drive loop reads the eventfd back in C.
// Without cross it is the peer: the same source in pure C.
type CrossingSource struct{ CSource }

// NewCrossingSource builds it on its own context.
func NewCrossingSource(prepareCheck, cross bool) (*CrossingSource, error) {
	c, err := newCSource(1, func(fds []int) unsafe.Pointer { return cbaseline.NewSource(fds[0], prepareCheck, false, cross) })
	if err != nil {
		return nil, err
	}
	return &CrossingSource{*c}, nil
}

// Drive is GoSource.Drive for the C source.
func (c *CrossingSource) Drive(n int) time.Duration {
	return cbaseline.Drive(c.mc.Native(), c.fds[0], n, true)
}

// GLibFDSources is GLib's own way to watch many fds: one g_unix_fd_add source each.
type GLibFDSources struct {
	mc     *glibloop.MainContext
	active int
}

// NewGLibFDSources attaches one unix fd source per fd (the caller's) to a new context.
func NewGLibFDSources(active int, idle []int) *GLibFDSources {
	g := &GLibFDSources{mc: glibloop.NewMainContext(), active: active}
	cbaseline.AddUnixFDSources(g.mc.Native(), append([]int{active}, idle...))
	return g
}

// Drive is FDLoop.Drive for GLib's per-fd sources.
func (g *GLibFDSources) Drive(n int) time.Duration {
	return cbaseline.Drive(g.mc.Native(), g.active, n, false)
}

// Close releases everything.
func (g *GLibFDSources) Close() {
	cbaseline.RemoveUnixFDSources(g.mc.Native())
	g.mc.Unref()
}

// BHIteration measures bh.Schedule plus one non-blocking GLib iteration, on the
// loop thread, and counts the eventfd writes it made.
type BHIteration struct {
	Ctx   *aiosource.Context
	mc    *glibloop.MainContext
	bh    *aiosource.BH
	n     int
	again bool // the BH schedules itself (RunFromLoop)
}

// NewBHIteration attaches an AioContext to the default context, where gotk3's IdleAdd
// runs too.
func NewBHIteration() (*BHIteration, error) {
	c, err := aiosource.New()
	if err != nil {
		return nil, err
	}
	b := &BHIteration{Ctx: c, mc: glibloop.DefaultContext()}
	b.bh = c.NewBH("bench", func() {
		b.n++
		if b.again {
			b.bh.Schedule()
		}
	})
	c.Attach(b.mc)
	return b, nil
}

// RunFromLoop does n rounds the way a loop thread does them under g_main_loop_run: the
// BH schedules itself from its callback, on the loop thread, and the iterations run in
// C, as the floor's do (cbaseline.ReadyIterate), with no Go-to-C call per iteration.
func (b *BHIteration) RunFromLoop(n int) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.again = true
	b.bh.Schedule()
	d := cbaseline.Iterate(b.mc.Native(), n)
	b.again = false
	b.mc.Iteration(false) // runs the last Schedule
	return d
}

// Run does n rounds from Go: Schedule, then a Go-to-C call of one iteration.
func (b *BHIteration) Run(n int) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	for i := 0; i < n; i++ {
		b.bh.Schedule()
		b.mc.Iteration(false)
	}
	return time.Since(start)
}

// Close releases everything.
func (b *BHIteration) Close() {
	b.bh.Delete()
	b.Ctx.Close()
}

// ReadyIterate measures the floor of BH schedule + iteration: n rounds of one GLib
// iteration of mc that dispatches a C source shaped like the reactor (can_recurse, its
// kick eventfd), in C. mc is a context of its own, so that no other source (glibaio's
// AioContext on the default context) adds to it.
func ReadyIterate(mc *glibloop.MainContext, n int) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cbaseline.ReadyIterate(mc.Native(), n)
}

// FloodFloor is the floor of OneshotFlood: the same flood in C (cbaseline.OneshotFlood)
// on a GMainContext of its own, on a locked thread. It returns the time per event.
func FloodFloor(producers, n int) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	mc := glibloop.NewMainContext()
	defer mc.Unref()
	return cbaseline.OneshotFlood(mc.Native(), producers, n)
}

// Gotk3Idle measures gotk3's glib.IdleAdd plus Iteration on the default context.
func Gotk3Idle(n int) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	g := glib.MainContextDefault()
	fn := func() bool { return false }
	start := time.Now()
	for i := 0; i < n; i++ {
		glib.IdleAdd(fn)
		g.Iteration(false)
	}
	return time.Since(start)
}

// OneshotFlood measures oneshot BHs scheduled from producers goroutines, n each,
// drained by a loop iterating the context; it returns the time per event.
func OneshotFlood(c *aiosource.Context, mc *glibloop.MainContext, producers, n int) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ran atomic.Int64
	fn := func() { ran.Add(1) }
	total := int64(producers * n)
	runtime.GC() // start clean, as testing.B does: the other side's garbage is not ours
	start := time.Now()
	for p := 0; p < producers; p++ {
		go func() {
			for i := 0; i < n; i++ {
				c.ScheduleOneshot(fn)
			}
		}()
	}
	for ran.Load() < total {
		mc.Iteration(true)
	}
	return time.Since(start) / time.Duration(total)
}

// Gotk3Flood is OneshotFlood with gotk3's glib.IdleAdd on the default context.
func Gotk3Flood(producers, n int) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ran atomic.Int64
	fn := func() bool { ran.Add(1); return false }
	total := int64(producers * n)
	g := glib.MainContextDefault()
	runtime.GC()
	start := time.Now()
	for p := 0; p < producers; p++ {
		go func() {
			for i := 0; i < n; i++ {
				glib.IdleAdd(fn)
			}
		}()
	}
	for ran.Load() < total {
		g.Iteration(true)
	}
	return time.Since(start) / time.Duration(total)
}

// TimerLateness re-arms a period timer rounds times on an AioContext under a real
// g_main_loop_run and returns how late each expiry ran.
func TimerLateness(period time.Duration, rounds int) ([]time.Duration, error) {
	mc := glibloop.NewMainContext()
	defer mc.Unref()
	c, err := aiosource.New()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.Attach(mc)
	out := make([]time.Duration, 0, rounds)
	var t *aiosource.Timer
	var expire int64
	t = c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() {
		out = append(out, time.Duration(aiosource.ClockNS(aiosource.ClockRealtime)-expire))
		if len(out) == rounds {
			cbaseline.MainLoopQuit()
			return
		}
		expire = aiosource.ClockNS(aiosource.ClockRealtime) + int64(period)
		t.ModNS(expire)
	})
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	expire = aiosource.ClockNS(aiosource.ClockRealtime) + int64(period)
	t.ModNS(expire)
	cbaseline.MainLoopRun(mc.Native())
	return out, nil
}

// PingPong runs rounds round trips between two IOThreads through event notifiers and
// returns the elapsed time.
func PingPong(rounds int) (time.Duration, error) {
	a, err := aiosource.NewIOThread("ping")
	if err != nil {
		return 0, err
	}
	defer a.Stop()
	b, err := aiosource.NewIOThread("pong")
	if err != nil {
		return 0, err
	}
	defer b.Stop()
	ea, _ := aiosource.NewEventNotifier(false)
	eb, _ := aiosource.NewEventNotifier(false)
	defer ea.Close()
	defer eb.Close()
	done := make(chan struct{})
	n := 0
	a.Context().SetEventNotifier(ea, func(e *aiosource.EventNotifier) {
		e.TestAndClear()
		n++
		if n == rounds {
			close(done)
			return
		}
		eb.Set()
	})
	b.Context().SetEventNotifier(eb, func(e *aiosource.EventNotifier) {
		e.TestAndClear()
		ea.Set()
	})
	defer a.Context().SetEventNotifier(ea, nil)
	defer b.Context().SetEventNotifier(eb, nil)
	time.Sleep(time.Millisecond) // let both threads block in Poll
	start := time.Now()
	eb.Set()
	<-done
	return time.Since(start), nil
}

// goTimerFD is the Go floor of the AIO timer under g_main_loop_run: the C floor's
// reactor-shaped source (a timerfd armed at an absolute monotonic time, an idle kick
// eventfd, can_recurse), written as a glibloop Source whose one crossing is Dispatch,
// which reads the timerfd and the clock from Go, as the C source does in C.
type goTimerFD struct {
	tfd    int
	expire int64
	period int64
	out    []time.Duration
	rounds int
}

func (g *goTimerFD) arm() {
	its := unix.ItimerSpec{Value: unix.NsecToTimespec(g.expire)}
	unix.TimerfdSettime(g.tfd, unix.TFD_TIMER_ABSTIME, &its, nil)
}

func (g *goTimerFD) Dispatch(*glibloop.Source) bool {
	var b [8]byte
	if _, err := unix.Read(g.tfd, b[:]); err != nil {
		return true
	}
	g.out = append(g.out, time.Duration(watch.Nanotime()-g.expire))
	if len(g.out) == g.rounds {
		cbaseline.MainLoopQuit()
		return true
	}
	g.expire = watch.Nanotime() + g.period
	g.arm()
	return true
}

// GoTimerFDLateness runs rounds timer periods of a goTimerFD under g_main_loop_run and
// returns how late each dispatch came.
func GoTimerFDLateness(period time.Duration, rounds int) ([]time.Duration, error) {
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(tfd)
	kick, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(kick)
	mc := glibloop.NewMainContext()
	defer mc.Unref()
	g := &goTimerFD{tfd: tfd, period: int64(period), rounds: rounds, out: make([]time.Duration, 0, rounds)}
	src := glibloop.NewSource(g)
	src.AddUnixFD(tfd, glibloop.IOIn)
	src.AddUnixFD(kick, glibloop.IOIn)
	src.SetCanRecurse(true)
	src.Attach(mc)
	defer func() { src.Destroy(); src.Unref() }()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	g.expire = watch.Nanotime() + g.period
	g.arm()
	cbaseline.MainLoopRun(mc.Native())
	return g.out, nil
}
