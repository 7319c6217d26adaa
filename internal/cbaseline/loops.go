package cbaseline

/*
#cgo LDFLAGS: -lpthread
#include "loops.h"
*/
import "C"

import (
	"errors"
	"syscall"
	"time"
	"unsafe"
)

// AddUnixFDSources attaches one g_unix_fd_add-style GLib source per fd to ctx, each
// draining its eventfd when readable: GLib's own way to watch many fds.
func AddUnixFDSources(ctx unsafe.Pointer, fds []int) {
	cfds := make([]C.int, len(fds))
	for i, fd := range fds {
		cfds[i] = C.int(fd)
	}
	if len(cfds) > 0 {
		C.cb_unix_fd_sources_add((*C.GMainContext)(ctx), &cfds[0], C.int(len(cfds)))
	}
}

// RemoveUnixFDSources destroys the sources AddUnixFDSources attached.
func RemoveUnixFDSources(ctx unsafe.Pointer) { C.cb_unix_fd_sources_remove((*C.GMainContext)(ctx)) }

// Timer modes for TimerLateness.
const (
	TimerReadyTime = 0 // a GSource re-armed with g_source_set_ready_time under g_main_loop_run
	TimerBareFD    = 1 // a bare timerfd read in a loop: the floor of a thread's timer wait
	TimerFDSource  = 2 // a reactor-shaped C GSource polling a timerfd under g_main_loop_run: the floor of a GLib-driven timer
	TimerBarePPoll = 3 // a bare ppoll timeout on an idle eventfd, in a loop
)

// TimerLateness re-arms a timer of the given period rounds times and returns how late
// each expiry was handled. The bare modes run on the calling OS thread, with its timer
// slack: lock it and set the slack first for a meaningful floor.
func TimerLateness(ctx unsafe.Pointer, mode int, period time.Duration, rounds int) ([]time.Duration, error) {
	out := make([]C.gint64, rounds)
	if C.cb_timer_lateness((*C.GMainContext)(ctx), C.int(mode), C.gint64(period), C.int(rounds), &out[0]) != 0 {
		return nil, errors.New("cbaseline: timer lateness failed")
	}
	res := make([]time.Duration, rounds)
	for i, v := range out {
		res[i] = time.Duration(v)
	}
	return res, nil
}

// PPollUntil runs one ppoll on fd (an idle eventfd) until deadlineNS, CLOCK_MONOTONIC,
// computing the relative timeout in C. Timed from Go, it is the floor of a Go loop that
// waits in C for a ppoll timeout: the same wait plus the return from cgo.
func PPollUntil(fd int, deadlineNS int64) error {
	if r := C.cb_ppoll_until(C.int(fd), C.gint64(deadlineNS)); r < 0 {
		return syscall.Errno(-r)
	}
	return nil
}

// PingPong runs rounds round trips between two C threads through two eventfds and
// epoll_wait, and returns the elapsed time.
func PingPong(rounds int) time.Duration { return time.Duration(C.cb_pingpong(C.int(rounds))) }

// GLibPingPong runs rounds round trips between two C threads, each iterating its own
// GMainContext with a g_unix_fd_add-style source on its eventfd: GLib's own way to do
// what PingPong does with bare epoll_wait. It returns the elapsed time.
func GLibPingPong(rounds int) (time.Duration, error) {
	ns := C.cb_glib_pingpong(C.int(rounds))
	if ns < 0 {
		return 0, errors.New("cbaseline: GLib ping-pong failed")
	}
	return time.Duration(ns), nil
}

// OneshotFlood is the floor of a flood of callbacks scheduled from other threads and run
// by GLib iterations: producers C threads push n callbacks each onto a lock-free list
// and wake the loop with QEMU's notify_me handshake on an eventfd, while the calling
// thread iterates ctx (blocking) until a C source shaped like the reactor (can_recurse,
// the kick eventfd) has run them all. It returns the time per callback. Lock the OS
// thread: the calling thread iterates ctx.
func OneshotFlood(ctx unsafe.Pointer, producers, n int) (time.Duration, error) {
	ns := C.cb_oneshot_flood((*C.GMainContext)(ctx), C.int(producers), C.int(n))
	if ns < 0 {
		return 0, errors.New("cbaseline: oneshot flood failed")
	}
	return time.Duration(ns) / time.Duration(producers*n), nil
}

// MainLoopRun runs g_main_loop_run on ctx until MainLoopQuit.
func MainLoopRun(ctx unsafe.Pointer) { C.cb_main_loop_run((*C.GMainContext)(ctx)) }

// MainLoopQuit quits the loop MainLoopRun runs.
func MainLoopQuit() { C.cb_main_loop_quit() }

// Iterate runs n non-blocking iterations of ctx in C and returns the elapsed time.
func Iterate(ctx unsafe.Pointer, n int) time.Duration {
	return time.Duration(C.cb_iterate((*C.GMainContext)(ctx), C.gint64(n)))
}

// MainLoopUnref drops a GMainLoop* reference, for loops made through APIs that cannot
// (gotk3 v0.6.3's glib.MainLoop has no Unref).
func MainLoopUnref(loop unsafe.Pointer) { C.g_main_loop_unref((*C.GMainLoop)(loop)) }

// ReadyIterate runs n rounds of: mark a C source shaped like the reactor ready, then one
// non-blocking iteration that dispatches it (its dispatch does nothing). It is the floor
// of any "queue work, then one GLib iteration runs it" design on this machine.
func ReadyIterate(ctx unsafe.Pointer, n int) time.Duration {
	return time.Duration(C.cb_ready_iterate((*C.GMainContext)(ctx), C.gint64(n)))
}
