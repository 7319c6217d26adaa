package aiosource_test

// A model-based test: random sequences of BH, oneshot, timer and fd-handler operations,
// with writes to the fds, run against a real context and against a small reference
// model of QEMU's semantics, driven through Poll and through GLib iterations. The quick
// run is part of `make test`; `make check` runs 10,000 sequences per mode
// (-rapid.checks=10000).

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"golang.org/x/sys/unix"
	"pgregory.net/rapid"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

const (
	modelBHs    = 3
	modelTimers = 3
	modelFDs    = 2
)

// The reference model: what QEMU's AioContext must do.
type bhModel struct{ pending, sched, idle, deleted bool }

type timerModel struct {
	armed  bool
	due    bool  // armed in the past (runs in the next pass) or far in the future
	expire int64 // clamped expire time, for the order of due timers
	seq    int   // arm order: FIFO among equal expire times
}

type fdModel struct{ registered, readable bool }

type aioModel struct {
	bh       [modelBHs]bhModel
	oneshots int
	timers   [modelTimers]timerModel
	fds      [modelFDs]fdModel
	seq      int

	// expected counts
	bhRuns      [modelBHs]int
	oneshotRuns int
	timerRuns   [modelTimers]int
	fdRuns      [modelFDs]int
	timerOrder  []int
}

// pass applies one BH/fd/timer pass (one Poll(false)) and returns its progress.
func (m *aioModel) pass() bool {
	progress := false
	for i := range m.bh {
		b := &m.bh[i]
		if !b.pending {
			continue
		}
		if b.sched && !b.deleted {
			m.bhRuns[i]++
			if !b.idle {
				progress = true
			}
		}
		b.pending, b.sched, b.idle = false, false, false
	}
	if m.oneshots > 0 {
		m.oneshotRuns += m.oneshots
		m.oneshots = 0
		progress = true
	}
	for j := range m.fds {
		if f := &m.fds[j]; f.registered && f.readable {
			m.fdRuns[j]++
			f.readable = false
			progress = true
		}
	}
	var due []int
	for i, tm := range m.timers {
		if tm.armed && tm.due {
			due = append(due, i)
		}
	}
	slices.SortStableFunc(due, func(a, b int) int {
		ta, tb := m.timers[a], m.timers[b]
		if ta.expire != tb.expire {
			return int(ta.expire - tb.expire)
		}
		return ta.seq - tb.seq
	})
	for _, i := range due {
		m.timerRuns[i]++
		m.timers[i].armed = false
		m.timerOrder = append(m.timerOrder, i)
		progress = true
	}
	return progress
}

// idle reports whether a pass would do nothing.
func (m *aioModel) idle() bool {
	c := *m
	c.timerOrder = nil
	return !c.pass() && c.bhRuns == m.bhRuns
}

// The real side.
type aioReal struct {
	ctx         *aiosource.Context
	bhs         [modelBHs]*aiosource.BH
	timers      [modelTimers]*aiosource.Timer
	fds         [modelFDs]int
	bhRuns      [modelBHs]int
	oneshotRuns int
	timerRuns   [modelTimers]int
	fdRuns      [modelFDs]int
	timerOrder  []int
}

func (r *aioReal) counts() string {
	return fmt.Sprint(r.bhRuns, r.oneshotRuns, r.timerRuns, r.fdRuns, r.timerOrder)
}

func (m *aioModel) counts() string {
	return fmt.Sprint(m.bhRuns, m.oneshotRuns, m.timerRuns, m.fdRuns, m.timerOrder)
}

// failer is what both *testing.T and *rapid.T offer.
type failer interface {
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

// modelEnv is one real context, its reference model and the operations on both.
type modelEnv struct {
	t    failer
	glib bool
	mc   *glibloop.MainContext
	ctx  *aiosource.Context
	real *aioReal
	m    *aioModel
}

func newModelEnv(t failer, glib bool) *modelEnv {
	ctx, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	e := &modelEnv{t: t, glib: glib, ctx: ctx, real: &aioReal{ctx: ctx}, m: &aioModel{}}
	if glib {
		e.mc = glibloop.NewMainContext()
		ctx.Attach(e.mc)
	}
	real := e.real
	for i := range real.bhs {
		real.bhs[i] = ctx.NewBH(fmt.Sprintf("bh%d", i), func() { real.bhRuns[i]++ })
	}
	for i := range real.timers {
		real.timers[i] = ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() {
			real.timerRuns[i]++
			real.timerOrder = append(real.timerOrder, i)
		})
	}
	for j := range real.fds {
		fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		real.fds[j] = fd
	}
	return e
}

