package aiosource_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
)

func socketpair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// Read runs on IN and on HUP; Write on OUT.
func TestFDHandlerConditions(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		a, b := socketpair(t)
		var reads, writes int
		err := m.ctx.SetFDHandler(a, aiosource.FDHandler{
			Read:  func() { reads++; var buf [64]byte; unix.Read(a, buf[:]) },
			Write: func() { writes++ },
		})
		if err != nil {
			t.Fatal(err)
		}
		m.iterate(false)
		if writes == 0 || reads != 0 {
			t.Fatalf("writable socket: reads=%d writes=%d", reads, writes)
		}
		// Read only, then data, then hang-up.
		m.ctx.SetFDHandler(a, aiosource.FDHandler{Read: func() { reads++; var buf [64]byte; unix.Read(a, buf[:]) }})
		m.flush()
		reads = 0
		unix.Write(b, []byte("x"))
		if !m.iterate(false) || reads != 1 {
			t.Fatalf("readable socket: reads=%d", reads)
		}
		unix.Shutdown(b, unix.SHUT_WR)
		m.iterate(false)
		if reads != 2 {
			t.Fatalf("hung-up socket: reads=%d, want the read handler to run on HUP", reads)
		}
		m.ctx.SetFDHandler(a, aiosource.FDHandler{})
	})
}

// A read callback that removes its handler: the write callback of the same node does
// not run in that pass, nor ever again.
func TestFDHandlerRemovedDuringDispatch(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		a, b := socketpair(t)
		unix.Write(b, []byte("x")) // a is readable and writable
		var reads, writes int
		m.ctx.SetFDHandler(a, aiosource.FDHandler{
			Read: func() {
				reads++
				if err := m.ctx.SetFDHandler(a, aiosource.FDHandler{}); err != nil {
					t.Error(err)
				}
			},
			Write: func() { writes++ },
		})
		m.flush()
		if reads != 1 || writes != 0 {
			t.Fatalf("reads=%d writes=%d, want 1 0", reads, writes)
		}
	})
}

// A handler replaced during the pass: the old node never runs again, and the new node
// is not visited in the pass that replaced it.
func TestFDHandlerReplacedDuringDispatch(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		a, b := socketpair(t)
		c2, d2 := socketpair(t)
		unix.Write(b, []byte("x"))
		unix.Write(d2, []byte("x"))
		var oldRuns, newRuns, pass int
		var replaceNow func()
		first := aiosource.FDHandler{Read: func() { oldRuns++; replaceNow() }}
		// Both fds are ready in the same pass; whichever runs first replaces the other's
		// handler and its own.
		replaceNow = func() {
			pass++
			if pass > 1 {
				return
			}
			nh := aiosource.FDHandler{Read: func() { newRuns++; drain(a); drain(c2) }}
			m.ctx.SetFDHandler(a, nh)
			m.ctx.SetFDHandler(c2, nh)
		}
		m.ctx.SetFDHandler(a, first)
		m.ctx.SetFDHandler(c2, first)
		m.iterate(false)
		if oldRuns != 1 || newRuns != 0 {
			t.Fatalf("in the replacing pass: old=%d new=%d, want 1 0", oldRuns, newRuns)
		}
		m.flush()
		if oldRuns != 1 || newRuns == 0 {
			t.Fatalf("after the pass: old=%d new=%d, want the old handler never again", oldRuns, newRuns)
		}
		m.ctx.SetFDHandler(a, aiosource.FDHandler{})
		m.ctx.SetFDHandler(c2, aiosource.FDHandler{})
	})
}

func drain(fd int) {
	var buf [256]byte
	for {
		if n, _ := unix.Read(fd, buf[:]); n <= 0 {
			return
		}
	}
}

// Poll nests inside a callback, and the nested pass sees the work the outer one left.
func TestNestedPoll(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		a, b := socketpair(t)
		var inner int
		e := newEvent(t, 0, false)
		m.ctx.SetEventNotifier(e.e, func(en *aiosource.EventNotifier) { en.TestAndClear(); inner++ })
		bh := m.ctx.NewBH("nested", func() { inner++ })
		defer bh.Delete()
		outer := 0
		m.ctx.SetFDHandler(a, aiosource.FDHandler{Read: func() {
			drain(a)
			outer++
			e.e.Set()
			bh.Schedule()
			for i := 0; i < 2 && m.ctx.Poll(false); i++ {
			}
		}})
		unix.Write(b, []byte("x"))
		m.flush()
		if outer != 1 || inner != 2 {
			t.Fatalf("outer=%d inner=%d, want the nested Poll to run the notifier and the BH", outer, inner)
		}
		m.ctx.SetFDHandler(a, aiosource.FDHandler{})
		m.ctx.SetEventNotifier(e.e, nil)
	})
}

