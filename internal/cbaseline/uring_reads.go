package cbaseline

/*
#cgo pkg-config: liburing
#include "uring_reads.h"
*/
import "C"

import (
	"syscall"
	"time"
)

// URingReads runs a C loop on liburing that keeps qd 4 KiB reads of fd in flight, at
// offs taken in turn, until n have completed, and returns the elapsed time. With qd 1
// it is "submit, wait, reap" (io_uring_submit, io_uring_wait_cqe, io_uring_cqe_seen);
// with viaEventfd it waits through an eventfd registered for the ring's completions, a
// ppoll and an eventfd read, as an event loop does. Every read must return 4096 bytes.
func URingReads(fd int, offs []int64, n, qd int, viaEventfd bool) (time.Duration, error) {
	ns := C.cb_uring_reads(C.int(fd), (*C.gint64)(&offs[0]), C.int(len(offs)), C.gint64(n), C.int(qd), cbool(viaEventfd))
	if ns < 0 {
		return 0, syscall.Errno(-ns)
	}
	return time.Duration(ns), nil
}
