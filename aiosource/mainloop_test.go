package aiosource_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/glibloop"
)

// NewMainLoop attaches aio-context before io-handler, as qemu_init_main_loop does: its
// source id is the smaller, and when both are ready in one GLib iteration, at the same
// priority, aio-context is dispatched first.
func TestMainLoopAttachOrder(t *testing.T) {
	leakcheck.Handles(t)
	ml, mc := newMainLoop(t)
	aio, ioh := ml.AioContext().Source(), ml.IOHandler().Source()
	if aio.Name() != "aio-context" || ioh.Name() != "io-handler" {
		t.Fatalf("source names %q, %q", aio.Name(), ioh.Name())
	}
	if aio.ID() == 0 || ioh.ID() == 0 || aio.ID() >= ioh.ID() {
		t.Fatalf("aio-context has source id %d, io-handler %d: want aio-context attached first", aio.ID(), ioh.ID())
	}
	if aio.Priority() != ioh.Priority() {
		t.Fatalf("priorities %d and %d", aio.Priority(), ioh.Priority())
	}
	var order []string
	// Scheduled in the opposite order, so that only the attach order decides.
	ml.IOHandler().ScheduleOneshot(func() { order = append(order, "io-handler") })
	ml.AioContext().ScheduleOneshot(func() { order = append(order, "aio-context") })
	if !mc.Iteration(false) {
		t.Fatal("the iteration dispatched nothing")
	}
	if len(order) != 2 || order[0] != "aio-context" {
		t.Fatalf("one iteration dispatched %v, want aio-context then io-handler", order)
	}
}

// flagSource is a GSource that is ready once its flag is set and, without it, has no
// timeout: only a wakeup of the loop makes GLib look at it again. It reports its
// prepares and dispatches.
type flagSource struct {
	flag       atomic.Bool
	prepared   chan struct{}
	dispatched chan struct{}
}

func newFlagSource(mc *glibloop.MainContext) *flagSource {
	f := &flagSource{prepared: make(chan struct{}, 1), dispatched: make(chan struct{}, 1)}
	s := glibloop.NewSource(f)
	s.Attach(mc)
	s.Unref()
	return f
}

func (f *flagSource) Prepare(*glibloop.Source) (bool, time.Duration) {
	select {
	case f.prepared <- struct{}{}:
	default:
	}
	return f.flag.Load(), -1
}

func (f *flagSource) Check(*glibloop.Source) bool { return f.flag.Load() }

func (f *flagSource) Dispatch(*glibloop.Source) bool {
	f.dispatched <- struct{}{}
	return false
}

// NotifyEvent is qemu_notify_event: it wakes MainLoop.Run from its wait, so that GLib
// prepares its sources again and sees state another goroutine changed; it makes a
// blocked Iteration(true) of the loop's GMainContext return, having dispatched (the BH
// of qemu_notify_bh), and a blocked Poll(true) of the main AioContext return progress.
func TestMainLoopNotifyEvent(t *testing.T) {
	leakcheck.Handles(t)
	t.Run("Run", func(t *testing.T) {
		ml, mc := newMainLoop(t)
		f := newFlagSource(mc)
		w := newWorker(t)
		var runErr error
		done := w.start(func() { runErr = ml.Run(context.Background()) })
		defer func() {
			ml.Quit()
			waitClosed(t, done, "Quit")
			if runErr != nil {
				t.Error(runErr)
			}
		}()
		<-f.prepared
		time.Sleep(10 * time.Millisecond) // let Run block in its wait (the test holds without)
		f.flag.Store(true)
		ml.NotifyEvent()
		select {
		case <-f.dispatched:
		case <-time.After(10 * time.Second):
			t.Fatal("NotifyEvent did not wake MainLoop.Run")
		}
	})
	t.Run("Iteration", func(t *testing.T) {
		ml, mc := newMainLoop(t)
		f := newFlagSource(mc)
		w := newWorker(t)
		// Attaching sources left GLib's own wakeup pending (g_main_context_add_poll
		// signals it): a first iteration consumes it.
		w.do(func() { mc.Iteration(false) })
		<-f.prepared
		var dispatched bool
		done := w.start(func() { dispatched = mc.Iteration(true) })
		<-f.prepared
		time.Sleep(10 * time.Millisecond) // let the iteration block in its poll
		stats := ml.AioContext().Stats()
		ml.NotifyEvent()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			mc.Wakeup()
			<-done
			t.Fatal("NotifyEvent did not wake a blocked Iteration(true)")
		}
		if !dispatched || ml.AioContext().Stats().BHs != stats.BHs+1 {
			t.Fatalf("the woken iteration: dispatched %v, BHs run %d; want the notify BH dispatched",
				dispatched, ml.AioContext().Stats().BHs-stats.BHs)
		}
	})
	t.Run("Poll", func(t *testing.T) {
		ml, _ := newMainLoop(t)
		w := newWorker(t)
		progress := false
		done := w.start(func() { progress = ml.AioContext().Poll(true) })
		time.Sleep(10 * time.Millisecond) // let the Poll block
		ml.NotifyEvent()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			ml.AioContext().Notify()
			<-done
			t.Fatal("NotifyEvent did not wake a blocked Poll(true) of the main AioContext")
		}
		if !progress {
			t.Fatal("Poll(true) woken by NotifyEvent reported no progress, want the notify BH's")
		}
	})
}
