package aiosource

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/glibloop"
)

// File I/O on the AioContext: QEMU's io_uring engine (block/io_uring.c), with the thread
// pool as its fallback (block/file-posix.c's aio=threads).
//
// One ring per context, made on first use (aio_setup_linux_io_uring). Requests wait in a
// FIFO (QEMU's submit_queue) until the engine's BH, the first of them scheduled in a pass,
// copies them into SQEs and submits them with one io_uring_submit (ioq_submit; the
// batching of luring_io_plug/unplug and defer_call). The kernel signals an eventfd
// registered with io_uring_register_eventfd; an fd handler on the context (with QEMU's
// busy-poll callback, which looks at the CQ) reaps the completions and runs their
// callbacks on the context's thread (luring_process_completions), under GLib and under
// Poll alike. A request is an index and a generation in user_data, never a Go pointer;
// its buffer stays pinned (runtime.Pinner) from submission until its completion has
// been reaped, and at most until the end of that engine run (see fileOp.pin).

// AIOEngine is the engine that carries out a context's file I/O (ReadAt, WriteAt,
// Fsync, Fdatasync): the values of QEMU's aio= option that glibaio implements.
type AIOEngine int

const (
	// AIOIOUring is io_uring (aio=io_uring, block/io_uring.c): one ring per context,
	// completions through an eventfd on the context.
	AIOIOUring AIOEngine = iota + 1
	// AIOThreads is the thread pool (aio=threads): pread, pwrite, fsync and fdatasync
	// run as Submit work.
	AIOThreads
)

// String returns QEMU's name for the engine: "io_uring" or "threads".
func (e AIOEngine) String() string {
	switch e {
	case AIOIOUring:
		return "io_uring"
	case AIOThreads:
		return "threads"
	}
	return fmt.Sprintf("AIOEngine(%d)", int(e))
}

// AIOEngineEnv is the environment variable that chooses every context's engine, read
// when a context sets its engine up: "threads" forces the thread pool, as
// SetAIOEngine(AIOThreads) does; "io_uring" or unset (the default) uses io_uring where
// the kernel allows it. Any other value is ignored, and reported to the context's error
// handler (SetErrorHandler).
const AIOEngineEnv = "GLIBAIO_AIO"

// The ring's geometry. QEMU's ring has 128 entries (MAX_ENTRIES) for SQ and CQ alike
// and lets the kernel hold any number of requests; here the CQ is larger, and at most
// ringMaxOps requests are in the ring at a time, so that it never overflows even with a
// cancel for each of them: the rest wait in the queue.
const (
	ringSQEntries = 128
	ringCQEntries = 1024
	ringMaxOps    = ringCQEntries / 2
	ringReapBatch = 256
	// engineRounds bounds the submit-reap-callback rounds of one engine run: a read from
	// the page cache completes inside its submit, so a chain of requests issued from
	// completion callbacks could otherwise keep one pass going for ever. The rest waits
	// for the engine's BH in the next pass.
	engineRounds = 16
	// maxRW is the most one read or write transfers, as the kernel's MAX_RW_COUNT: a
	// larger buffer gives a short count, as pread and pwrite do.
	maxRW = 0x7ffff000
)

// cancelTag marks the user_data of a cancel request, whose own completion is dropped. A
// request's user_data is its generation (31 bits, never 0) above its slot index.
const (
	cancelTag = 1 << 63
	genMask   = 1<<31 - 1
)

// Request states, under fileAIO.mu.
const (
	opFree       = iota
	opQueued     // in the queue, waiting for a submit
	opFailed     // in the queue, completes with err at once (a negative offset: EINVAL)
	opCancelled  // in the queue, cancelled: completes with ECANCELED, never submitted
	opInRing     // in an SQE or in the kernel
	opCancelling // in the kernel, with a cancel request sent or queued
	opReaped     // its CQE was reaped: the callback runs (or ran) on the loop thread
	opPool       // the thread-pool engine has it
)

// fileOp is one request (QEMU's LuringAIOCB). Its slot in fileAIO.ops is reused; gen
// tells one use from the next.
type fileOp struct {
	u     *fileAIO
	idx   uint32
	gen   uint32
	state uint8 // under u.mu
	kind  uint32
	fd    int
	buf   []byte // kept alive while the kernel may use it
	off   int64
	done  func(n int, err error)

	// The pin of buf, which may outlive the request within one engine run: a slot freed
	// at its completion and taken again for the same buffer (a callback that reads on
	// into it) keeps it pinned, instead of an Unpin and a Pin (see unpinLazyLocked).
	pin    runtime.Pinner
	pinPtr unsafe.Pointer // nil when nothing is pinned

	// An awaiting coroutine (ReadAtCo, ...) instead of done; it frees the slot.
	co       *Coroutine
	waiting  bool // the coroutine yielded for it (loop thread)
	finished bool // the result is in n and err (loop thread)
	n        int
	err      error

	// The thread-pool engine: work and its completion, bound once per slot so that
	// Submit allocates nothing; cancel makes work that has not started return ECANCELED.
	cancel   atomic.Bool
	work     func() error
	poolDone func(error)
}

