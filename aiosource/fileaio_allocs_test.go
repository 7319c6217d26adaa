//go:build !race && !asan

// The race detector's and AddressSanitizer's instrumentation allocate on their own, so
// allocation counts are checked in normal builds only.

package aiosource_test

import (
	"runtime"
	"testing"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

// In steady state a file operation allocates nothing: its slot, its pin and its place
// in the ring are reused, on io_uring with a callback or awaited by a coroutine, and on
// the thread-pool engine with a callback.
func TestFileAIOAllocs(t *testing.T) {
	leakcheck.Handles(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, e := range engines {
		c := newCtx(t)
		useEngine(t, c, e)
		f, _ := tempFile(t, pattern(1<<20, 2))
		fd := int(f.Fd())
		buf := make([]byte, 4096)
		off := int64(0)
		finished := false
		done := func(n int, err error) {
			if n != len(buf) || err != nil {
				t.Errorf("%v: read %d, %v", e, n, err)
			}
			finished = true
		}
		readOne := func() {
			finished = false
			off = (off + 4096*7) % (1 << 20)
			c.ReadAt(fd, buf, off, done)
			for !finished {
				c.Poll(true)
			}
		}
		readOne()
		if n := testing.AllocsPerRun(1000, readOne); n != 0 {
			t.Errorf("%v: ReadAt + completion under Poll: %v allocations per read, want 0", e, n)
		}

		if e == aiosource.AIOThreads {
			// In chains, the thread pool starts a worker whenever none is idle yet when
			// a completion submits the next request, and ends workers idle for 10 s:
			// its own allocations, not the file engine's.
			continue
		}

		// A chain: each completion issues the next read (a queue depth of 1).
		left := 0
		var next func(int, error)
		next = func(n int, err error) {
			if n != len(buf) || err != nil {
				t.Errorf("%v: read %d, %v", e, n, err)
			}
			if left--; left > 0 {
				off = (off + 4096*3) % (1 << 20)
				c.ReadAt(fd, buf, off, next)
			}
		}
		chain := func() {
			left = 100
			c.ReadAt(fd, buf, 0, next)
			for left > 0 {
				c.Poll(true)
			}
		}
		chain()
		if n := testing.AllocsPerRun(20, chain); n != 0 {
			t.Errorf("%v: 100 chained reads: %v allocations per chain, want 0", e, n)
		}

		// A coroutine that awaits reads. Each Poll is a walk, and a coroutine that yields
		// across walks gets a new worker (a few allocations) when it is made: the reads
		// themselves must add nothing, so 1000 reads cost what 100 do.
		coDone, reads := false, 0
		body := func(*aiosource.Coroutine) {
			for i := 0; i < reads; i++ {
				if n, err := aiosource.ReadAtCo(fd, buf, int64(i%256)*4096); n != len(buf) || err != nil {
					t.Errorf("%v: ReadAtCo %d, %v", e, n, err)
				}
			}
			coDone = true
		}
		enter := func() { aiosource.NewCoroutine(body).Enter() }
		awaitReads := func() {
			coDone = false
			c.ScheduleOneshot(enter)
			for !coDone {
				c.Poll(true)
			}
		}
		reads = 100
		awaitReads()
		few := testing.AllocsPerRun(20, awaitReads)
		reads = 1000
		many := testing.AllocsPerRun(20, awaitReads)
		if many != few {
			t.Errorf("%v: a coroutine awaiting 100 reads: %v allocations; 1000 reads: %v", e, few, many)
		}
	}
}