// close releases everything; the context must close with nothing alive.
func (e *modelEnv) close() {
	real, m, ctx := e.real, e.m, e.ctx
	for i := range real.bhs {
		real.bhs[i].Delete()
	}
	for i := range real.timers {
		real.timers[i].Del()
	}
	for j, fd := range real.fds {
		if m.fds[j].registered {
			ctx.SetFDHandler(fd, aiosource.FDHandler{})
		}
	}
	if err := ctx.Close(); err != nil {
		e.t.Errorf("Close: %v", err)
	}
	for _, fd := range real.fds {
		unix.Close(fd)
	}
	if e.mc != nil {
		e.mc.Unref()
	}
}

// flush drives the context until the model is idle and the counts match, then a little
// more, to catch anything that runs too often.
//
// In Poll mode each of those last Poll(false) calls is a full aio_bh_poll, so the model
// takes a pass for each too: a pass dequeues every pending BH, also a cancelled one that
// runs nothing, and the dequeue clears BH_IDLE. A model that skipped these passes would
// keep a cancelled idle BH queued and idle, and then wrongly expect a later Schedule of
// it to be idle (no progress) where QEMU dequeued it and the new Schedule is a normal
// one. In GLib mode whether an iteration dispatches the context (and so dequeues such a
// BH) depends on aio_ctx_check, which ignores cancelled BHs; that changes only whether
// a later run counts as progress, which GLib mode does not check.
func (e *modelEnv) flush() {
	real, m, ctx, mc := e.real, e.m, e.ctx, e.mc
	for !m.idle() {
		m.pass()
	}
	deadline := time.Now().Add(5 * time.Second)
	for real.counts() != m.counts() && time.Now().Before(deadline) {
		if e.glib {
			mc.Iteration(false)
			if real.counts() != m.counts() {
				// A due timer reaches GLib through its timerfd, which the kernel may mark
				// readable just after GLib's zero-timeout poll: wait briefly.
				wake := glibloop.TimeoutAdd(mc, time.Millisecond, func() bool { return false })
				mc.Iteration(true)
				mc.RemoveSource(wake)
			}
		} else {
			ctx.Poll(false)
		}
	}
	for i := 0; i < 3; i++ {
		if e.glib {
			mc.Iteration(false)
		} else if got, want := ctx.Poll(false), m.pass(); got != want {
			e.t.Fatalf("Poll(false) = %v after the model went idle, model %v; counts %s",
				got, want, real.counts())
		}
	}
	if real.counts() != m.counts() {
		e.t.Fatalf("counts %s, model %s", real.counts(), m.counts())
	}
}

// The operations, by name; p picks a BH, timer or fd, or a value.
var modelOps = []string{"ScheduleBH", "ScheduleIdleBH", "CancelBH", "DeleteBH", "Oneshot", "ModTimerDue",
	"ModTimerFuture", "DelTimer", "WriteFD", "SetHandler", "RemoveHandler", "Flush", "PollOnce"}

