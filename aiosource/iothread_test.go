package aiosource_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

// Stop from the IOThread's own callback is refused instead of deadlocking; a context
// closed directly ends the thread, and Stop then returns at once.
func TestIOThreadStopEdges(t *testing.T) {
	leakcheck.Handles(t)
	th, err := aiosource.NewIOThread("edge")
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	th.Context().ScheduleOneshot(func() { res <- th.Stop() })
	select {
	case err := <-res:
		if !errors.Is(err, aiosource.ErrStopFromOwnThread) {
			t.Fatalf("Stop from its own thread = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop from the thread's own callback deadlocked")
	}
	if err := th.Stop(); err != nil {
		t.Fatal(err)
	}

	th2, _ := aiosource.NewIOThread("closed-directly")
	th2.Context().ScheduleOneshot(func() { th2.Context().Close() }) // from its own thread
	stopped := make(chan error, 1)
	go func() { stopped <- th2.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop hung after the context was closed directly")
	}
}

// MainContext returns the IOThread's GMainContext (iothread_get_g_main_context), and
// from then on the thread iterates it: GLib sources attached there, GLib's own (idle,
// timeout, unix fd) and Go-defined ones, run on the IOThread's OS thread, beside the
// AioContext's BHs, timers and fd handlers, which still run there too. It is the
// thread's default context, so GLib code on the thread finds it. Stop ends the thread
// promptly and releases everything.
func TestIOThreadMainContext(t *testing.T) {
	leakcheck.Handles(t)
	th, err := aiosource.NewIOThread("gcontext")
	if err != nil {
		t.Fatal(err)
	}
	mc := th.MainContext()
	if mc2 := th.MainContext(); mc2 != mc || mc.Native() == nil {
		t.Fatalf("MainContext returned %p then %p", mc, mc2)
	}
	home := th.ThreadID()
	if home == 0 || home == unix.Gettid() {
		t.Fatalf("ThreadID = %d", home)
	}
	ran := make(chan string, 16)
	check := func(what string) {
		if tid := unix.Gettid(); tid != home {
			ran <- fmt.Sprintf("%s ran on thread %d, not on the IOThread's %d", what, tid, home)
			return
		}
		ran <- ""
	}
	glibloop.IdleAdd(mc, func() bool { check("an idle source"); return false })
	glibloop.TimeoutAdd(mc, time.Millisecond, func() bool { check("a timeout source"); return false })
	n, err := aiosource.NewEventNotifier(true)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	glibloop.UnixFDAdd(mc, n.FD(), glibloop.IOIn, func(int, glibloop.IOCondition) bool {
		check("a unix fd source")
		return false
	})
	src := glibloop.NewSource(dispatchFunc(func(s *glibloop.Source) bool { check("a Go-defined source"); return false }))
	src.SetReadyTime(0)
	src.Attach(mc)
	src.Unref()
	// The AioContext still runs on the thread: a BH, a timer and an fd handler.
	c := th.Context()
	c.ScheduleOneshot(func() {
		check("a BH")
		// GLib code on the thread finds the context as its thread default.
		def := glibloop.ThreadDefaultContext()
		defer def.Unref()
		if def.Native() != mc.Native() {
			ran <- "the IOThread's thread-default context is not its MainContext"
			return
		}
		glibloop.IdleAdd(def, func() bool { check("an idle source added on the thread"); return false })
	})
	var tm *aiosource.Timer
	tm = c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { check("a timer"); tm.Del() })
	tm.ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + int64(time.Millisecond))
	e, err := aiosource.NewEventNotifier(false)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := c.SetEventNotifier(e, func(e *aiosource.EventNotifier) { e.TestAndClear(); check("an event notifier") }); err != nil {
		t.Fatal(err)
	}
	e.Set()
	for i := 0; i < 8; i++ {
		select {
		case msg := <-ran:
			if msg != "" {
				t.Error(msg)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of 8 callbacks ran in 10 s: the IOThread does not iterate its GMainContext", i)
		}
	}
	c.SetEventNotifier(e, nil)
	start := time.Now()
	if err := th.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Stop took %v in GLib mode", d)
	}
	if th.ThreadID() != 0 {
		t.Fatal("a stopped IOThread still reports a thread id")
	}
}

// dispatchFunc is a glibloop source made of a Dispatch function.
type dispatchFunc func(s *glibloop.Source) bool

func (f dispatchFunc) Dispatch(s *glibloop.Source) bool { return f(s) }

// Stop ends the thread promptly in both of its modes: while it Polls, while it iterates
// its GMainContext, and just after MainContext asked it to switch; so does a Close of
// its context from its own callback. Panics of GLib sources on the thread go to the
// panic handler, and the thread carries on.
func TestIOThreadStopInBothModes(t *testing.T) {
	leakcheck.Handles(t)
	for _, mode := range []string{"Poll", "GLib", "switching"} {
		t.Run(mode, func(t *testing.T) {
			th, err := aiosource.NewIOThread("stop-" + mode)
			if err != nil {
				t.Fatal(err)
			}
			switch mode {
			case "GLib":
				idle := make(chan struct{})
				glibloop.IdleAdd(th.MainContext(), func() bool { close(idle); return false })
				waitClosed(t, idle, "the IOThread's GLib iteration")
			case "switching":
				th.MainContext()
			}
			time.Sleep(time.Millisecond) // let the thread block
			stopped := make(chan struct{})
			var stopErr error
			go func() { stopErr = th.Stop(); close(stopped) }()
			waitClosed(t, stopped, "Stop")
			if stopErr != nil {
				t.Fatal(stopErr)
			}
		})
	}
	t.Run("closed directly in GLib mode", func(t *testing.T) {
		th, err := aiosource.NewIOThread("close-glib")
		if err != nil {
			t.Fatal(err)
		}
		glibloop.IdleAdd(th.MainContext(), func() bool { th.Context().Close(); return false })
		stopped := make(chan struct{})
		go func() { th.Stop(); close(stopped) }()
		waitClosed(t, stopped, "Stop after the context was closed on the thread")
	})
	t.Run("panic in a GLib source", func(t *testing.T) {
		got := make(chan *glibloop.PanicError, 1)
		old := glibloop.SetPanicHandler(func(pe *glibloop.PanicError) { got <- pe })
		defer func() { glibloop.SetPanicHandler(old) }()
		th, err := aiosource.NewIOThread("glib-panic")
		if err != nil {
			t.Fatal(err)
		}
		defer th.Stop()
		glibloop.IdleAdd(th.MainContext(), func() bool { panic("idle-boom") })
		select {
		case pe := <-got:
			if pe.Value != "idle-boom" {
				t.Fatalf("the panic handler got %v", pe.Value)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the panic never reached the handler")
		}
		after := make(chan struct{})
		th.Context().ScheduleOneshot(func() { close(after) })
		waitClosed(t, after, "a BH after the panic")
	})
}