func TestSetFDHandlerErrors(t *testing.T) {
	leakcheck.Handles(t)
	c := newCtx(t)
	if err := c.SetFDHandler(-1, aiosource.FDHandler{Read: func() {}}); !errors.Is(err, aiosource.ErrBadFD) {
		t.Fatalf("fd -1: %v", err)
	}
	a, _ := socketpair(t)
	if err := c.SetFDHandler(a, aiosource.FDHandler{}); !errors.Is(err, aiosource.ErrNoHandler) {
		t.Fatalf("removing a handler that is not there: %v", err)
	}
	c.SetFDHandler(a, aiosource.FDHandler{Read: func() {}})
	if err := c.SetFDHandler(a, aiosource.FDHandler{}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetFDHandler(a, aiosource.FDHandler{}); !errors.Is(err, aiosource.ErrNoHandler) {
		t.Fatalf("double removal: %v", err)
	}
	// A closed fd.
	x, y := socketpair(t)
	unix.Close(x)
	if err := c.SetFDHandler(x, aiosource.FDHandler{Read: func() {}}); !errors.Is(err, unix.EBADF) {
		t.Fatalf("closed fd: %v", err)
	}
	_ = y
	// A regular file cannot be watched.
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := c.SetFDHandler(int(f.Fd()), aiosource.FDHandler{Read: func() {}}); !errors.Is(err, unix.EPERM) {
		t.Fatalf("regular file: %v", err)
	}
	// PollReady without Poll and Poll without PollReady are accepted (Poll is dropped).
	if err := c.SetFDHandler(a, aiosource.FDHandler{Read: func() {}, Poll: func() bool { return true }}); err != nil {
		t.Fatal(err)
	}
	c.SetFDHandler(a, aiosource.FDHandler{})
}

// A nested walk takes a ready handler over from the outer one (QEMU's
// aio_add_ready_handler): no handler runs twice for one readiness, with stale revents.
func TestNestedWalkTakesReadyHandlersOver(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		a, a2 := socketpair(t)
		b, b2 := socketpair(t)
		var order []string
		read := func(name string, fd int) func() {
			return func() {
				var buf [16]byte
				if n, _ := unix.Read(fd, buf[:]); n <= 0 {
					t.Errorf("%s's read handler ran with nothing to read (stale revents)", name)
				}
				order = append(order, name)
			}
		}
		nested := false
		ra, rb := read("a", a), read("b", b)
		m.ctx.SetFDHandler(a, aiosource.FDHandler{Read: func() {
			ra()
			if !nested {
				nested = true
				m.ctx.Poll(false)
			}
		}})
		m.ctx.SetFDHandler(b, aiosource.FDHandler{Read: func() {
			rb()
			if !nested {
				nested = true
				m.ctx.Poll(false)
			}
		}})
		m.flush()
		writeFD(a2, []byte("x"))
		writeFD(b2, []byte("y"))
		m.flush()
		if len(order) != 2 {
			t.Fatalf("handlers ran in order %v, want each once", order)
		}
		m.ctx.SetFDHandler(a, aiosource.FDHandler{})
		m.ctx.SetFDHandler(b, aiosource.FDHandler{})
	})
}

// An fd that is removed, closed, and whose number is reused for a new registration
// while the loop sleeps in Poll: the new handler is neither dropped as "closed" nor fed
// the old registration's events.
func TestFDNumberReuse(t *testing.T) {
	leakcheck.Handles(t)
	c := newCtx(t)
	var closedErrs atomic.Int32
	c.SetErrorHandler(func(error) { closedErrs.Add(1) })
	stop := make(chan struct{})
	looped := make(chan struct{})
	go func() {
		defer close(looped)
		runtime.LockOSThread()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.Poll(true)
		}
	}()
	var got atomic.Int32
	for i := 0; i < 50; i++ {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		r := p[0]
		if err := c.SetFDHandler(r, aiosource.FDHandler{Read: func() { drain(r) }}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Microsecond)
		c.SetFDHandler(r, aiosource.FDHandler{})
		unix.Close(r)
		unix.Close(p[1])
		// Likely the same numbers again.
		if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		r2, w2 := p[0], p[1]
		ran := make(chan struct{}, 1)
		if err := c.SetFDHandler(r2, aiosource.FDHandler{Read: func() {
			drain(r2)
			select {
			case ran <- struct{}{}:
			default:
			}
		}}); err != nil {
			t.Fatal(err)
		}
		unix.Write(w2, []byte("z"))
		select {
		case <-ran:
			got.Add(1)
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the handler of a reused fd number never ran (errors: %d)", i, closedErrs.Load())
		}
		c.SetFDHandler(r2, aiosource.FDHandler{})
		unix.Close(r2)
		unix.Close(w2)
	}
	close(stop)
	c.Notify()
	<-looped
	if n := closedErrs.Load(); n != 0 {
		t.Fatalf("%d live handlers were reported as closed fds", n)
	}
}
