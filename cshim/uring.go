package cshim

/*
#cgo pkg-config: liburing
#cgo noescape cshim_ring_step
#cgo nocallback cshim_ring_step
#cgo noescape cshim_ring_wait
#cgo nocallback cshim_ring_wait
#include "uring.h"
*/
import "C"

import (
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Request kinds of a RingOp.
const (
	RingRead      = C.CSHIM_RING_READ      // IORING_OP_READ: pread
	RingWrite     = C.CSHIM_RING_WRITE     // IORING_OP_WRITE: pwrite
	RingFsync     = C.CSHIM_RING_FSYNC     // IORING_OP_FSYNC: fsync
	RingFdatasync = C.CSHIM_RING_FDATASYNC // IORING_OP_FSYNC with IORING_FSYNC_DATASYNC
	RingCancel    = C.CSHIM_RING_CANCEL    // IORING_OP_ASYNC_CANCEL of the request whose UserData is Off
)

// RingOp is one request for Ring.Step (cshim_ring_op). Addr is a buffer address: C
// memory, or Go memory that the caller keeps pinned with runtime.Pinner until the
// request's completion has been reaped. It is a number, not a pointer, so that the op
// array passed to C holds no Go pointer.
type RingOp struct {
	Addr     uint64
	Off      uint64
	UserData uint64
	FD       int32
	Len      uint32
	Op       uint32
	_        uint32
}

// RingCQE is one reaped completion (cshim_ring_cqe): Res is the syscall's result,
// bytes or -errno.
type RingCQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// RingStep reports what one Ring.Step did (cshim_ring_result).
type RingStep struct {
	Prepared  int32 // ops copied into SQEs
	Submitted int32 // SQEs the kernel took, or -errno
	Reaped    int32 // completions copied out
	Drained   int32 // 1 if the eventfd was read
	Calls     int32 // 1 if io_uring_submit was called (a syscall, unless it had nothing to take)
	_         int32
}

func init() {
	// The Go mirrors must match the C layouts they are cast to.
	if unsafe.Sizeof(RingOp{}) != C.sizeof_cshim_ring_op || unsafe.Offsetof(RingOp{}.Op) != unsafe.Offsetof(C.cshim_ring_op{}.op) ||
		unsafe.Sizeof(RingCQE{}) != C.sizeof_cshim_ring_cqe || unsafe.Offsetof(RingCQE{}.Res) != unsafe.Offsetof(C.cshim_ring_cqe{}.res) ||
		unsafe.Sizeof(RingStep{}) != C.sizeof_cshim_ring_result {
		panic("cshim: RingOp, RingCQE or RingStep does not match its C struct")
	}
}

// Ring is an io_uring made with liburing, with an eventfd registered for its
// completions (uring.h): the C half of QEMU's LuringState. Its methods are for one
// goroutine at a time; Free ends it.
type Ring struct {
	r            *C.cshim_ring
	efd          int
	khead, ktail *uint32
}

// NewRing makes a ring of sqEntries SQEs and cqEntries CQEs (powers of two; the kernel
// rounds up) and its eventfd (luring_init). It fails with the errno of
// io_uring_queue_init_params (ENOSYS without io_uring or under a seccomp filter, EPERM
// when the kernel.io_uring_disabled sysctl forbids it, ENOMEM past RLIMIT_MEMLOCK on old
// kernels), of the eventfd or its registration, or with EOPNOTSUPP when the kernel lacks
// IORING_OP_READ, WRITE, FSYNC or ASYNC_CANCEL (Linux before 5.6). Nothing is left
// behind then.
func NewRing(sqEntries, cqEntries uint32) (*Ring, error) {
	var r *C.cshim_ring
	var efd C.int
	if ret := C.cshim_ring_new(C.uint(sqEntries), C.uint(cqEntries), &r, &efd); ret < 0 {
		return nil, syscall.Errno(-ret)
	}
	return &Ring{
		r:     r,
		efd:   int(efd),
		khead: (*uint32)(unsafe.Pointer(C.cshim_ring_cq_khead(r))),
		ktail: (*uint32)(unsafe.Pointer(C.cshim_ring_cq_ktail(r))),
	}, nil
}

// EventFD returns the eventfd the kernel signals for every completion; the caller
// watches it and passes drain to the Step that follows its readiness.
func (r *Ring) EventFD() int { return r.efd }

// Step is one step of the engine in one crossing into C (cshim_ring_step): read the
// eventfd if drain; copy as many of ops as there are free SQEs into the ring; submit
// everything the kernel has not taken yet; copy the completions that are ready into
// cqes. It never blocks. The caller learns from the result how many ops were taken
// (the rest are for a later Step) and how many cqes were filled.
func (r *Ring) Step(drain bool, ops []RingOp, cqes []RingCQE) RingStep {
	var res RingStep
	var opp *C.cshim_ring_op
	if len(ops) > 0 {
		opp = (*C.cshim_ring_op)(unsafe.Pointer(&ops[0]))
	}
	var cqp *C.cshim_ring_cqe
	if len(cqes) > 0 {
		cqp = (*C.cshim_ring_cqe)(unsafe.Pointer(&cqes[0]))
	}
	d := C.int(0)
	if drain {
		d = 1
	}
	C.cshim_ring_step(r.r, d, opp, C.int(len(ops)), cqp, C.int(len(cqes)), (*C.cshim_ring_result)(unsafe.Pointer(&res)))
	return res
}

// Wait blocks until a completion is ready (retrying EINTR), then reaps into cqes as Step
// does and returns how many; for a shutdown that must see every request complete.
func (r *Ring) Wait(cqes []RingCQE) (int, error) {
	n := C.cshim_ring_wait(r.r, (*C.cshim_ring_cqe)(unsafe.Pointer(&cqes[0])), C.int(len(cqes)))
	if n < 0 {
		return 0, syscall.Errno(-n)
	}
	return int(n), nil
}

// CQReady reports whether completions wait in the ring, by reading its CQ head and tail
// in the memory shared with the kernel: no call into C, no syscall (io_uring_cq_ready,
// as QEMU's busy-poll callback qemu_luring_poll_cb).
func (r *Ring) CQReady() bool {
	return atomic.LoadUint32(r.ktail) != atomic.LoadUint32(r.khead)
}

// Free closes the eventfd and the ring (luring_cleanup). Every request must have
// completed and been reaped. The Ring must not be used afterwards.
func (r *Ring) Free() {
	C.cshim_ring_free(r.r)
	r.r, r.khead, r.ktail = nil, nil, nil
}