func (op *fileOp) userData() uint64 { return uint64(op.gen)<<32 | uint64(op.idx) }

// doneEntry is a reaped completion waiting for its callback: a request's done, or the
// coroutine of a request that one awaits.
type doneEntry struct {
	done func(int, error)
	op   *fileOp // an awaited request (its coroutine frees the slot), or nil
	res  int32   // bytes, or -errno
}

// fileAIO is a context's file I/O engine (QEMU's LuringState, plus the fallback).
type fileAIO struct {
	c *Context

	mu      sync.Mutex
	engine  AIOEngine // 0 until set up
	forced  AIOEngine // SetAIOEngine's choice, 0 for the default
	reason  error     // why io_uring is not used
	closing bool
	ring    *cshim.Ring
	bh      *BH
	retry   *Timer // submits again after an EAGAIN or EBUSY with nothing in flight

	ops     []*fileOp // slots, indexed by user_data's low half
	free    []uint32
	queue   []uint32 // submit_queue: slots waiting for an SQE, from qHead on
	qHead   int
	cancels []uint64 // user_data of requests to cancel, waiting for an SQE
	inRing  int      // SQEs prepared and not reaped (requests and cancels)

	processing int // engine runs active on the loop thread (nested ones count)

	// Scratch of the engine runs, and the completions waiting for their callbacks
	// (loop thread; Close when nothing drives the context).
	batch    []uint32
	reaped   []*fileOp
	lazy     []uint32 // freed slots that still pin their last buffer (under mu)
	ringOps  []cshim.RingOp
	cqes     []cshim.RingCQE
	done     []doneEntry
	doneHead int

	// Counters for tests and statistics (under mu).
	submits uint64

	report []error // for the context's error handler, which runs once mu is released
}

// unlock releases mu, then hands the errors met meanwhile to the context's error
// handler: user code never runs under mu.
func (u *fileAIO) unlock() {
	if len(u.report) == 0 {
		u.mu.Unlock()
		return
	}
	errs := u.report
	u.report = nil
	u.mu.Unlock()
	for _, err := range errs {
		u.c.reportError(err)
	}
}

// FileRequest is one file operation: the BlockAIOCB that QEMU's aio calls return, as a
// value. Its only use is Cancel. The zero FileRequest, and one whose operation has
// completed, cancel nothing.
type FileRequest struct {
	u  *fileAIO
	id uint64
}

// Cancel asks for the operation to be cancelled (bdrv_aio_cancel_async; io_uring_prep_cancel
// on the ring). Its callback still runs exactly once, on the loop: with ECANCELED if the
// cancel came first, otherwise with the operation's result (a read or write the kernel
// has started may not be cancellable). On the thread-pool engine, only work that has not
// started is cancelled. Cancel does not wait; any goroutine may call it.
func (r FileRequest) Cancel() {
	u := r.u
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.unlock()
	op := u.lookupLocked(r.id)
	if op == nil || u.closing {
		return
	}
	switch op.state {
	case opQueued:
		op.state = opCancelled
		u.kickLocked()
	case opInRing:
		op.state = opCancelling
		u.cancels = append(u.cancels, op.userData())
		u.kickLocked()
	case opPool:
		op.cancel.Store(true)
	}
}

func (u *fileAIO) lookupLocked(id uint64) *fileOp {
	idx := uint32(id)
	if int(idx) >= len(u.ops) {
		return nil
	}
	op := u.ops[idx]
	if op.gen != uint32(id>>32) || op.state == opFree {
		return nil
	}
	return op
}

