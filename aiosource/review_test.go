package aiosource_test

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
	"golang.org/x/sys/unix"
)

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
