// Package aiosource is QEMU's AioContext rebuilt in Go as a real GLib GSource: fd
// handlers, event notifiers, bottom halves, timers on four clocks, the notify_me wake
// handshake, a standalone Poll (aio_poll) with adaptive busy polling, a thread pool
// whose completions run on the loop, and file I/O on io_uring (QEMU's aio=io_uring).
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
// (aio_context_set_thread_pool_params). Coroutines too: NewCoroutine
// (qemu_coroutine_create), Coroutine.Enter, Yield, Self, InCoroutine, CoEnter
// (aio_co_enter), Coroutine.Wake (aio_co_wake), CoSchedule (aio_co_schedule),
// RescheduleSelf, CoMutex, CoQueue, CoRwlock, CoSleepNS and SubmitCo
// (thread_pool_submit_co). File I/O: ReadAt, WriteAt, Fsync and Fdatasync, and for
// coroutines ReadAtCo, WriteAtCo, FsyncCo and FdatasyncCo (block/io_uring.c's
// luring_co_submit), AIOEngine (aio=io_uring or aio=threads).
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
// call, two atomic additions: its entry, which is also the count Stats reports, and its
// exit.
//
// # Coroutines
//
// A Coroutine runs on a Go runtime coroutine, the mechanism behind iter.Pull: entering
// and yielding switch goroutines without the scheduler, on the entering OS thread, in
// about 0.1-0.2 µs. The coroutine API lives in this package, not above it, because it
// is woven into the context: aio_co_schedule needs each context's BH, the current
// context is the one whose walk (Poll, GLib dispatch or driver) is active on the
// thread, and the ends of those walks run coroutines parked for their level and retire
// pooled workers. Package coroutine builds sequential Go tasks for GLib and GTK
// programs on top of it.
//
// Callback levels. Go's runtime switches to a runtime coroutine only at the thread
// locking state at which it was made: the same OS thread, the same count of
// runtime.LockOSThread, and the same nesting of C-to-Go callbacks; anything else is a
// fatal error ("coro: OS thread locking must match locking at coroutine creation").
// glibaio keeps the count constant inside its walks and coroutines (a walk or enter
// nested on a thread does not add to it). The callback nesting changes only when C
// calls back into Go: a GLib iteration inside a callback (a nested g_main_loop_run,
// gtk_dialog_run) dispatches one level deeper, while a Poll nested in a callback, or
// code in a coroutine, stays at the caller's level. So a Coroutine is bound to the OS
// thread and callback level of its first entry, and a wake that arrives at another
// level parks it: it runs when a walk of its level ends, on its thread, typically once
// the nested loop has returned. A coroutine of a context that is woken on another
// thread is scheduled on its context (CoSchedule), never run on the wrong thread. A
// coroutine that yields from a C callback inside itself (a nested GLib iteration in a
// coroutine) breaks the rule, and the runtime ends the program: yield at the
// coroutine's own level. Do not change the goroutine's own LockOSThread count between
// a coroutine's switches either.
//
// The pool. A finished coroutine's worker goroutine is kept, per thread and level, for
// the next NewCoroutine: create, run and finish allocate nothing in steady state. A
// pooled worker can be retired only at its level, so the pool of a level is emptied
// when the last walk at that level on the thread ends: an IOThread keeps its pool for
// its whole life, a Poll driver or a GLib dispatch for the duration of the walk (a
// MainLoop.Run, whose dispatches are one C callback deeper than Run itself, for each
// dispatch). No worker goroutine outlives its thread's walks; a coroutine that is
// suspended forever keeps its goroutine, as QEMU keeps its stack.
//
// Unlike QEMU, Self returns nil outside coroutines (QEMU returns the thread's leader),
// and a coroutine entered outside every walk has a nil context: nil equals nil in
// CoEnter. Outside a loop, lock the goroutine to its thread (runtime.LockOSThread)
// while it uses coroutines.
//
// # File I/O
//
// ReadAt, WriteAt, Fsync and Fdatasync run on the context's file I/O engine, QEMU's
// block/io_uring.c: one io_uring per context, made with liburing on first use
// (aio_setup_linux_io_uring). The requests made during one pass of the loop (from its
// callbacks, or from other goroutines meanwhile) go to the kernel with one
// io_uring_submit, from a BH that the first of them schedules (the batching of QEMU's
// luring_io_plug/unplug, defer_call since 8.2); the ring is reaped at once after the
// submit, since a read from the page cache has usually completed inside it. Later
// completions announce themselves on an eventfd registered with
// io_uring_register_eventfd, which the context watches with an fd handler (and a
// busy-poll callback that looks at the ring, as qemu_luring_poll_cb), so the callbacks
// run on the context's thread under GLib and under Poll alike. Where the kernel refuses
// io_uring (before 5.6, the kernel.io_uring_disabled sysctl, a seccomp filter such as
// Docker's), the same calls run pread, pwrite, fsync and fdatasync on the thread pool
// (aio=threads); AIOEngine says which engine is in use and IOUringError why io_uring is
// not; SetAIOEngine or GLIBAIO_AIO=threads force the pool. Buffers are pinned
// (runtime.Pinner) while the kernel may use them; C holds only the buffer address and
// a slot index with its generation in each request's user_data. Close cancels what is
// in flight (io_uring_prep_cancel) and waits for every completion.
//
// # Units
//
// Timers count in QEMU's units: int64 nanoseconds on a ClockType, and a timer's scale
// (ScaleNS, ScaleUS, ScaleMS) for Mod, as timer_mod does. Poll parameters are ns, as
// QEMU's poll-max-ns is. Durations that are Go's own (SetThreadPoolGrace) are
// time.Duration.
package aiosource
