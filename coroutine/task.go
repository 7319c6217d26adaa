// Package coroutine runs sequential Go code on a GLib or QEMU-style event loop's own
// thread: a Task is an aiosource.Coroutine with waits that read top to bottom. Inside
// a Task, code awaits thread-pool work, file I/O on io_uring (ReadAt, WriteAt, Fsync),
// sleeps on a timer, waits for an fd or for a value from a Go channel, and at every
// wait the loop goes on with everything else. All
// of it runs on the thread that drives the loop, so GTK's rule (widgets only from the
// GTK thread) holds everywhere in the Task: no goroutine, no IdleAdd closure per step.
// gtk-rs calls this MainContext::spawn_local; Python has asyncio on GLib.
//
// A Task honours context.Context cancellation: once its context is done, the Task's
// current wait, or its next one, returns the context's error.
//
// QEMU's coroutine API itself (Coroutine, Yield, CoMutex, CoQueue, CoRwlock, SubmitCo,
// CoSleepNS, aio_co_wake and aio_co_schedule) lives in package aiosource, because it
// is woven into the AioContext's walks and bottom halves; this package builds on its
// public API only.
package coroutine

import (
	"context"
	"errors"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

// Task is one coroutine started by Go: its code, its context and its result.
type Task struct {
	ctx  context.Context
	ac   *aiosource.Context
	co   *aiosource.Coroutine
	fn   func(*Task) error
	done chan struct{}
	err  error // fn's result, set before done is closed
}

// Go starts fn as a coroutine on the AioContext ac and returns at once: fn begins in
// ac's next BH pass, on the thread that drives ac (GTK's thread when ac is attached
// to GTK's GMainContext: see aiosource.NewMainLoop and package glibloop/gotk3). Go is
// safe from any goroutine and from any callback. fn's waits return ctx's error once
// ctx is done. A panic in fn is raised by the loop that runs it, as a
// *glibloop.PanicError, and the Task ends with that error. On a closed context the
// Task ends at once with aiosource.ErrClosed. To shut a loop down cleanly, cancel its
// Tasks' contexts and let the loop run until they are Done, while its driver still
// runs (before gtk.Main or MainLoop.Run returns): a Task resumes only at the callback
// level it began at (see Callback levels in package aiosource), so one still waiting
// when its driver returns, or when its context closes, never resumes.
func Go(ctx context.Context, ac *aiosource.Context, fn func(t *Task) error) *Task {
	if ctx == nil || ac == nil || fn == nil {
		panic("coroutine: Go: nil argument")
	}
	t := &Task{ctx: ctx, ac: ac, fn: fn, done: make(chan struct{})}
	if ac.Closed() {
		t.err = aiosource.ErrClosed
		close(t.done)
		return t
	}
	t.co = aiosource.NewCoroutine(t.run)
	ac.CoSchedule(t.co)
	return t
}

func (t *Task) run(*aiosource.Coroutine) {
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(*glibloop.PanicError)
			if !ok {
				pe = &glibloop.PanicError{Value: r, Stack: debug.Stack(), Callback: "coroutine.Task"}
			}
			t.err = pe
			close(t.done)
			panic(pe)
		}
	}()
	t.err = t.fn(t)
	close(t.done)
}

// Context returns the Task's context.
func (t *Task) Context() context.Context { return t.ctx }

// Done is closed when the Task's function has returned (or panicked).
func (t *Task) Done() <-chan struct{} { return t.done }

// Err returns the Task's result once Done is closed, and nil before.
func (t *Task) Err() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}

// Wait blocks the calling goroutine until the Task has finished and returns its
// result. Never call it on the Task's own loop thread: the loop could not run the Task.
func (t *Task) Wait() error {
	<-t.done
	return t.err
}

// waiter is one wait of a Task: whichever of its wake sources comes first resumes the
// coroutine, once. Each wait has its own, so a late wake of an old wait is harmless.
type waiter struct {
	co    *aiosource.Coroutine
	woken atomic.Bool
}

