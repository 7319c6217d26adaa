package aiosource_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

// homeMsg is the panic of a Poll (op "Poll") or GLib dispatch (op "dispatch") on thread
// caller while the thread home (described by who: "thread N" or "thread N (what)")
// drives the context.
func homeMsg(op string, caller int, who string) string {
	return fmt.Sprintf("aiosource: %s: called on thread %d, but the context's home thread, %s, is driving it: one thread at a time drives an AioContext (QEMU asserts in_aio_context_home_thread)", op, caller, who)
}

// blockInCallback makes the next walk of c (a Poll, or a GLib dispatch) stop in a BH
// callback until release is closed; entered is closed once it is there.
func blockInCallback(c *aiosource.Context) (entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	c.ScheduleOneshot(func() { close(entered); <-release })
	return entered, release
}

// A Poll from a thread other than the one that drives the context panics, at the call,
// with a message that names both threads by OS thread id, and the context is left as it
// was: for an IOThread's context, for MainLoop's two contexts while Run runs, for a
// context inside a Poll on another thread and for one inside a GLib dispatch there.
func TestHomeThreadPollFromOtherThreadPanics(t *testing.T) {
	leakcheck.Handles(t)
	t.Run("IOThread", func(t *testing.T) {
		th, err := aiosource.NewIOThread("home")
		if err != nil {
			t.Fatal(err)
		}
		defer th.Stop()
		w := newWorker(t)
		var got any
		w.do(func() { got = panicOf(func() { th.Context().Poll(false) }) })
		want := homeMsg("Poll", w.tid, fmt.Sprintf("thread %d (IOThread home)", th.ThreadID()))
		if got != want {
			t.Fatalf("Poll of an IOThread's context from thread %d:\n got %v\nwant %s", w.tid, got, want)
		}
		// The IOThread still runs its context, on its own thread.
		tids := make(chan int, 1)
		th.Context().ScheduleOneshot(func() { tids <- unix.Gettid() })
		if tid := <-tids; tid != th.ThreadID() {
			t.Fatalf("a BH ran on thread %d, not on the IOThread's %d", tid, th.ThreadID())
		}
	})
	t.Run("MainLoop.Run", func(t *testing.T) {
		ml, _ := newMainLoop(t)
		runner, other := newWorker(t), newWorker(t)
		running := make(chan struct{})
		ml.AioContext().ScheduleOneshot(func() { close(running) })
		var runErr error
		done := runner.start(func() { runErr = ml.Run(context.Background()) })
		waitClosed(t, running, "MainLoop.Run")
		for _, c := range []*aiosource.Context{ml.AioContext(), ml.IOHandler()} {
			var got any
			other.do(func() { got = panicOf(func() { c.Poll(true) }) })
			if want := homeMsg("Poll", other.tid, fmt.Sprintf("thread %d (MainLoop.Run)", runner.tid)); got != want {
				t.Errorf("Poll of %s during Run:\n got %v\nwant %s", c.Source().Name(), got, want)
			}
		}
		ml.Quit()
		waitClosed(t, done, "Quit")
		if runErr != nil {
			t.Fatal(runErr)
		}
	})
	// A plain context, held only by the Poll on its thread, and one attached to GLib,
	// held by the dispatch on its thread.
	for _, glib := range []bool{false, true} {
		name := map[bool]string{false: "in Poll", true: "in GLib dispatch"}[glib]
		t.Run(name, func(t *testing.T) {
			mc := glibloop.NewMainContext()
			defer mc.Unref()
			c := newCtx(t)
			c.Attach(mc)
			home, other := newWorker(t), newWorker(t)
			entered, release := blockInCallback(c)
			done := home.start(func() {
				if glib {
					mc.Iteration(true)
				} else {
					c.Poll(true)
				}
			})
			waitClosed(t, entered, "the blocking BH")
			ran := false
			c.ScheduleOneshot(func() { ran = true })
			var got any
			other.do(func() { got = panicOf(func() { c.Poll(false) }) })
			if want := homeMsg("Poll", other.tid, fmt.Sprintf("thread %d", home.tid)); got != want {
				t.Errorf("Poll while thread %d is %s:\n got %v\nwant %s", home.tid, name, got, want)
			}
			close(release)
			waitClosed(t, done, "the home thread's walk")
			if ran {
				t.Fatal("the refused Poll ran a BH")
			}
			home.do(func() {
				for c.Poll(false) {
				}
			})
			if !ran {
				t.Fatal("the BH that the refused Poll left did not run on the home thread")
			}
		})
	}
}