func (e *modelEnv) do(op string, p int) {
	real, m, ctx := e.real, e.m, e.ctx
	i, j := p%modelBHs, p%modelFDs
	switch op {
	case "ScheduleBH":
		real.bhs[i].Schedule()
		if b := &m.bh[i]; !b.deleted {
			b.pending, b.sched = true, true
		}
	case "ScheduleIdleBH":
		real.bhs[i].ScheduleIdle()
		if b := &m.bh[i]; !b.deleted {
			b.pending, b.sched, b.idle = true, true, true
		}
	case "CancelBH":
		real.bhs[i].Cancel()
		m.bh[i].sched = false
	case "DeleteBH":
		real.bhs[i].Delete()
		if b := &m.bh[i]; !b.deleted {
			b.deleted, b.pending = true, true
		}
	case "Oneshot":
		ctx.ScheduleOneshot(func() { real.oneshotRuns++ })
		m.oneshots++
	case "ModTimerDue":
		k := p % modelTimers
		ex := []int64{-5, 0, 1, 2}[(p/modelTimers)%4]
		real.timers[k].ModNS(ex)
		m.seq++
		m.timers[k] = timerModel{armed: true, due: true, expire: max(ex, 0), seq: m.seq}
	case "ModTimerFuture":
		k := p % modelTimers
		real.timers[k].ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + int64(time.Hour))
		m.seq++
		m.timers[k] = timerModel{armed: true, seq: m.seq}
	case "DelTimer":
		k := p % modelTimers
		real.timers[k].Del()
		m.timers[k].armed = false
	case "WriteFD":
		unix.Write(real.fds[j], []byte{1, 0, 0, 0, 0, 0, 0, 0})
		m.fds[j].readable = true
	case "SetHandler":
		fd := real.fds[j]
		if err := ctx.SetFDHandler(fd, aiosource.FDHandler{Read: func() {
			var b [8]byte
			unix.Read(fd, b[:])
			real.fdRuns[j]++
		}}); err != nil {
			e.t.Fatal(err)
		}
		m.fds[j].registered = true
	case "RemoveHandler":
		err := ctx.SetFDHandler(real.fds[j], aiosource.FDHandler{})
		if m.fds[j].registered != (err == nil) || (err != nil && !errors.Is(err, aiosource.ErrNoHandler)) {
			e.t.Fatalf("remove fd %d: %v with registered=%v", j, err, m.fds[j].registered)
		}
		m.fds[j].registered = false
	case "Flush":
		e.flush()
	case "PollOnce":
		if e.glib {
			e.flush() // a single GLib iteration's progress is not defined: flush instead
			return
		}
		// One Poll(false): its progress is exactly the model pass's.
		want := m.pass()
		if got := ctx.Poll(false); got != want {
			e.t.Fatalf("Poll(false) = %v, model %v; counts %s, model %s", got, want, real.counts(), m.counts())
		}
		if real.counts() != m.counts() {
			e.t.Fatalf("after Poll: counts %s, model %s", real.counts(), m.counts())
		}
	}
}

func runModel(rt *rapid.T, glib bool) {
	e := newModelEnv(rt, glib)
	defer e.close()
	actions := map[string]func(*rapid.T){}
	for _, op := range modelOps {
		actions[op] = func(rt *rapid.T) { e.do(op, rapid.IntRange(0, 11).Draw(rt, "p")) }
	}
	rt.Repeat(actions)
	e.flush()
}

// FuzzAioOps: byte strings as operation sequences (first byte: Poll or GLib), checked
// against the same model.
func FuzzAioOps(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 0, 0, 12, 0}, {1, 0, 1, 2, 0, 11, 0}, {0, 5, 3, 5, 4, 12, 0},
		{0, 9, 0, 8, 0, 12, 0, 10, 0, 10, 0}, {1, 4, 0, 4, 0, 6, 1, 11, 0}, {0, 1, 2, 0, 2, 12, 0},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) == 0 || len(ops) > 400 {
			return
		}
		e := newModelEnv(t, ops[0]&1 == 1)
		defer e.close()
		for k := 1; k+1 < len(ops); k += 2 {
			e.do(modelOps[int(ops[k])%len(modelOps)], int(ops[k+1]))
		}
		e.flush()
	})
}

// Sequences that once broke the model, replayed in both modes.
func TestModelRegressions(t *testing.T) {
	leakcheck.Handles(t)
	type op struct {
		name string
		p    int
	}
	for _, tc := range []struct {
		name string
		ops  []op
	}{
		// A flush dequeues the cancelled idle BH (clearing BH_IDLE), so the next Schedule
		// is a normal one and its run is progress (rapid seed 4396456464702503286).
		{"CancelledIdleBHThenSchedule", []op{{"ScheduleIdleBH", 1}, {"CancelBH", 1}, {"Flush", 0},
			{"ScheduleBH", 1}, {"PollOnce", 0}}},
	} {
		for _, glib := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/glib=%v", tc.name, glib), func(t *testing.T) {
				e := newModelEnv(t, glib)
				defer e.close()
				for _, o := range tc.ops {
					e.do(o.name, o.p)
				}
				e.flush()
			})
		}
	}
}

func TestModelPoll(t *testing.T) {
	leakcheck.Handles(t)
	rapid.Check(t, func(rt *rapid.T) { runModel(rt, false) })
}

func TestModelGLib(t *testing.T) {
	leakcheck.Handles(t)
	rapid.Check(t, func(rt *rapid.T) { runModel(rt, true) })
}