// wake resumes the coroutine: at once from a callback of its loop, through a BH from
// anywhere else (aio_co_wake).
func (w *waiter) wake() {
	if w.woken.CompareAndSwap(false, true) {
		w.co.Wake()
	}
}

// begin checks that the caller is the Task's coroutine and starts a wait.
func (t *Task) begin(op string) (*waiter, error) {
	if aiosource.Self() != t.co {
		panic("coroutine: " + op + ": called outside the Task's own coroutine")
	}
	if err := t.ctx.Err(); err != nil {
		return nil, err
	}
	return &waiter{co: t.co}, nil
}

// block yields until w is woken by one of its sources or by the Task's context.
func (t *Task) block(w *waiter) {
	stop := context.AfterFunc(t.ctx, w.wake)
	t.co.Yield()
	stop()
}

// Sleep suspends the Task for d, on a timer of its loop (ClockRealtime, as QEMU's
// qemu_co_sleep_ns on QEMU_CLOCK_REALTIME). It returns the context's error if the
// context is done first.
func (t *Task) Sleep(d time.Duration) error {
	w, err := t.begin("Sleep")
	if err != nil {
		return err
	}
	tm := t.ac.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, w.wake)
	tm.ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + int64(d))
	t.block(w)
	tm.Del()
	return t.ctx.Err()
}

// Await runs work on the loop's thread pool and suspends the Task until it has
// finished, returning work's error (thread_pool_submit_co). If the context is done
// first, Await returns its error at once: work that had not started is cancelled, and
// work already running finishes on its own, its result dropped.
func (t *Task) Await(work func() error) error {
	w, err := t.begin("Await")
	if err != nil {
		return err
	}
	var res error
	finished := false
	req := t.ac.SubmitAIO(work, func(err error) { res, finished = err, true; w.wake() })
	if !finished { // SubmitAIO after Close completes at once
		t.block(w)
	}
	if !finished {
		req.Cancel()
		return t.ctx.Err()
	}
	return res
}

// WaitReadable suspends the Task until fd is readable (or has hung up or failed); it
// returns the error of registering fd, or the context's error. fd must have no other
// handler on the Task's loop while the Task waits: the wait takes fd's handler slot.
func (t *Task) WaitReadable(fd int) error {
	return t.waitFD("WaitReadable", fd, false)
}

// WaitWritable suspends the Task until fd is writable, as WaitReadable.
func (t *Task) WaitWritable(fd int) error {
	return t.waitFD("WaitWritable", fd, true)
}

func (t *Task) waitFD(op string, fd int, write bool) error {
	w, err := t.begin(op)
	if err != nil {
		return err
	}
	h := aiosource.FDHandler{Read: w.wake}
	if write {
		h = aiosource.FDHandler{Write: w.wake}
	}
	if err := t.ac.SetFDHandler(fd, h); err != nil {
		return err
	}
	t.block(w)
	if err := t.ac.SetFDHandler(fd, aiosource.FDHandler{}); err != nil && !errors.Is(err, aiosource.ErrClosed) {
		return err
	}
	return t.ctx.Err()
}

// Recv suspends the Task until a value arrives on ch, which a goroutine sends, and
// returns it; ok is false if ch was closed. If the context is done first it returns
// its error, and no value is taken from ch. Meanwhile one goroutine waits on ch for
// the Task; it ends with the wait.
func Recv[T any](t *Task, ch <-chan T) (v T, ok bool, err error) {
	w, err := t.begin("Recv")
	if err != nil {
		return v, false, err
	}
	got := false
	go func() {
		select {
		case v, ok = <-ch:
			got = true // published to the Task by the wake (a BH on its loop)
		case <-t.ctx.Done():
		}
		w.wake()
	}()
	t.co.Yield() // only the goroutine wakes it: one outcome, nothing lost
	if !got {
		return v, false, t.ctx.Err()
	}
	return v, ok, nil
}