// SetAIOEngine chooses the engine of the context's file I/O, before its first use:
// AIOThreads forces the thread pool (for tests, or where io_uring is not wanted);
// AIOIOUring asks for io_uring, the default, which still falls back to the thread pool
// where the kernel refuses it. It overrides AIOEngineEnv. Once the engine is set up (by
// the first file operation, or AIOEngine), choosing another returns an error that is
// os.ErrExist; choosing the one in use does nothing. An unknown engine returns an error
// that is os.ErrInvalid; after Close it returns ErrClosed.
func (c *Context) SetAIOEngine(e AIOEngine) error {
	if e != AIOIOUring && e != AIOThreads {
		return fmt.Errorf("aiosource: SetAIOEngine: unknown engine %v: %w", e, os.ErrInvalid)
	}
	u := &c.fileAIO
	u.mu.Lock()
	defer u.unlock()
	switch {
	case u.closing || c.closed.Load():
		return ErrClosed
	case u.engine == 0:
		u.forced = e
		return nil
	case u.engine == e || (e == AIOIOUring && u.forced != AIOThreads):
		// io_uring was asked for and is in use, or fell back for a reason of the kernel's
		return nil
	}
	return fmt.Errorf("aiosource: SetAIOEngine(%v): the context's file I/O already uses %v: %w", e, u.engine, os.ErrExist)
}

// AIOEngine returns the engine of the context's file I/O, setting it up if no file
// operation did yet (aio_setup_linux_io_uring): AIOIOUring, or AIOThreads when it was
// forced (SetAIOEngine, AIOEngineEnv) or the kernel refused io_uring (see IOUringError).
// After Close it reports the engine the context had, and AIOThreads if it had none.
func (c *Context) AIOEngine() AIOEngine {
	u := &c.fileAIO
	u.mu.Lock()
	defer u.unlock()
	u.setupLocked()
	return u.engine
}

// IOUringError reports why the context's file I/O does not use io_uring, setting the
// engine up as AIOEngine does: nil when it does. Otherwise the error says whether the
// fallback was forced (SetAIOEngine, AIOEngineEnv) or wraps the kernel's errno, such as
// syscall.ENOSYS (a kernel without io_uring, or a seccomp filter), syscall.EPERM (the
// kernel.io_uring_disabled sysctl) or syscall.EOPNOTSUPP (Linux before 5.6 lacks the
// opcodes).
func (c *Context) IOUringError() error {
	u := &c.fileAIO
	u.mu.Lock()
	defer u.unlock()
	u.setupLocked()
	return u.reason
}

// setupLocked chooses and sets up the engine on first use (aio_setup_linux_io_uring;
// file-posix falls back to the thread pool when it fails).
func (u *fileAIO) setupLocked() {
	if u.engine != 0 {
		return
	}
	if u.closing || u.c.closed.Load() {
		u.engine, u.reason = AIOThreads, ErrClosed
		return
	}
	want := u.forced
	if want == 0 {
		switch env := os.Getenv(AIOEngineEnv); env {
		case "threads":
			u.forced = AIOThreads // as SetAIOEngine(AIOThreads): SetAIOEngine(AIOIOUring) now fails
			u.engine, u.reason = AIOThreads, fmt.Errorf("aiosource: io_uring not used: %s=threads", AIOEngineEnv)
			return
		case "", "io_uring":
		default:
			u.report = append(u.report, fmt.Errorf("aiosource: %s=%q is neither \"threads\" nor \"io_uring\"; ignored", AIOEngineEnv, env))
		}
	} else if want == AIOThreads {
		u.engine, u.reason = AIOThreads, errors.New("aiosource: io_uring not used: SetAIOEngine(AIOThreads)")
		return
	}
	r, err := cshim.NewRing(ringSQEntries, ringCQEntries)
	if err != nil {
		u.engine, u.reason = AIOThreads, fmt.Errorf("aiosource: io_uring unavailable, file I/O uses the thread pool: io_uring_queue_init: %w", err)
		return
	}
	u.bh = u.c.NewBH("io_uring", u.runBH)
	// QEMU's luring_attach_aio_context: aio_set_fd_handler with a read handler, a busy-poll
	// check of the CQ and a poll-ready handler, all three reaping, then submitting.
	err = u.c.SetFDHandler(r.EventFD(), FDHandler{Read: u.runRead, Poll: u.cqReady, PollReady: u.runBH})
	if err != nil {
		u.bh.Delete()
		u.bh = nil
		r.Free()
		u.engine, u.reason = AIOThreads, fmt.Errorf("aiosource: io_uring's eventfd cannot be watched, file I/O uses the thread pool: %w", err)
		return
	}
	u.ring = r
	u.engine = AIOIOUring
	u.reason = nil
	u.ringOps = make([]cshim.RingOp, 0, ringSQEntries)
	u.cqes = make([]cshim.RingCQE, ringReapBatch)
}

