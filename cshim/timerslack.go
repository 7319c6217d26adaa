package cshim

/*
#include "timerslack.h"
*/
import "C"

import "syscall"

// The timer slack of the threads that wait for a context (timerslack.h). Each call acts
// on the calling OS thread only: lock the goroutine to it (runtime.LockOSThread) for
// the answer to mean anything.

// InitTimerSlack sets the calling OS thread's timer slack to 1 ns, as QEMU's
// init_clocks() does, unless the thread's slack is already decided (an earlier
// InitTimerSlack or wait, or SetTimerSlack): the syscall is made once per thread. The
// loop driver (Loop.Run) and the reactor's blocking wait do the same in C.
func InitTimerSlack() { C.cshim_timerslack_init() }

// SetTimerSlack sets the calling OS thread's timer slack to ns (0: the thread's
// default, as prctl(PR_SET_TIMERSLACK) does) and marks it decided: drivers and waits on
// this thread leave it as it is. Benchmarks use it to measure a wait with the kernel's
// default slack, as before glibaio set it.
func SetTimerSlack(ns uint64) error {
	if r := C.cshim_timerslack_set(C.ulong(ns)); r < 0 {
		return syscall.Errno(-r)
	}
	return nil
}

// ForgetTimerSlack marks the calling OS thread's slack undecided, with no syscall: the
// next driver or blocking wait on it sets 1 ns again. After SetTimerSlack, it puts a
// thread back in the state of one that glibaio never touched, for tests.
func ForgetTimerSlack() { C.cshim_timerslack_forget() }

// TimerSlack returns the calling OS thread's current timer slack in ns
// (prctl(PR_GET_TIMERSLACK)).
func TimerSlack() (uint64, error) {
	r := C.cshim_timerslack_get()
	if r < 0 {
		return 0, syscall.Errno(-r)
	}
	return uint64(r), nil
}

// TimerSlackSyscalls reports how many times the calling OS thread set its slack to
// 1 ns through InitTimerSlack, Loop.Run or a blocking wait: at most once per
// ForgetTimerSlack.
func TimerSlackSyscalls() int { return int(C.cshim_timerslack_syscalls()) }
