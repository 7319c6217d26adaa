package aiosource

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/glibloop"
)

// DefaultIOThreadPollMaxNS is the adaptive polling bound IOThreads start with, as QEMU's
// IOThread poll-max-ns.
const DefaultIOThreadPollMaxNS = 32768

// IOThread is a goroutine locked to its own OS thread that runs an AioContext with
// Poll(true), as QEMU's IOThread does. The context's GSource is attached to the thread's
// own GMainContext (pushed as its thread default) under the name "IO <id> aio-context".
// Schedule work onto it from anywhere through Context. The thread's timer slack is 1 ns
// from its start, as in QEMU, where every thread inherits it from init_clocks(); see
// Timer slack in the package documentation.
//
// The IOThread is its context's home thread for its whole life: a Poll of the context
// from any other thread panics (see the package documentation).
//
// Once MainContext has been called, the thread iterates its GMainContext instead of
// calling Poll, as QEMU's iothread_run switches to g_main_loop_run once
// iothread_get_g_main_context was called: GLib sources attached there (glibloop's
// NewSource, IdleAdd, TimeoutAdd, UnixFDAdd, or GIO's async calls made on the thread,
// which use its thread-default context) run on the IOThread, beside the AioContext,
// whose GSource GLib then dispatches.
type IOThread struct {
	id          string
	ctx         *Context
	gctx        *glibloop.MainContext
	running     atomic.Bool
	runGContext atomic.Bool  // MainContext was called: iterate gctx (run_gcontext)
	tid         atomic.Int64 // the OS thread the loop runs on; 0 once the loop has ended
	done        chan struct{}
	stop        sync.Once
	err         error
}

// NewIOThread starts an IOThread. A panic in one of its callbacks goes to the glibloop
// panic handler (glibloop.SetPanicHandler; by default it prints it and exits with
// status 2), and the thread keeps running.
//
// At the fd limit it fails with an error that wraps the syscall.Errno (errors.Is
// syscall.EMFILE) and leaves no fd behind. The thread's GMainContext needs an fd for
// its wakeup, and so does GLib's default context if nothing made it yet; GLib aborts
// the process when it cannot make one (g_wakeup_new calls g_error). So NewIOThread
// first makes sure two fds can be had: only another thread that takes the last fds
// between that check and GLib's can still make GLib abort.
func NewIOThread(id string) (*IOThread, error) {
	ctx, err := New()
	if err != nil {
		return nil, err
	}
	if err := ctx.SetPollParams(DefaultIOThreadPollMaxNS, 0, 0); err != nil {
		ctx.Close()
		return nil, err
	}
	// Two GLib wakeups may need an fd each: the thread's GMainContext, and GLib's
	// global default context, which g_main_context_push_thread_default makes if no one
	// has yet. Hold two fds, and hand each back just before GLib needs it.
	probe, err := reserveTwoFDs()
	if err != nil {
		ctx.Close()
		return nil, fmt.Errorf("aiosource: NewIOThread: GMainContext wakeup: %w", err)
	}
	unix.Close(probe[0])
	glibloop.DefaultContext() // g_main_context_default: made now if it was not
	unix.Close(probe[1])
	t := &IOThread{id: id, ctx: ctx, gctx: glibloop.NewMainContext(), done: make(chan struct{})}
	ctx.Source().SetName(fmt.Sprintf("IO %s aio-context", id))
	ctx.Attach(t.gctx)
	t.running.Store(true)
	started := make(chan struct{})
	go t.run(started)
	<-started
	return t, nil
}

func (t *IOThread) run(started chan<- struct{}) {
	defer close(t.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t.startThread() // timer slack 1 ns from the first callback on (timerslack.go)
	t.gctx.PushThreadDefault()
	defer t.gctx.PopThreadDefault()
	tid := unix.Gettid()
	t.tid.Store(int64(tid))
	// Forget the thread id when the loop ends, while the OS thread is still locked
	// (deferred calls run last-in first-out, so before UnlockOSThread): once unlocked,
	// the thread goes back to the scheduler, and a goroutine that later runs on it must
	// not be taken for the loop by Stop. That goroutine's load runs on the same OS
	// thread after this store, so it sees 0 (or a later value: there is none).
	defer t.tid.Store(0)
	// The thread is the context's home thread until the loop ends, as iothread_run
	// makes the context its current one (qemu_set_current_aio_context). Nothing else
	// can drive the context yet: NewIOThread has not returned it.
	if err := t.ctx.holdFor("IOThread "+t.id, tid); err != nil {
		panic("aiosource: IOThread: " + err.Error())
	}
	defer t.ctx.letGoFor()
	close(started)
	// iothread_run: aio_poll until stopped, or until someone asked for the GMainContext;
	// from then on iterate it, which dispatches the context through its GSource too.
	for t.running.Load() && !t.ctx.Closed() {
		if t.runGContext.Load() {
			t.iterate(t.gctx.Iteration)
		} else {
			t.iterate(t.ctx.Poll)
		}
	}
}

// iterate runs one blocking Poll, or GLib iteration, handing a callback's panic to the
// panic handler.
func (t *IOThread) iterate(fn func(blocking bool) bool) {
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(*glibloop.PanicError)
			if !ok {
				pe = &glibloop.PanicError{Value: r, Callback: "IOThread " + t.id}
			}
			glibloop.HandlePanic(pe)
		}
	}()
	fn(true)
}

// ID returns the thread's id.
func (t *IOThread) ID() string { return t.id }

// Context returns the thread's AioContext, for scheduling BHs, timers and fd handlers
// onto it from any goroutine.
func (t *IOThread) Context() *Context { return t.ctx }

// MainContext returns the thread's GMainContext (iothread_get_g_main_context), the same
// one on every call. From the first call on, the thread iterates it beside its
// AioContext, so that sources attached to it run on the IOThread. The IOThread owns the
// reference: the context lives until Stop, which destroys the sources still attached;
// take your own reference (glibloop.WrapMainContext) to keep it longer.
func (t *IOThread) MainContext() *glibloop.MainContext {
	if !t.runGContext.Swap(true) {
		t.ctx.Notify() // wake the Poll the thread may block in, as QEMU's aio_notify
	}
	return t.gctx
}

// ThreadID returns the OS thread id of the IOThread's loop (QEMU's query-iothreads
// thread-id), or 0 once the loop has ended.
func (t *IOThread) ThreadID() int { return int(t.tid.Load()) }

// ErrStopFromOwnThread is returned by Stop called from the IOThread's own callbacks,
// which would wait for itself forever.
var ErrStopFromOwnThread = errors.New("aiosource: IOThread.Stop called from the thread's own callback")

// Stop ends the thread (iothread_stop): a oneshot BH clears the running flag on the
// thread itself, which ends its Poll, or its GLib iteration once MainContext was
// called; then Stop waits for the thread and closes the context, returning what Close
// reported. Stop from the thread's own callbacks is refused with ErrStopFromOwnThread;
// stopping twice returns the first result. If the context was closed directly, the
// thread has already ended and Stop only waits for it.
func (t *IOThread) Stop() error {
	// While the loop runs, its goroutine is locked to the thread t.tid, and no other
	// goroutine runs there: an equal id means the caller is one of the loop's callbacks.
	if int64(unix.Gettid()) == t.tid.Load() {
		return ErrStopFromOwnThread
	}
	t.stop.Do(func() {
		t.ctx.ScheduleOneshot(func() { t.running.Store(false) })
		<-t.done
		t.err = t.ctx.Close()
		if errors.Is(t.err, ErrClosed) {
			t.err = nil
		}
		t.gctx.Unref()
	})
	return t.err
}