// ReadAt reads len(buf) bytes from fd at offset off into buf, off the loop, and then
// runs done(n, err) on the context's thread, as pread(2) reports: n bytes read, fewer at
// the end of the file, 0 at or past it; err is nil, or a syscall.Errno (EBADF for a
// closed fd or one not open for reading, EINVAL for an O_DIRECT request that is not
// aligned or a negative off, EISDIR, ...). The engine is io_uring where the kernel
// allows it, else the thread pool (AIOEngine). buf must not be touched until done runs:
// it stays pinned meanwhile. A read of more than 0x7ffff000 bytes is short, as pread's.
//
// As with QEMU's luring_co_submit, reads submitted during a pass of the loop (from its
// callbacks, or before it runs) go to the kernel together, with one io_uring_submit,
// at the start of the next pass; a chain of reads each issued from the previous one's
// done is submitted and reaped for up to 16 rounds in one pass.
//
// On io_uring, a read of a pipe, socket or other stream ignores off, as read(2) would,
// and waits for data; pread and the thread-pool engine fail with ESPIPE. An EINTR is
// retried; an EAGAIN (an O_NONBLOCK fd) is reported, as pread reports it (QEMU
// resubmits both).
//
// Any goroutine may call it. After Close, done(0, ErrClosed) runs at once on the
// calling goroutine. It allocates nothing in steady state. It panics if done is nil.
func (c *Context) ReadAt(fd int, buf []byte, off int64, done func(n int, err error)) FileRequest {
	return c.fileOp("ReadAt", cshim.RingRead, fd, buf, off, done)
}

// WriteAt writes buf to fd at offset off, off the loop, and then runs done(n, err) on
// the context's thread, as pwrite(2) reports: n bytes written, which may be fewer than
// len(buf) (a full disk, RLIMIT_FSIZE); err is nil or a syscall.Errno. Like pwrite on
// Linux, a write to an fd opened with O_APPEND goes to the end of the file whatever off
// says. Everything else is as for ReadAt: buf stays pinned until done runs.
func (c *Context) WriteAt(fd int, buf []byte, off int64, done func(n int, err error)) FileRequest {
	return c.fileOp("WriteAt", cshim.RingWrite, fd, buf, off, done)
}

// Fsync flushes fd's data and metadata to its device, as fsync(2), off the loop, and
// then runs done(0, err) on the context's thread (QEMU's flush: IORING_OP_FSYNC). It
// orders nothing against operations still in flight: call it from the done of the
// writes it must cover. Otherwise as ReadAt.
func (c *Context) Fsync(fd int, done func(n int, err error)) FileRequest {
	return c.fileOp("Fsync", cshim.RingFsync, fd, nil, 0, done)
}

// Fdatasync is Fsync as fdatasync(2): metadata that reading the data back does not need
// (the modification time) may stay behind (IORING_FSYNC_DATASYNC, QEMU's flush).
func (c *Context) Fdatasync(fd int, done func(n int, err error)) FileRequest {
	return c.fileOp("Fdatasync", cshim.RingFdatasync, fd, nil, 0, done)
}

// fileOp submits one request for ReadAt, WriteAt, Fsync or Fdatasync (op, for the
// message); a request that cannot be queued completes at once, with its error.
func (c *Context) fileOp(op string, kind uint32, fd int, buf []byte, off int64, done func(n int, err error)) FileRequest {
	if done == nil {
		panic("aiosource: " + op + ": nil done")
	}
	_, id, err := c.fileAIO.submit(kind, fd, buf, off, done, nil)
	if id == 0 {
		done(0, err)
		return FileRequest{}
	}
	return FileRequest{u: &c.fileAIO, id: id}
}

// ReadAtCo is ReadAt for a coroutine: it suspends the calling coroutine until the read
// has completed and returns its result (luring_co_submit, which the block layer's
// bdrv_co_preadv reaches). The read goes to the current context (CurrentContext). After
// the context's Close it returns ErrClosed at once. It allocates nothing in steady
// state. It panics outside a coroutine.
func ReadAtCo(fd int, buf []byte, off int64) (int, error) {
	return coFile("ReadAtCo", cshim.RingRead, fd, buf, off)
}

// WriteAtCo is WriteAt for a coroutine, as ReadAtCo.
func WriteAtCo(fd int, buf []byte, off int64) (int, error) {
	return coFile("WriteAtCo", cshim.RingWrite, fd, buf, off)
}

// FsyncCo is Fsync for a coroutine, as ReadAtCo (QEMU's bdrv_co_flush reaches
// luring_co_submit with QEMU_AIO_FLUSH).
func FsyncCo(fd int) error {
	_, err := coFile("FsyncCo", cshim.RingFsync, fd, nil, 0)
	return err
}

// FdatasyncCo is Fdatasync for a coroutine, as ReadAtCo.
func FdatasyncCo(fd int) error {
	_, err := coFile("FdatasyncCo", cshim.RingFdatasync, fd, nil, 0)
	return err
}

