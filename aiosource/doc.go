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
// (aio_bh_schedule_oneshot), Submit and SubmitAIO (thread_pool_submit_aio),
// Request.Cancel (thread_pool_cancel, through bdrv_aio_cancel_async), SetThreadPoolParams
// (aio_context_set_thread_pool_params).
//
// # Errors and misuse
//
// A mistake in an argument panics at the call that makes it, with a message that names
// the argument, as the standard library does: a nil callback (NewBH, ScheduleOneshot,
// NewTimer, Submit's work), an invalid ClockType or a scale that is not positive. QEMU
// asserts on each. Conditions of a running program are errors instead: a setter given
// an out-of-range value (SetPollParams, SetThreadPoolSize) returns one that matches
// os.ErrInvalid, a closed or exhausted fd returns a syscall.Errno (wrapped, so
// errors.Is works), and use after Close returns ErrClosed. Using a BH after Delete, a
// timer after Close, or scheduling from any goroutine at any time are harmless no-ops;
// Close names what was left alive. Every message starts with "aiosource: ".
//
// # Timer slack
//
// QEMU's init_clocks() sets the timer slack of its main thread to 1 ns
// (prctl(PR_SET_TIMERSLACK, 1)), and every thread QEMU creates later inherits it.
// Without it the kernel may end a ppoll or epoll_wait timeout up to the default slack,
// 50 µs, late; timerfd expiries get no slack. Linux keeps the slack per thread, and a
// Go program does not choose the threads its goroutines run on, so glibaio sets it on
// each thread that waits for a context: when glibloop.Loop.Run or MainLoop.Run starts
// driving, when an IOThread's thread starts, and before the first wait of Poll(true) on
// any thread. Each OS thread makes the syscall once; afterwards the check is one
// thread-local load, so no Poll pays for it. As in QEMU the slack is never restored:
// the thread keeps 1 ns for the rest of its life, also once Run or Poll has returned
// and other goroutines run there, and threads it creates inherit it. A slack the program
// sets on such a thread afterwards stays. Poll(false), glibloop.MainContext.Iteration
// and foreign drivers (gtk_main) leave it alone; a program that drives a context that
// way can set it on the driving thread with unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0,
// 0). A context's timers do not depend on it, under GLib or under Poll: their waits end
// on the context's timerfd, not on a poll timeout (see Poll). It still matters for the
// thread's other timed waits, such as a GLib timeout source under glibloop.Loop.Run.
//
// # Home thread
//
// As in QEMU, one thread drives a context: its home thread, the one where its
// callbacks run (QEMU's in_aio_context_home_thread). Goroutines move between OS threads
// from one call to the next, so here the home thread is the thread that drives the
// context now, and it holds the context for as long as it drives it: an IOThread for
// its whole life; MainLoop.Run, for both of its contexts, for the whole run (as the
// thread that owns the GMainContext); otherwise each Poll, and each GLib dispatch of the
// context's GSource, for the duration of the call, so that once the call has returned,
// any thread may drive the context next. A Poll or a GLib dispatch on another thread
// while the home thread drives the context panics with a message that names both
// threads by their OS thread ids ("aiosource: Poll: called on thread N, but the
// context's home thread, thread M (IOThread x), is driving it: ..."); the dispatch's
// panic comes out of the GLib iteration as a *glibloop.PanicError. MainLoop.Run
// returns such an error instead. A Poll nested in a callback, on the home thread, is
// fine. When foreign code such as gtk_main iterates the GMainContext, the context is
// held only while GLib dispatches it: run the loop with MainLoop.Run to have its home
// thread held between dispatches too. The check costs no syscall and, per outermost
// call, one atomic addition.
//
// # Units
//
// Timers count in QEMU's units: int64 nanoseconds on a ClockType, and a timer's scale
// (ScaleNS, ScaleUS, ScaleMS) for Mod, as timer_mod does. Poll parameters are ns, as
// QEMU's poll-max-ns is. Durations that are Go's own (SetThreadPoolGrace) are
// time.Duration.
package aiosource
