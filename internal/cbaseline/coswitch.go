package cbaseline

/*
#include "coswitch.h"
*/
import "C"

import (
	"errors"
	"time"
)

// SigjmpPairs times n coroutine enter+yield pairs in C, switching between two stacks
// with sigsetjmp/siglongjmp as QEMU's coroutine-ucontext backend does
// (qemu_coroutine_switch); the second stack is set up once with makecontext and
// swapcontext, outside the timing. It returns the elapsed time of the n pairs.
func SigjmpPairs(n int) (time.Duration, error) {
	ns := C.cb_sigjmp_pairs(C.gint64(n))
	if ns < 0 {
		return 0, errors.New("cbaseline: cannot set up a coroutine stack")
	}
	return time.Duration(ns), nil
}

// SwapcontextPairs is SigjmpPairs with swapcontext for both switches of each pair:
// each swapcontext also saves and restores the signal mask, a syscall.
func SwapcontextPairs(n int) (time.Duration, error) {
	ns := C.cb_swapcontext_pairs(C.gint64(n))
	if ns < 0 {
		return 0, errors.New("cbaseline: cannot set up a coroutine stack")
	}
	return time.Duration(ns), nil
}