func coFile(name string, kind uint32, fd int, buf []byte, off int64) (int, error) {
	self := mustSelf(name)
	c := CurrentContext()
	if c == nil {
		panic("aiosource: " + name + ": the coroutine runs in no context's walk")
	}
	u := &c.fileAIO
	op, _, err := u.submit(kind, fd, buf, off, nil, self)
	if op == nil {
		return 0, err
	}
	// The completion runs on this thread, so it cannot come between the check and the
	// yield; it wakes the coroutine only once it has yielded (QEMU wakes a LuringAIOCB's
	// coroutine only if it is not entered).
	if !op.finished {
		op.waiting = true
		self.Yield()
	}
	n, err := op.n, op.err
	u.mu.Lock()
	u.freeLocked(op)
	u.unlock()
	return n, err
}

// submit queues one request (luring_co_submit) and returns its id (user_data), or 0 and
// ErrClosed after Close. The first request queued while no engine run is active
// schedules the engine's BH.
func (u *fileAIO) submit(kind uint32, fd int, buf []byte, off int64, done func(int, error), co *Coroutine) (*fileOp, uint64, error) {
	if len(buf) > maxRW {
		buf = buf[:maxRW]
	}
	u.mu.Lock()
	u.setupLocked()
	if u.closing || u.c.closed.Load() {
		u.unlock()
		return nil, 0, ErrClosed
	}
	if fd > 1<<31-1 || fd < -1 {
		fd = -1 // no such fd: the kernel answers EBADF, where a truncated number could be open
	}
	op := u.allocLocked()
	op.kind, op.fd, op.buf, op.off, op.done, op.co = kind, fd, buf, off, done, co
	op.waiting, op.finished, op.n, op.err = false, false, 0, nil
	if u.engine == AIOThreads {
		op.state = opPool
		op.cancel.Store(false)
		id := op.userData()
		u.unlock()
		u.c.Submit(op.work, op.poolDone)
		return op, id, nil
	}
	switch {
	case off < 0 && (kind == cshim.RingRead || kind == cshim.RingWrite):
		op.state = opFailed // pread's EINVAL; an offset of -1 would mean "the file position" to io_uring
	default:
		op.state = opQueued
	}
	u.pinLocked(op, buf)
	u.queue = append(u.queue, op.idx)
	u.kickLocked()
	id := op.userData()
	u.unlock()
	return op, id, nil
}

// kickLocked schedules the engine's BH, unless an engine run is active: it takes what
// was queued meanwhile before it ends.
func (u *fileAIO) kickLocked() {
	if u.processing == 0 && u.bh != nil {
		u.bh.Schedule()
	}
}

// allocLocked takes a free slot, or makes one.
func (u *fileAIO) allocLocked() *fileOp {
	var op *fileOp
	if n := len(u.free); n > 0 {
		op = u.ops[u.free[n-1]]
		u.free = u.free[:n-1]
	} else {
		op = &fileOp{u: u, idx: uint32(len(u.ops))}
		op.work, op.poolDone = op.runWork, op.onPoolDone
		u.ops = append(u.ops, op)
	}
	op.gen = (op.gen + 1) & genMask // clear of cancelTag
	if op.gen == 0 {
		op.gen++ // a user_data of 0 is never a request
	}
	return op
}

// freeLocked returns a slot whose request completed. Its buffer may stay pinned until
// the engine run ends, for the next request of the slot (pinLocked).
func (u *fileAIO) freeLocked(op *fileOp) {
	if op.state == opFree {
		return
	}
	op.state = opFree
	op.done, op.co, op.buf, op.err = nil, nil, nil, nil
	u.free = append(u.free, op.idx)
	if op.pinPtr != nil {
		if u.processing == 0 {
			op.unpin()
		} else {
			u.lazy = append(u.lazy, op.idx)
		}
	}
}

// pinLocked pins buf for op, unless op's slot still pins that very buffer: a slot is
// freed at its completion and, the free list being LIFO, taken again by a read that the
// completion's callback issues, usually into the same buffer.
func (u *fileAIO) pinLocked(op *fileOp, buf []byte) {
	var ptr unsafe.Pointer
	if len(buf) > 0 {
		ptr = unsafe.Pointer(unsafe.SliceData(buf))
	}
	if op.pinPtr == ptr {
		return
	}
	if op.pinPtr != nil {
		op.unpin()
	}
	if ptr != nil {
		op.pin.Pin(ptr)
		op.pinPtr = ptr
	}
}

