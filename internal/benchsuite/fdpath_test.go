package benchsuite

import (
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/cbaseline"
)

// The fd round trip against its floors (issue 14): an eventfd write plus one GLib
// iteration that dispatches a read of it, measured for
//   - C-recurse: a C GSource shaped as GLib sees aiosource's reactor (prepare and check
//     in C, an idle kick eventfd, can_recurse), reading the eventfd in C: the floor;
//   - C-plain: the same without can_recurse (GLib blocks and unblocks its fds around
//     every dispatch), the peer the table used to call "pure C";
//   - Go-naive: a glibloop Source whose only crossing is Dispatch, reading the eventfd
//     from Go, with can_recurse;
//   - reactor alone: glibaio's reactor source with a Go dispatch that only reads the
//     eventfd (ReactorFloor): the C side of an AioContext and its one crossing;
//   - glibaio: an AioContext with a read handler on the eventfd (FDLoop).

// recurseSource is a reactor-shaped C source on its own context.
type recurseSource struct {
	mc         *glibloop.MainContext
	fd, kick   int
	src        unsafe.Pointer
	canRecurse bool
}

func newRecurseSource(canRecurse bool) (*recurseSource, error) {
	fds, err := eventfds(2)
	if err != nil {
		return nil, err
	}
	r := &recurseSource{mc: glibloop.NewMainContext(), fd: fds[0], kick: fds[1], canRecurse: canRecurse}
	r.src = cbaseline.NewReactorShaped(r.fd, r.kick, canRecurse)
	cbaseline.Attach(r.src, r.mc.Native())
	return r, nil
}

func (r *recurseSource) Drive(n int) time.Duration {
	return cbaseline.Drive(r.mc.Native(), r.fd, n, false)
}

func (r *recurseSource) Close() {
	cbaseline.DestroyUnref(r.src)
	r.mc.Unref()
	closeAll([]int{r.fd, r.kick})
}

// naiveFuncs is the simplest Go source: Dispatch reads the eventfd.
type naiveFuncs struct {
	fd int
	n  int
}

func (f *naiveFuncs) Dispatch(*glibloop.Source) bool {
	var b [8]byte
	if k, _ := unix.Read(f.fd, b[:]); k == 8 {
		f.n++
	}
	return true
}

type naiveGoSource struct {
	mc  *glibloop.MainContext
	fd  int
	src *glibloop.Source
	f   *naiveFuncs
}

func newNaiveGoSource() (*naiveGoSource, error) {
	fds, err := eventfds(1)
	if err != nil {
		return nil, err
	}
	g := &naiveGoSource{mc: glibloop.NewMainContext(), fd: fds[0], f: &naiveFuncs{fd: fds[0]}}
	g.src = glibloop.NewSource(g.f)
	g.src.AddUnixFD(g.fd, glibloop.IOIn)
	g.src.SetCanRecurse(true)
	g.src.Attach(g.mc)
	return g, nil
}

func (g *naiveGoSource) Drive(n int) time.Duration {
	return cbaseline.Drive(g.mc.Native(), g.fd, n, false)
}

func (g *naiveGoSource) Close() {
	g.src.Destroy()
	g.src.Unref()
	g.mc.Unref()
	unix.Close(g.fd)
}

func BenchmarkFDPath(b *testing.B) {
	for _, side := range []struct {
		name string
		mk   func() (interface {
			Drive(int) time.Duration
			Close()
		}, error)
	}{
		{"C-recurse", func() (interface {
			Drive(int) time.Duration
			Close()
		}, error) {
			return newRecurseSource(true)
		}},
		{"C-plain", func() (interface {
			Drive(int) time.Duration
			Close()
		}, error) {
			return newRecurseSource(false)
		}},
		{"Go-naive", func() (interface {
			Drive(int) time.Duration
			Close()
		}, error) {
			return newNaiveGoSource()
		}},
		{"glibaio", func() (interface {
			Drive(int) time.Duration
			Close()
		}, error) {
			return NewFDLoop(0)
		}},
	} {
		b.Run(side.name, func(b *testing.B) {
			d, err := side.mk()
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			d.Drive(1000)
			b.ReportAllocs()
			b.ResetTimer()
			d.Drive(b.N)
		})
	}
}

// TestFDPathRatios prints the six sides' medians over interleaved rounds and the
// ratios to the can_recurse C floor. It measures; it asserts only that each side ran.
// GLIBAIO_FDPATH=ROUNDS runs it (it takes a few seconds per 10 rounds).
func TestFDPathRatios(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("GLIBAIO_FDPATH"))
	if rounds <= 0 {
		t.Skip("GLIBAIO_FDPATH=ROUNDS runs it")
	}
	floor, err := newRecurseSource(true)
	if err != nil {
		t.Fatal(err)
	}
	defer floor.Close()
	plain, err := newRecurseSource(false)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	naive, err := newNaiveGoSource()
	if err != nil {
		t.Fatal(err)
	}
	defer naive.Close()
	ours, err := NewFDLoop(0)
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	rf, err := NewReactorFloor()
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	// The naive source without callback statistics: what a Go source's crossing costs
	// without the two clock reads that glibaio's fd handler pays too.
	naiveBare := func(n int) time.Duration {
		glibloop.SetCallbackStats(false)
		defer glibloop.SetCallbackStats(true)
		return naive.Drive(n)
	}
	sides := []func(int) time.Duration{floor.Drive, plain.Drive, naive.Drive, naiveBare, rf.Drive, ours.Drive}
	names := []string{"C-recurse", "C-plain", "Go-naive", "Go-naive, no statistics", "reactor alone", "glibaio"}
	const n = 20000
	ns := make([][]float64, len(sides))
	ratios := make([][]float64, len(sides))
	for _, s := range sides {
		s(n / 10)
	}
	// GLIBAIO_FDPATH_CLOCK=cpu times each side by the thread's CPU time instead of the
	// wall clock: on a VM whose other jobs take the cores away, the time the loop thread
	// did not run is left out (the whole round trip runs on the calling thread).
	cpu := os.Getenv("GLIBAIO_FDPATH_CLOCK") == "cpu"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for r := 0; r < rounds; r++ {
		got := make([]float64, len(sides))
		for k := range sides {
			i := (k + r) % len(sides) // rotate the order
			if cpu {
				t0 := threadCPU()
				sides[i](n)
				got[i] = float64(threadCPU()-t0) / n
			} else {
				got[i] = float64(sides[i](n)) / n
			}
		}
		for i := range sides {
			ns[i] = append(ns[i], got[i])
			ratios[i] = append(ratios[i], got[i]/got[0])
		}
	}
	for i := range sides {
		t.Logf("%-23s %7.0f ns (%4.0f-%4.0f)  %.3fx of C-recurse (%.3f-%.3f)", names[i],
			Median(ns[i]), Percentile(ns[i], 0), Percentile(ns[i], 100),
			Median(ratios[i]), Percentile(ratios[i], 0), Percentile(ratios[i], 100))
	}
	if ours.Ctx.Stats().Handlers == 0 || naive.f.n == 0 || rf.Ran == 0 || cbaseline.ReactorShapedCount(floor.src) == 0 {
		t.Fatal("a side never read its eventfd")
	}
}

// threadCPU returns the calling thread's CPU time in ns.
func threadCPU() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}
