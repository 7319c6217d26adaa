// Package glibloop is a Go API over GLib's main loop: GMainContext, a GLib-compatible
// loop driver, and GSources written in Go.
//
// A Go type becomes a real GSource by implementing SourceFuncs (Dispatch), and
// optionally SourcePreparer, SourceChecker and SourceFinalizer. NewSource gives it to
// GLib through static C trampolines, so it can be attached to any GMainContext (GTK's
// default context included: see package glibloop/gotk3, or WrapMainContext for any
// GMainContext*), prioritised, nested, woken and destroyed like a source written in C. A callback GLib does not need (no Prepare, no Check) never
// costs a crossing into Go.
//
// # Threads
//
// Every function is safe to call from any goroutine unless its doc says otherwise.
// Callbacks run on the thread that drives the context: MainContext.Iteration, Loop.Run,
// or foreign C code such as gtk_main. GLib tracks context ownership per OS thread, so
// Acquire, PushThreadDefault and Loop.Run lock the calling goroutine to its OS thread
// until the matching Release, PopThreadDefault or return. Finalize may run on any thread:
// the one that drops a source's last reference.
//
// # Panics
//
// A panic in a callback never unwinds through GLib's C frames. The trampoline recovers
// it and GLib finishes its iteration in a consistent state (the context is released,
// g_main_depth is right, the next iteration works). The Go call that drove the context
// (Iteration, Pending, Loop.Run, Source.Unref, ...) then raises it again as a
// *PanicError carrying the original value and stack. When foreign C code drives the
// context, the handler set with SetPanicHandler receives it instead; by default it prints
// the panic and exits with status 2. A Source whose Dispatch panicked stays attached; a
// typed callback (IdleAdd, TimeoutAdd, UnixFDAdd, Invoke) that panicked is removed.
//
// Do not call runtime.Goexit (or testing.T.FailNow) from a callback: unlike a panic it
// cannot be stopped at the trampoline.
//
// # Errors and misuse
//
// A nil callback or source (NewSource, IdleAdd, TimeoutAdd, UnixFDAdd, Invoke,
// AddChildSource) panics at the call, with a message naming the argument, as the
// standard library does. Errors are this package's sentinels (ErrNotOwner,
// ErrContextGone) or os and syscall errors, and errors.Is works on them. Calls on an
// Unref'd context or a finalized source are no-ops. Every message starts with
// "glibloop: ".
//
// # Units
//
// Durations are time.Duration: prepare timeouts, TimeoutAdd intervals, Query and PPoll
// timeouts. Where GLib counts a value itself, it keeps GLib's unit and says so: ready
// times, Source.Time and MonotonicTime are GLib's monotonic time in µs
// (g_get_monotonic_time). A Duration handed to GLib in whole milliseconds (a prepare
// timeout, a TimeoutAdd interval) is rounded up, so nothing fires early.
//
// # Lifetime
//
// Sources follow GLib's reference counting exactly. NewSource returns a source holding
// one reference, which the caller owns and drops with Unref (usually right after
// Attach). No Go finalizer ever drops a reference. Once GLib has finalized a source,
// its methods are harmless no-ops; a goroutine that uses a source whose last reference
// it does not hold should take one with Ref first, as in C.
package glibloop