func (op *fileOp) unpin() {
	op.pin.Unpin()
	op.pinPtr = nil
}

// unpinLazyLocked unpins the buffers that freed slots kept pinned during the engine run
// that is ending.
func (u *fileAIO) unpinLazyLocked() {
	for _, idx := range u.lazy {
		if op := u.ops[idx]; op.state == opFree && op.pinPtr != nil {
			op.unpin()
		}
	}
	u.lazy = u.lazy[:0]
}

// runBH is the engine's BH and its busy-poll handler: submit what is queued, reap what
// has completed, run the callbacks.
func (u *fileAIO) runBH() { u.run(false) }

// runRead is the eventfd's read handler (qemu_luring_completion_cb): the same, after
// reading the eventfd.
func (u *fileAIO) runRead() { u.run(true) }

// cqReady is the busy-poll check (qemu_luring_poll_cb): completions wait in the CQ.
func (u *fileAIO) cqReady() bool {
	r := u.ring
	return r != nil && r.CQReady()
}

// run is luring_process_completions_and_submit, in rounds: each submits the queue with
// one io_uring_submit and reaps, in one crossing into C, then runs the callbacks of what
// was reaped, which may queue more. It stops when a round reaps nothing, or after
// engineRounds rounds; what is left then waits for the BH in the next pass. Loop thread.
func (u *fileAIO) run(drain bool) {
	u.mu.Lock()
	u.processing++
	defer u.endRun()
	for round := 0; round < engineRounds; round++ {
		if u.ring == nil || u.closing {
			break
		}
		before := len(u.done)
		u.stepLocked(drain)
		drain = false
		if len(u.done) == before && u.doneHead == len(u.done) {
			break
		}
		u.unlock()
		u.deliver()
		u.mu.Lock()
	}
	u.unlock()
}

// endRun ends an engine run, also one that a callback's panic ends: if work is left
// (queued requests, cancels, completions not delivered or not reaped), the BH runs the
// engine again in the next pass.
func (u *fileAIO) endRun() {
	u.mu.Lock()
	u.processing--
	if u.processing == 0 {
		u.unpinLazyLocked()
	}
	if u.processing == 0 && !u.closing && u.ring != nil &&
		(u.qHead < len(u.queue) || len(u.cancels) > 0 || u.doneHead < len(u.done) || u.ring.CQReady()) {
		u.bh.Schedule()
	}
	u.unlock()
}

// stepLocked is one ioq_submit with its reap: the queue's head goes into SQEs (as many
// as the ring has room for), cancels first; one crossing into C prepares, submits and
// reaps; reaped completions go to u.done.
func (u *fileAIO) stepLocked(drain bool) {
	ops := u.ringOps[:0]
	// Cancels first: they are few, and their targets are already in the kernel.
	nc := min(len(u.cancels), ringSQEntries, ringCQEntries-u.inRing)
	for _, ud := range u.cancels[:nc] {
		ops = append(ops, cshim.RingOp{Op: cshim.RingCancel, Off: ud, UserData: cancelTag | ud})
	}
	batch := u.batch[:0]
	for u.qHead < len(u.queue) && len(ops) < ringSQEntries && u.inRing+len(ops) < ringMaxOps+nc {
		op := u.ops[u.queue[u.qHead]]
		u.qHead++
		switch op.state {
		case opCancelled:
			u.reapLocked(op, -int32(unix.ECANCELED))
			continue
		case opFailed:
			u.reapLocked(op, -int32(unix.EINVAL))
			continue
		}
		ro := cshim.RingOp{Op: op.kind, FD: int32(op.fd), Off: uint64(op.off), UserData: op.userData()}
		if len(op.buf) > 0 {
			ro.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(op.buf))))
			ro.Len = uint32(len(op.buf))
		}
		ops = append(ops, ro)
		batch = append(batch, op.idx)
	}
	if u.qHead == len(u.queue) {
		u.queue, u.qHead = u.queue[:0], 0
	} else if u.qHead > len(u.queue)/2 {
		// Under a steady backlog the head never meets the tail: drop what was taken.
		u.queue = u.queue[:copy(u.queue, u.queue[u.qHead:])]
		u.qHead = 0
	}
	res := u.ring.Step(drain, ops, u.cqes)
	u.ringOps, u.batch = ops, batch
	u.submits += uint64(res.Calls)
	// Cancels were first; of the requests, those past what the ring took go back to the
	// head of the queue.
	took := int(res.Prepared)
	tookCancels := min(took, nc)
	u.cancels = u.cancels[:copy(u.cancels, u.cancels[tookCancels:])]
	tookOps := took - tookCancels
	for _, idx := range batch[:tookOps] {
		u.ops[idx].state = opInRing
	}
	if rest := batch[tookOps:]; len(rest) > 0 {
		u.queue = append(append(make([]uint32, 0, len(rest)+len(u.queue)-u.qHead), rest...), u.queue[u.qHead:]...)
		u.qHead = 0
	}
	u.inRing += took
	if res.Submitted < 0 {
		u.submitFailed(syscall.Errno(-res.Submitted))
	}
	u.reapCQEsLocked(u.cqes[:res.Reaped])
}

