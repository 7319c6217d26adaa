package aiosource

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/glibaio/glibaio/glibloop"
)

// MainLoop is QEMU's main loop on a GLib context (qemu_init_main_loop): two
// AioContexts attached to it, the main one (source name "aio-context") for BHs, timers
// and block-layer style work, and the iohandler context ("io-handler") for the fd
// handlers of chardevs, sockets and signals. The iohandler context is dispatched only by
// the GLib loop, never by a nested Poll of the main context, so its handlers run only
// at the top level.
type MainLoop struct {
	mc     *glibloop.MainContext
	aio    *Context
	ioh    *Context
	loop   *glibloop.Loop
	notify *BH // qemu_notify_bh: NotifyEvent schedules it
}

// NewMainLoop creates both contexts and attaches them to m (nil: the default context),
// aio-context first and io-handler second, as qemu_init_main_loop does: the two have
// the default priority, so when both are ready in one GLib iteration, aio-context is
// dispatched first. Run drives m with glibloop's loop driver; gtk.Main or any other GLib
// loop on m drives the contexts just as well. If m was Unref'd, the error is
// glibloop.ErrContextGone (errors.Is), the error glibloop.Loop.Run gives for it; New's
// errors are returned as they are.
func NewMainLoop(m *glibloop.MainContext) (*MainLoop, error) {
	if m == nil {
		m = glibloop.DefaultContext()
	}
	if m.Native() == nil {
		return nil, fmt.Errorf("aiosource: NewMainLoop: %w", glibloop.ErrContextGone)
	}
	aio, err := New()
	if err != nil {
		return nil, err
	}
	ioh, err := New()
	if err != nil {
		aio.Close()
		return nil, err
	}
	aio.Source().SetName("aio-context")
	ioh.Source().SetName("io-handler")
	if aio.Attach(m) == 0 || ioh.Attach(m) == 0 {
		aio.Close()
		ioh.Close()
		// Only an Unref racing with this call makes a new source fail to attach.
		return nil, fmt.Errorf("aiosource: NewMainLoop: attach: %w", glibloop.ErrContextGone)
	}
	l := &MainLoop{mc: m, aio: aio, ioh: ioh, loop: glibloop.NewLoop(m)}
	// qemu_notify_bh: a BH that does nothing; running it is the point (notify_event_cb).
	l.notify = aio.NewBH("qemu_notify_event", func() {})
	return l, nil
}

// AioContext returns the main AioContext, source "aio-context" (qemu_get_aio_context).
func (l *MainLoop) AioContext() *Context { return l.aio }

// IOHandler returns the iohandler context, source "io-handler" (iohandler_get_aio_context).
func (l *MainLoop) IOHandler() *Context { return l.ioh }

// MainContext returns the GLib context the loop is attached to.
func (l *MainLoop) MainContext() *glibloop.MainContext { return l.mc }

// SetFDHandler registers read and write for fd on the iohandler context
// (qemu_set_fd_handler); both nil removes it.
func (l *MainLoop) SetFDHandler(fd int, read, write func()) error {
	return l.ioh.SetFDHandler(fd, FDHandler{Read: read, Write: write})
}

// Run drives the GLib context until Quit or ctx is done (glibloop.Loop.Run), and returns
// what glibloop.Loop.Run returns, as it is: nil, ctx's error, or one of Loop.Run's
// errors (glibloop.ErrNotOwner, glibloop.ErrContextGone, ...).
//
// Run locks the calling goroutine to its OS thread, which is the home thread of both
// contexts until Run returns, as QEMU's main thread is the home thread of the main
// AioContext: a Poll of either from another thread panics meanwhile, and a callback
// may Poll them (a nested event loop). If another thread drives one of the contexts
// when Run starts (in a Poll, say), Run returns at once an error that names both
// threads, which errors.Is matches with glibloop.ErrNotOwner. Once Run has returned,
// the loop may run again on any goroutine. As glibloop.Loop.Run does, Run sets the
// calling OS thread's timer slack to 1 ns (QEMU's init_clocks()) and does not restore
// it; see Timer slack in the package documentation.
func (l *MainLoop) Run(ctx context.Context) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, c := range [...]*Context{l.aio, l.ioh} {
		if err := c.holdFor("MainLoop.Run", 0); err != nil {
			return fmt.Errorf("aiosource: MainLoop.Run: %s: %w", c.Source().Name(), err)
		}
		defer c.letGoFor()
	}
	return l.loop.Run(ctx)
}

// Quit ends Run from any goroutine.
func (l *MainLoop) Quit() { l.loop.Quit() }

// NotifyEvent is qemu_notify_event: it kicks the main loop, so that a Run blocked in its
// wait, or any blocking GLib iteration of the loop's GMainContext, or a blocking Poll of
// the main AioContext, wakes up and goes round once more, re-evaluating what it waits
// for (a GSource whose prepare looks at state that another goroutine just changed,
// say). As in QEMU, it schedules a BH on the main AioContext that does nothing
// (qemu_notify_bh): scheduling it is aio_notify's kick, and running it makes the
// iteration it wakes dispatch (Iteration returns true, Poll reports progress). Any
// goroutine may call it; calls made before the loop wakes up coalesce into one.
func (l *MainLoop) NotifyEvent() { l.notify.Schedule() }

// Close closes both contexts and returns what they reported.
func (l *MainLoop) Close() error {
	l.notify.Delete()
	return errors.Join(l.aio.Close(), l.ioh.Close())
}
