package glibloop

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/glibaio/glibaio/cshim"
)

// Errors returned by Loop.Run. A ppoll failure other than EINTR ends Run with an
// *os.SyscallError that wraps the errno.
var (
	// ErrNotOwner: another thread owns the context.
	ErrNotOwner = errors.New("glibloop: the main context is owned by another thread")
	// ErrContextGone: the context was Unref'd.
	ErrContextGone = errors.New("glibloop: the main context was unref'd")
)

// Loop drives a MainContext the way QEMU's main loop drives GLib (main_loop_wait):
// each iteration is prepare, query (growing the fd array until GLib's answer fits), one
// ppoll with a nanosecond timeout that is retried with the remaining time on EINTR, check
// and dispatch. The whole iteration runs in C, so a loop with nothing to do never
// crosses into Go. It is a drop-in for GMainLoop: sources cannot tell the difference.
type Loop struct {
	ctx *MainContext

	mu    sync.Mutex
	runs  []*cshim.Loop // one per active (possibly nested) Run
	iters atomic.Uint64
}

// NewLoop returns a loop driver for c (nil: the default context).
func NewLoop(c *MainContext) *Loop {
	if c == nil {
		c = DefaultContext()
	}
	return &Loop{ctx: c}
}

// Context returns the context the loop drives.
func (l *Loop) Context() *MainContext { return l.ctx }

// Run drives the context until Quit is called from any goroutine or ctx is done, and
// returns nil or ctx's error. It locks the calling goroutine to its OS thread and owns
// the context while it runs; if another thread owns it, Run returns ErrNotOwner at once.
// Run nests: a callback may call Run again, and Quit ends every active Run of this Loop,
// as g_main_loop_quit does. A Quit that comes before Run starts is forgotten, as in GLib;
// use ctx to stop a loop that may not have started yet. A callback's panic is raised
// again from Run as a *PanicError.
//
// Once it owns the context, Run sets the calling OS thread's timer slack to 1 ns
// (prctl(PR_SET_TIMERSLACK, 1)), as QEMU's init_clocks() does for its main loop, so a
// ppoll timeout ends when it is due instead of up to the kernel's default slack (50 µs)
// later. The syscall is made once per OS thread: a later Run on the same thread costs a
// thread-local load. Like QEMU, Run does not restore the slack on return: the thread
// keeps 1 ns for the rest of its life, also after Run unlocks it and other goroutines run
// there, and threads it creates inherit it (prctl(2)). A slack the program sets on the
// thread afterwards stays; glibaio does not set it again. Iteration and foreign drivers
// (gtk_main) leave the slack alone.
func (l *Loop) Run(ctx context.Context) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p := l.ctx.Native()
	if p == nil {
		return ErrContextGone
	}
	// Hold the context for the run, as GMainLoop does: an Unref meanwhile must not free
	// what Run owns and polls.
	own := WrapMainContext(p)
	defer own.Unref()
	st := cshim.NewLoop()
	defer func() { l.iters.Add(st.Iterations()); st.Free() }()
	l.mu.Lock()
	l.runs = append(l.runs, st)
	l.mu.Unlock()
	defer l.forget(st)

	if ctx != nil && ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, func() { l.quitOne(st, p) })
		defer stop()
	}
	notOwner, errno, pe := st.Run(p, 0)
	raise(pe)
	switch {
	case notOwner:
		return ErrNotOwner
	case errno != 0:
		return os.NewSyscallError("ppoll", errno)
	}
	if ctx != nil {
		return ctx.Err()
	}
	return nil
}

// quitOne ends one Run. The state stays allocated until that Run returns, and Run
// removes it from l.runs under l.mu before freeing it.
func (l *Loop) quitOne(st *cshim.Loop, p unsafe.Pointer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.runs {
		if r == st {
			st.Quit()
			(&MainContext{ptr: p}).Wakeup()
			return
		}
	}
}

func (l *Loop) forget(st *cshim.Loop) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, r := range l.runs {
		if r == st {
			l.runs = append(l.runs[:i], l.runs[i+1:]...)
			return
		}
	}
}

// Quit ends every active Run of the loop after its current iteration. Any goroutine may
// call it.
func (l *Loop) Quit() {
	l.mu.Lock()
	for _, r := range l.runs {
		r.Quit()
	}
	n := len(l.runs)
	l.mu.Unlock()
	if n > 0 {
		l.ctx.Wakeup()
	}
}

// IsRunning reports whether some Run of the loop is active.
func (l *Loop) IsRunning() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.runs) > 0
}

// Iterations reports how many iterations all Runs of the loop have completed so far,
// counting a Run's iterations when it returns.
func (l *Loop) Iterations() uint64 { return l.iters.Load() }
