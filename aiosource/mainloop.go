package aiosource

import (
	"context"
	"errors"
	"fmt"

	"github.com/glibaio/glibaio/glibloop"
)

// MainLoop is QEMU's main loop on a GLib context (qemu_init_main_loop): two
// AioContexts attached to it, the main one (source name "aio-context") for BHs, timers
// and block-layer style work, and the iohandler context ("io-handler") for the fd
// handlers of chardevs, sockets and signals. The iohandler context is dispatched only by
// the GLib loop, never by a nested Poll of the main context, so its handlers run only
// at the top level.
type MainLoop struct {
	mc   *glibloop.MainContext
	aio  *Context
	ioh  *Context
	loop *glibloop.Loop
}

// NewMainLoop creates both contexts and attaches them to m (nil: the default context),
// io-handler first, as QEMU does. Run drives m with glibloop's loop driver; gtk.Main or
// any other GLib loop on m drives the contexts just as well. If m was Unref'd, the error
// is glibloop.ErrContextGone (errors.Is), the error glibloop.Loop.Run gives for it; New's
// errors are returned as they are.
func NewMainLoop(m *glibloop.MainContext) (*MainLoop, error) {
	if m == nil {
		m = glibloop.DefaultContext()
	}
	if m.Native() == nil {
		return nil, fmt.Errorf("aiosource: NewMainLoop: %w", glibloop.ErrContextGone)
	}
	ioh, err := New()
	if err != nil {
		return nil, err
	}
	aio, err := New()
	if err != nil {
		ioh.Close()
		return nil, err
	}
	ioh.Source().SetName("io-handler")
	aio.Source().SetName("aio-context")
	if ioh.Attach(m) == 0 || aio.Attach(m) == 0 {
		ioh.Close()
		aio.Close()
		// Only an Unref racing with this call makes a new source fail to attach.
		return nil, fmt.Errorf("aiosource: NewMainLoop: attach: %w", glibloop.ErrContextGone)
	}
	return &MainLoop{mc: m, aio: aio, ioh: ioh, loop: glibloop.NewLoop(m)}, nil
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
// errors (glibloop.ErrNotOwner, glibloop.ErrContextGone, ...). As glibloop.Loop.Run
// does, it sets the calling OS thread's timer slack to 1 ns (QEMU's init_clocks()) and
// does not restore it; see Timer slack in the package documentation.
func (l *MainLoop) Run(ctx context.Context) error { return l.loop.Run(ctx) }

// Quit ends Run from any goroutine.
func (l *MainLoop) Quit() { l.loop.Quit() }

// Close closes both contexts and returns what they reported.
func (l *MainLoop) Close() error {
	return errors.Join(l.aio.Close(), l.ioh.Close())
}