// reapCQEsLocked hands reaped CQEs to their requests: a cancel's own is dropped, an
// EINTR is resubmitted (ECANCELED once cancelled or closing), the rest go to u.done.
func (u *fileAIO) reapCQEsLocked(cqes []cshim.RingCQE) {
	for _, cqe := range cqes {
		u.inRing--
		if cqe.UserData&cancelTag != 0 {
			continue // a cancel's own result: its target completes on its own
		}
		op := u.ops[uint32(cqe.UserData)]
		res := cqe.Res
		if res == -int32(unix.EINTR) {
			if op.state == opInRing && !u.closing {
				op.state = opQueued // QEMU resubmits -EINTR (and -EAGAIN: see ReadAt)
				u.queue = append(u.queue, op.idx)
				continue
			}
			res = -int32(unix.ECANCELED) // interrupted while cancelled: it did not run
		}
		u.reapLocked(op, res)
	}
	u.endReapLocked()
}

// reapLocked queues op's completion for its callback (u.done); endReapLocked then frees
// the slots of the batch.
func (u *fileAIO) reapLocked(op *fileOp, res int32) {
	op.state = opReaped
	if op.co != nil {
		u.done = append(u.done, doneEntry{op: op, res: res}) // its coroutine frees the slot
		return
	}
	u.done = append(u.done, doneEntry{done: op.done, res: res})
	u.reaped = append(u.reaped, op)
}

// endReapLocked frees the slots of the requests reaped since the last call, last reaped
// first, so that each callback, in reap order, finds its own request's slot on top of
// the free list, with its buffer still pinned (pinLocked).
func (u *fileAIO) endReapLocked() {
	for i := len(u.reaped) - 1; i >= 0; i-- {
		u.freeLocked(u.reaped[i])
		u.reaped[i] = nil
	}
	u.reaped = u.reaped[:0]
}

// submitFailed handles an io_uring_submit that the kernel refused: the SQEs stay in the
// ring and go with the next submit. With nothing in flight to trigger one, a timer does,
// 1 ms later: EAGAIN and EBUSY are the kernel running short of memory or of CQ room.
func (u *fileAIO) submitFailed(err syscall.Errno) {
	if err != unix.EAGAIN && err != unix.EBUSY {
		u.report = append(u.report, fmt.Errorf("aiosource: io_uring_submit: %w", err))
	}
	if u.retry == nil {
		u.retry = u.c.NewTimer(ClockRealtime, ScaleMS, func() {
			u.mu.Lock()
			u.kickLocked()
			u.unlock()
		})
	}
	if !u.retry.Pending() {
		u.retry.Mod(ClockNS(ClockRealtime)/ScaleMS + 1)
	}
}

// deliver runs the callbacks of the reaped completions, in the order they were reaped.
// Each entry leaves the list before its callback runs, so a callback that panics, or
// runs a nested loop that delivers the rest, never sees one twice. The kernel is done
// with the buffers: their slots are free already.
func (u *fileAIO) deliver() {
	for u.doneHead < len(u.done) {
		d := u.done[u.doneHead]
		u.done[u.doneHead] = doneEntry{}
		u.doneHead++
		if u.doneHead == len(u.done) {
			u.done, u.doneHead = u.done[:0], 0
		}
		n, err := 0, error(nil)
		if d.res < 0 {
			err = syscall.Errno(-d.res)
		} else {
			n = int(d.res)
		}
		if d.op != nil {
			d.op.wake(n, err)
		} else {
			d.done(n, err)
		}
	}
}

// wake hands the result to the coroutine that awaits the request, on the loop thread,
// and resumes it if it has yielded (QEMU wakes a request's coroutine only if it is not
// entered: the submitter itself finds the result without yielding).
func (op *fileOp) wake(n int, err error) {
	op.n, op.err, op.finished = n, err, true
	if op.waiting {
		op.co.Wake() // the coroutine frees the slot
	}
}

