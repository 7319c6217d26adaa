package aiosource_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
	"golang.org/x/sys/unix"
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
