// Package aiosource is QEMU's AioContext rebuilt in Go as a real GLib GSource: fd
// handlers, event notifiers, bottom halves, timers on four clocks, the notify_me wake
// handshake, a standalone Poll (aio_poll) with adaptive busy polling, and a thread pool
// whose completions run on the loop.
//
// A Context is driven either by GLib, once attached to a GMainContext (gtk.Main,
// g_main_loop_run, gotk3's loop, glibloop.Loop), or by its own Poll, for worker loops
// such as IOThread. The same semantics hold both ways; the package's tests run every
// scenario of QEMU's tests/unit/test-aio.c through both. MainLoop attaches the two
// contexts QEMU's main loop has, "aio-context" and "io-handler", to one GLib context.
//
// Names follow QEMU: BH (QEMUBH), Notify (aio_notify), Poll (aio_poll), SetFDHandler
// (aio_set_fd_handler), Timer.Mod (timer_mod), ScheduleOneshot
// (aio_bh_schedule_oneshot), Submit (thread_pool_submit_aio).
//
// Where QEMU would crash on misuse, this package is defined instead: using a BH after
// Delete, a timer or context after Close, scheduling from any goroutine at any time, all
// are safe no-ops or return ErrClosed; Close names what was left alive.
package aiosource
