package benchsuite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/internal/cbaseline"
)

// The io_uring scenarios (issue 15, item 5): 4 KiB random reads from a page-cached
// 64 MiB file. Ours keeps qd reads in flight on an AioContext driven by Poll(true) on a
// locked goroutine, each completion issuing the next read (ReadAt). The baselines: the
// same reads as thread-pool work (Submit with unix.Pread), 32 goroutines calling
// os.File.ReadAt, and a C loop on liburing (cbaseline.URingReads).

const (
	// ReadFileSize is the size of the file the read scenarios read.
	ReadFileSize = 64 << 20
	readBlock    = 4096
	readOffsets  = 1 << 14 // random block offsets, taken in turn
)

// ReadFile is a page-cached file of ReadFileSize bytes and a fixed sequence of random
// 4 KiB-aligned offsets in it.
type ReadFile struct {
	F    *os.File
	dir  string
	Offs []int64
}

// NewReadFile writes a ReadFileSize file in a new directory under dir (os.TempDir() if
// empty) and reads it once, so it is in the page cache.
func NewReadFile(dir string) (*ReadFile, error) {
	d, err := os.MkdirTemp(dir, "glibaio-readbench-")
	if err != nil {
		return nil, err
	}
	rf := &ReadFile{dir: d}
	rf.F, err = os.Create(filepath.Join(d, "data"))
	if err != nil {
		os.RemoveAll(d)
		return nil, err
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i*7 + i>>12)
	}
	for off := 0; off < ReadFileSize; off += len(chunk) {
		if _, err := rf.F.WriteAt(chunk, int64(off)); err != nil {
			rf.Close()
			return nil, err
		}
	}
	for off := 0; off < ReadFileSize; off += len(chunk) { // into the page cache, if not there
		if _, err := rf.F.ReadAt(chunk, int64(off)); err != nil {
			rf.Close()
			return nil, err
		}
	}
	rf.Offs = make([]int64, readOffsets)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range rf.Offs {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		rf.Offs[i] = int64(x%(ReadFileSize/readBlock)) * readBlock
	}
	return rf, nil
}

// FD returns the file's descriptor.
func (rf *ReadFile) FD() int { return int(rf.F.Fd()) }

// Close removes the file.
func (rf *ReadFile) Close() {
	rf.F.Close()
	os.RemoveAll(rf.dir)
}

// ReadLoop keeps QD reads in flight on an AioContext, with ReadAt or with
// Submit(pread), each completion issuing the next read. Every callback and work
// function is bound once, so a run allocates nothing.
type ReadLoop struct {
	Ctx  *aiosource.Context
	rf   *ReadFile
	fd   int
	bufs [][]byte
	offs []int64 // the lane's offset, for the pool's work
	next int

	issued, done, n int
	err             error

	ringDone []func(int, error)
	poolWork []func() error
	poolDone []func(error)
}

// NewReadLoop makes a context for qd lanes of reads from rf.
func NewReadLoop(rf *ReadFile, qd int) (*ReadLoop, error) {
	c, err := aiosource.New()
	if err != nil {
		return nil, err
	}
	l := &ReadLoop{Ctx: c, rf: rf, fd: rf.FD(), offs: make([]int64, qd)}
	for i := 0; i < qd; i++ {
		l.bufs = append(l.bufs, make([]byte, readBlock))
		l.ringDone = append(l.ringDone, func(n int, err error) { l.ringCompleted(i, n, err) })
		l.poolWork = append(l.poolWork, func() error { return l.pread(i) })
		l.poolDone = append(l.poolDone, func(err error) { l.poolCompleted(i, err) })
	}
	return l, nil
}

// Engine returns the engine ReadAt uses.
func (l *ReadLoop) Engine() aiosource.AIOEngine { return l.Ctx.AIOEngine() }

func (l *ReadLoop) offset() int64 {
	off := l.rf.Offs[l.next]
	l.next = (l.next + 1) % len(l.rf.Offs)
	return off
}

func (l *ReadLoop) issueRing(i int) {
	l.issued++
	l.Ctx.ReadAt(l.fd, l.bufs[i], l.offset(), l.ringDone[i])
}

func (l *ReadLoop) ringCompleted(i, n int, err error) {
	l.done++
	if (err != nil || n != readBlock) && l.err == nil {
		l.err = fmt.Errorf("ReadAt: %d bytes, %v", n, err)
	}
	if l.issued < l.n {
		l.issueRing(i)
	}
}