// GLib dispatching the context on one thread while another thread is inside a Poll of
// it panics in the dispatch, before it runs anything; the panic comes out of the
// iteration as a *glibloop.PanicError, as a callback's would, and the Poll goes on.
func TestHomeThreadDispatchFromOtherThreadPanics(t *testing.T) {
	leakcheck.Handles(t)
	mc := glibloop.NewMainContext()
	defer mc.Unref()
	c := newCtx(t)
	c.Attach(mc)
	home, other := newWorker(t), newWorker(t)
	entered, release := blockInCallback(c)
	done := home.start(func() { c.Poll(true) })
	waitClosed(t, entered, "the blocking BH")
	ran := false
	c.ScheduleOneshot(func() { ran = true }) // makes the GSource ready
	var got any
	other.do(func() { got = panicOf(func() { mc.Iteration(false) }) })
	pe, ok := got.(*glibloop.PanicError)
	if want := homeMsg("dispatch", other.tid, fmt.Sprintf("thread %d", home.tid)); !ok || pe.Value != want {
		t.Fatalf("GLib dispatch while thread %d polls:\n got %#v\nwant a PanicError of %s", home.tid, got, want)
	}
	close(release)
	waitClosed(t, done, "the Poll")
	if ran {
		t.Fatal("the refused dispatch ran a BH")
	}
	home.do(func() {
		for c.Poll(false) {
		}
	})
	if !ran {
		t.Fatal("the BH that the refused dispatch left did not run")
	}
}

// A Poll nested in a callback on the home thread is fine, in every kind of driver: a
// Poll, a GLib dispatch, an IOThread and MainLoop.Run. Stats counts nested Polls too.
func TestHomeThreadNestedPoll(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		polls := m.ctx.Stats().Polls
		inner := false
		m.ctx.ScheduleOneshot(func() {
			m.ctx.ScheduleOneshot(func() { inner = true })
			if !m.ctx.Poll(false) {
				t.Error("the nested Poll made no progress")
			}
		})
		m.flush()
		if !inner {
			t.Fatal("the nested Poll did not run the inner BH")
		}
		if n := m.ctx.Stats().Polls - polls; m.glib && n != 1 || !m.glib && n < 2 {
			t.Fatalf("%d Polls counted", n)
		}
	})
	t.Run("IOThread", func(t *testing.T) {
		th, err := aiosource.NewIOThread("nested")
		if err != nil {
			t.Fatal(err)
		}
		defer th.Stop()
		done := make(chan bool)
		th.Context().ScheduleOneshot(func() {
			inner := false
			th.Context().ScheduleOneshot(func() { inner = true })
			th.Context().Poll(false)
			done <- inner
		})
		if !<-done {
			t.Fatal("a Poll nested in an IOThread's callback did not run the inner BH")
		}
	})
	t.Run("MainLoop.Run", func(t *testing.T) {
		ml, _ := newMainLoop(t)
		inner := false
		ml.AioContext().ScheduleOneshot(func() {
			ml.AioContext().ScheduleOneshot(func() { inner = true })
			ml.AioContext().Poll(false)
			ml.IOHandler().Poll(false)
			ml.Quit()
		})
		ctx, cancel := contextWithTimeout(10 * time.Second)
		defer cancel()
		if err := ml.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if !inner {
			t.Fatal("a Poll nested in a callback of MainLoop.Run did not run the inner BH")
		}
	})
}