// runWork is a request's work on the thread-pool engine: pread, pwrite, fsync or
// fdatasync, with EINTR retried. It leaves the result in the slot.
func (op *fileOp) runWork() error {
	if op.cancel.Load() {
		op.n, op.err = 0, unix.ECANCELED
		return nil
	}
	var n int
	var err error
	for {
		switch {
		case op.off < 0 && (op.kind == cshim.RingRead || op.kind == cshim.RingWrite):
			n, err = 0, unix.EINVAL
		case op.kind == cshim.RingRead:
			n, err = unix.Pread(op.fd, op.buf, op.off)
		case op.kind == cshim.RingWrite:
			n, err = unix.Pwrite(op.fd, op.buf, op.off)
		case op.kind == cshim.RingFsync:
			err = unix.Fsync(op.fd)
		default:
			err = unix.Fdatasync(op.fd)
		}
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		n = 0
	}
	op.n, op.err = n, err
	return nil
}

// onPoolDone is a thread-pool request's completion, on the loop thread. The pool reports
// ErrClosed for work that never started because the context closed: it was cancelled.
func (op *fileOp) onPoolDone(err error) {
	if err != nil {
		op.n, op.err = 0, unix.ECANCELED
	}
	if op.co != nil {
		op.wake(op.n, op.err)
		return
	}
	u, done, n, err := op.u, op.done, op.n, op.err
	u.mu.Lock()
	u.freeLocked(op)
	u.unlock()
	done(n, err)
}

// close is the engine's part of Context.Close: every request completes before Close
// returns, so that no buffer stays pinned and the kernel writes into none later. Queued
// requests complete with ECANCELED without reaching the kernel; those in the kernel get
// a cancel request (io_uring_prep_cancel) and complete with ECANCELED or their result;
// Close waits for each. The thread-pool engine marks its requests cancelled: the pool's
// own close completes them. It returns the first panic of a callback, for Close to raise
// once everything is released.
func (u *fileAIO) close() (panicked *glibloop.PanicError) {
	u.mu.Lock()
	u.closing = true
	if u.engine == 0 {
		u.engine, u.reason = AIOThreads, ErrClosed
	}
	if u.engine == AIOThreads {
		for _, op := range u.ops {
			if op.state == opPool {
				op.cancel.Store(true)
			}
		}
		u.unlock()
		return nil
	}
	if u.retry != nil {
		u.retry.Del()
	}
	for _, idx := range u.queue[u.qHead:] {
		op := u.ops[idx]
		res := -int32(unix.ECANCELED)
		if op.state == opFailed {
			res = -int32(unix.EINVAL)
		}
		u.reapLocked(op, res)
	}
	u.endReapLocked()
	u.queue, u.qHead = u.queue[:0], 0
	u.cancels = u.cancels[:0]
	for _, op := range u.ops {
		if op.state == opInRing {
			op.state = opCancelling
			u.cancels = append(u.cancels, op.userData())
		}
	}
	guard := func() {
		if r := recover(); r != nil && panicked == nil {
			if pe, ok := r.(*glibloop.PanicError); ok {
				panicked = pe
			} else {
				panicked = &glibloop.PanicError{Value: r, Stack: debug.Stack(), Callback: "file I/O completion"}
			}
		}
	}
	for {
		if u.doneHead < len(u.done) {
			u.unlock()
			for u.doneHead < len(u.done) {
				func() { defer guard(); u.deliver() }()
			}
			u.mu.Lock()
			continue
		}
		if u.inRing == 0 && len(u.cancels) == 0 {
			break
		}
		before := len(u.done)
		u.stepLocked(true)
		if len(u.done) == before && len(u.cancels) == 0 && u.inRing > 0 {
			// Everything is in the kernel: wait for the next completion.
			n, err := u.ring.Wait(u.cqes)
			if err != nil {
				u.report = append(u.report, fmt.Errorf("aiosource: Close: waiting for io_uring completions: %w", err))
				break
			}
			u.reapCQEsLocked(u.cqes[:n])
		}
	}
	if u.bh != nil {
		u.bh.Delete()
	}
	u.unlock()
	return panicked
}

// release releases the ring and its eventfd once the context no longer watches it (the end
// of Close), and forgets the slots of coroutines that will never resume. Should waiting
// for the kernel have failed in close, the ring and the buffers of the requests it still
// holds stay as they are: the kernel may write into them yet.
func (u *fileAIO) release() {
	u.mu.Lock()
	defer u.unlock()
	if u.ring != nil && u.inRing > 0 {
		return
	}
	if u.ring != nil {
		u.ring.Free()
		u.ring = nil
	}
	for _, op := range u.ops {
		u.freeLocked(op)
		if op.pinPtr != nil {
			op.unpin()
		}
	}
	u.lazy = u.lazy[:0]
}