func (l *ReadLoop) pread(i int) error {
	n, err := unix.Pread(l.fd, l.bufs[i], l.offs[i])
	if err == nil && n != readBlock {
		err = errors.New("short pread")
	}
	return err
}

func (l *ReadLoop) issuePool(i int) {
	l.issued++
	l.offs[i] = l.offset()
	l.Ctx.Submit(l.poolWork[i], l.poolDone[i])
}

func (l *ReadLoop) poolCompleted(i int, err error) {
	l.done++
	if err != nil && l.err == nil {
		l.err = err
	}
	if l.issued < l.n {
		l.issuePool(i)
	}
}

// run does n reads with every lane busy, driving the context with Poll(true) on a
// locked goroutine, and returns their time.
func (l *ReadLoop) run(n int, pool bool) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l.issued, l.done, l.n = 0, 0, n
	start := time.Now()
	for i := 0; i < len(l.bufs) && l.issued < n; i++ {
		if pool {
			l.issuePool(i)
		} else {
			l.issueRing(i)
		}
	}
	for l.done < n {
		l.Ctx.Poll(true)
	}
	return time.Since(start)
}

// Ring does n reads with ReadAt.
func (l *ReadLoop) Ring(n int) time.Duration { return l.run(n, false) }

// Pool does n reads as thread-pool work, Submit(pread).
func (l *ReadLoop) Pool(n int) time.Duration { return l.run(n, true) }

// Err returns the first failed read.
func (l *ReadLoop) Err() error { return l.err }

// Close closes the context.
func (l *ReadLoop) Close() { l.Ctx.Close() }

// RingFloor does n reads on the QD1 pattern with one crossing into C per read, on a ring
// made as the engine makes its own (cshim.NewRing: an eventfd registered for its
// completions), into a Go buffer pinned with runtime.Pinner, for each read with
// pinEach, else once: the least any Go code that follows the engine's rules (pinned Go
// buffers, a cgo call to submit and reap, the eventfd) pays per read, without an event
// loop. It returns their time.
func (rf *ReadFile) RingFloor(n int, pinEach bool) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := cshim.NewRing(128, 1024)
	if err != nil {
		return 0, err
	}
	defer r.Free()
	buf := make([]byte, readBlock)
	ops := make([]cshim.RingOp, 1)
	cqes := make([]cshim.RingCQE, 16)
	var pin, once runtime.Pinner
	if !pinEach {
		once.Pin(&buf[0])
		defer once.Unpin()
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if pinEach {
			pin.Pin(&buf[0])
		}
		ops[0] = cshim.RingOp{Op: cshim.RingRead, FD: int32(rf.FD()), Addr: uint64(uintptr(unsafe.Pointer(&buf[0]))),
			Len: readBlock, Off: uint64(rf.Offs[i%len(rf.Offs)]), UserData: 1}
		res := r.Step(false, ops, cqes)
		for res.Reaped == 0 { // not from the page cache after all: wait in the kernel
			res.Reaped = int32(must(r.Wait(cqes)))
		}
		if pinEach {
			pin.Unpin()
		}
		if cqes[0].Res != readBlock {
			return 0, fmt.Errorf("floor read: %d", cqes[0].Res)
		}
	}
	return time.Since(start), nil
}

func must(n int, err error) int {
	if err != nil {
		panic(err)
	}
	return n
}