// A context moves to a new driver once the old one has let go: Polls from one thread
// after another's, a MainLoop run on another thread after the first run returned (and
// Polled from the first thread meanwhile, which is refused, and after, which is not),
// Polls after GLib dispatched the context elsewhere. After an IOThread stops, its
// context is closed, and a Poll from any thread returns false.
func TestHomeThreadMovesToNewDriver(t *testing.T) {
	leakcheck.Handles(t)
	a, b := newWorker(t), newWorker(t)
	ranOn := func(c *aiosource.Context, w *worker) int {
		tid := 0
		c.ScheduleOneshot(func() { tid = unix.Gettid() })
		w.do(func() {
			for c.Poll(false) {
			}
		})
		return tid
	}
	t.Run("Poll", func(t *testing.T) {
		c := newCtx(t)
		for _, w := range []*worker{a, b, a} {
			if tid := ranOn(c, w); tid != w.tid {
				t.Fatalf("a BH polled by thread %d ran on %d", w.tid, tid)
			}
		}
	})
	t.Run("GLib then Poll", func(t *testing.T) {
		mc := glibloop.NewMainContext()
		defer mc.Unref()
		c := newCtx(t)
		c.Attach(mc)
		tid := 0
		c.ScheduleOneshot(func() { tid = unix.Gettid() })
		a.do(func() { mc.Iteration(false) })
		if tid != a.tid {
			t.Fatalf("dispatched on %d, want %d", tid, a.tid)
		}
		if tid := ranOn(c, b); tid != b.tid {
			t.Fatalf("polled on %d, want %d", tid, b.tid)
		}
		c.ScheduleOneshot(func() { tid = unix.Gettid() })
		a.do(func() { mc.Iteration(false) })
		if tid != a.tid {
			t.Fatalf("dispatched again on %d, want %d", tid, a.tid)
		}
	})
	t.Run("MainLoop.Run", func(t *testing.T) {
		ml, _ := newMainLoop(t)
		run := func(w *worker) (tid int) {
			ml.AioContext().ScheduleOneshot(func() { tid = unix.Gettid(); ml.Quit() })
			var err error
			w.do(func() { err = ml.Run(context.Background()) })
			if err != nil {
				t.Fatal(err)
			}
			return tid
		}
		if tid := run(a); tid != a.tid {
			t.Fatalf("first Run dispatched on %d, want %d", tid, a.tid)
		}
		if tid := run(b); tid != b.tid {
			t.Fatalf("Run on another thread dispatched on %d, want %d", tid, b.tid)
		}
		// While b runs the loop, a may not Poll; once b's Run has returned, it may.
		running := make(chan struct{})
		ml.AioContext().ScheduleOneshot(func() { close(running) })
		done := b.start(func() { ml.Run(context.Background()) })
		waitClosed(t, running, "Run on b")
		var got any
		a.do(func() { got = panicOf(func() { ml.AioContext().Poll(false) }) })
		if want := homeMsg("Poll", a.tid, fmt.Sprintf("thread %d (MainLoop.Run)", b.tid)); got != want {
			t.Fatalf("Poll during Run on another thread:\n got %v\nwant %s", got, want)
		}
		ml.Quit()
		waitClosed(t, done, "Quit")
		if tid := ranOn(ml.AioContext(), a); tid != a.tid {
			t.Fatalf("Poll after Run ran a BH on %d, want %d", tid, a.tid)
		}
	})
	t.Run("IOThread stopped", func(t *testing.T) {
		th, err := aiosource.NewIOThread("moved")
		if err != nil {
			t.Fatal(err)
		}
		if err := th.Stop(); err != nil {
			t.Fatal(err)
		}
		var got any
		progress := true
		a.do(func() { got = panicOf(func() { progress = th.Context().Poll(false) }) })
		if got != nil || progress {
			t.Fatalf("Poll of a stopped IOThread's context: panic %v, progress %v; want neither", got, progress)
		}
	})
}