// GoroutineReads does n reads with qd goroutines calling os.File.ReadAt, and returns
// their time.
func (rf *ReadFile) GoroutineReads(n, qd int) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make([]error, qd)
	start := time.Now()
	for g := 0; g < qd; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, readBlock)
			for k := g; k < n; k += qd {
				if _, err := rf.F.ReadAt(buf, rf.Offs[k%len(rf.Offs)]); err != nil {
					errs[g] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// uringRows measures the io_uring rows: at queue depth 32, against the thread pool and
// against goroutines; at queue depth 1, against a C loop on liburing; and the
// allocations per read. Each row's floor is the C loop on liburing with an eventfd
// registered for its completions, as the engine's ring has (the kernel signals it on
// every completion), at the same depth; the Go floors of queue depth 1 (one cgo call per
// read, the buffer pinned once or per read) are measured in the same rounds.
func uringRows(cfg Config) ([]Row, error) {
	rf, err := NewReadFile("")
	if err != nil {
		return nil, err
	}
	defer rf.Close()
	ring, err := NewReadLoop(rf, 32)
	if err != nil {
		return nil, err
	}
	defer ring.Close()
	if e := ring.Engine(); e != aiosource.AIOIOUring {
		return nil, fmt.Errorf("io_uring rows: the context uses %v: %v", e, ring.Ctx.IOUringError())
	}
	pool, err := NewReadLoop(rf, 32)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	qd1, err := NewReadLoop(rf, 1)
	if err != nil {
		return nil, err
	}
	defer qd1.Close()

	var cerr error
	check := func(err error) {
		if err != nil && cerr == nil {
			cerr = err
		}
	}
	cloop := func(qd int, viaEventfd bool) func(n int) time.Duration {
		return func(n int) time.Duration {
			d, err := cbaseline.URingReads(rf.FD(), rf.Offs, n, qd, viaEventfd)
			check(err)
			return d
		}
	}
	goroutines := func(n int) time.Duration {
		d, err := rf.GoroutineReads(n, 32)
		check(err)
		return d
	}
	goFloor := func(pinEach bool) func(n int) time.Duration {
		return func(n int) time.Duration {
			d, err := rf.RingFloor(n, pinEach)
			check(err)
			return d
		}
	}
	const floor = "C loop on liburing, its ring with an eventfd registered as the engine's"
	readsPerSec := func(ns float64) float64 { return 1e9 / ns }

	n := cfg.Ops * 5
	f := sideBySide(cfg.Rounds, n, ring.Ring, cloop(32, true), pool.Pool, goroutines)
	check(ring.Err())
	check(pool.Err())
	rows := []Row{
		{Name: "io_uring 4 KiB random reads of a page-cached 64 MiB file, queue depth 32, per read", OursNS: f.Ours,
			Floor: floor + ", 32 in flight", FloorNS: f.Floor, FloorRatio: f.FloorRatio,
			Baseline: "thread-pool Submit(pread), 32 in flight", BaselineNS: f.Peer, Ratio: f.Ratio, PeerMax: 0.333, // 3x the reads/s
			Notes: []Note{{Name: "ours", Value: readsPerSec(f.Ours), Unit: "reads/s"}, {Name: "the thread pool", Value: readsPerSec(f.Peer), Unit: "reads/s"}}},
		{Name: "io_uring 4 KiB random reads, queue depth 32, against goroutines, per read", OursNS: f.Ours,
			Floor: floor + ", 32 in flight", FloorNS: f.Floor, FloorRatio: f.FloorRatio,
			Baseline: "32 goroutines calling os.File.ReadAt", BaselineNS: Median(f.V[3]), Ratio: medianRatio(f.V[0], f.V[3])},
	}

	n1 := cfg.Ops * 2
	f = sideBySide(cfg.Rounds, n1, qd1.Ring, cloop(1, true), cloop(1, false), goFloor(false), goFloor(true))
	check(qd1.Err())
	rows = append(rows, Row{Name: "io_uring 4 KiB random read, queue depth 1, latency", OursNS: f.Ours,
		Floor: floor, FloorNS: f.Floor, FloorRatio: f.FloorRatio,
		Baseline: "C loop on liburing: submit, wait, reap", BaselineNS: f.Peer, Ratio: f.Ratio, PeerMax: 1.2,
		Notes: []Note{
			{Name: "Go floor, one cgo call per read, buffer pinned once", Value: Median(f.V[3]), Unit: "ns"},
			{Name: "pinned once, to the peer", Value: medianRatio(f.V[3], f.V[2]), Unit: "x"},
			{Name: "Go floor, pinned per read", Value: Median(f.V[4]), Unit: "ns"},
			{Name: "pinned per read, to the peer", Value: medianRatio(f.V[4], f.V[2]), Unit: "x"},
		}})

	// Steady state: a read and its completion allocate nothing, at either depth.
	for _, l := range []*ReadLoop{qd1, ring} {
		l.Ring(1000)
		a := allocsPerRun(5, func() { l.Ring(1000) }) / 1000
		rows = append(rows, Row{Name: fmt.Sprintf("io_uring ReadAt + completion, queue depth %d (Poll): allocs per op", len(l.bufs)),
			Unit: "allocs/op", OursNS: a, Floor: "-", Baseline: "-", Conds: []Cond{{Name: "allocs/op", Value: a, Max: 0}}})
	}
	return rows, cerr
}