// MainLoop.Run refuses to start while another thread drives one of its contexts: it
// returns an error that names both threads and that errors.Is matches with
// glibloop.ErrNotOwner, and runs normally once that thread has let go.
func TestMainLoopRunWhileAnotherThreadPolls(t *testing.T) {
	leakcheck.Handles(t)
	ml, _ := newMainLoop(t)
	for _, c := range []*aiosource.Context{ml.AioContext(), ml.IOHandler()} {
		home, runner := newWorker(t), newWorker(t)
		entered, release := blockInCallback(c)
		done := home.start(func() { c.Poll(true) })
		waitClosed(t, entered, "the blocking BH")
		var runErr error
		runner.do(func() { runErr = ml.Run(context.Background()) })
		close(release)
		waitClosed(t, done, "the Poll")
		name := c.Source().Name()
		want := "aiosource: MainLoop.Run: " + name + ": " + strings.TrimPrefix(homeMsg("", runner.tid, fmt.Sprintf("thread %d", home.tid)), "aiosource: : ")
		if runErr == nil || runErr.Error() != want || !errors.Is(runErr, glibloop.ErrNotOwner) {
			t.Fatalf("Run while %s is polled elsewhere:\n got %v\nwant %s (errors.Is ErrNotOwner)", name, runErr, want)
		}
		ml.AioContext().ScheduleOneshot(ml.Quit)
		runner.do(func() { runErr = ml.Run(context.Background()) })
		if runErr != nil {
			t.Fatalf("Run once the Poll returned: %v", runErr)
		}
	}
}

// Drivers that race: three threads Poll one context at once, over and over, each Poll
// refused or not. Every refusal is the home-thread panic, never two walks at once (a BH
// that sees another walk's BH running) and never a broken thread record (an index out
// of range in a later walk, a goroutine left locked). Each walk decides whether it nests
// from its own thread's record: a thread that read the home thread's record, then lost
// the context to another thread before it read the depth, took the other's walk for its
// own and nested in it.
func TestHomeThreadRacingDrivers(t *testing.T) {
	leakcheck.Handles(t)
	c := newCtx(t)
	var inside, overlaps, ran atomic.Int64
	bh := c.NewBH("racing", func() {
		if inside.Add(1) != 1 {
			overlaps.Add(1)
		}
		ran.Add(1)
		inside.Add(-1)
	})
	defer bh.Delete()
	const rounds = 20000
	var wrong atomic.Pointer[string]
	done := make([]<-chan struct{}, 3)
	workers := make([]*worker, 3)
	for i := range workers {
		workers[i] = newWorker(t)
		done[i] = workers[i].start(func() {
			for range rounds {
				bh.Schedule()
				r := panicOf(func() { c.Poll(false) })
				if s, ok := r.(string); r != nil && (!ok || !strings.HasPrefix(s, "aiosource: Poll: called on thread")) {
					msg := fmt.Sprint(r)
					wrong.Store(&msg)
					return
				}
			}
		})
	}
	for _, d := range done {
		waitClosed(t, d, "a racing driver")
	}
	if p := wrong.Load(); p != nil {
		t.Fatalf("a racing Poll panicked with something else than the home-thread conflict: %s", *p)
	}
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d BH runs overlapped another walk's", n)
	}
	// The context is whole: a fourth thread drives it, and Close finds nothing live.
	fresh := newWorker(t)
	bh.Schedule()
	before := ran.Load()
	fresh.do(func() { c.Poll(false) })
	if ran.Load() != before+1 {
		t.Fatal("a Poll after the race did not run the scheduled BH")
	}
	t.Logf("%d BH runs in %d Polls", ran.Load(), 3*rounds)
}
