package aiosource_test

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
)

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A registered fd closed behind the loop's back: the handler is removed, the error
// handler hears of it, and the loop does not spin (it stays idle for a second).
func TestClosedFDBehindTheLoop(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		errs := make(chan error, 4)
		m.ctx.SetErrorHandler(func(err error) { errs <- err })
		defer m.ctx.SetErrorHandler(nil)
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fds[1])
		ran := 0
		m.ctx.SetFDHandler(fds[0], aiosource.FDHandler{Read: func() { ran++ }})
		m.flush()
		unix.Close(fds[0]) // behind the loop's back
		for i := 0; i < 5; i++ {
			m.iterate(false)
		}
		select {
		case err := <-errs:
			var ce *aiosource.ClosedFDError
			if !errors.As(err, &ce) || ce.FD != fds[0] || !errors.Is(err, syscall.EBADF) {
				t.Fatalf("error %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the closed fd was not reported")
		}
		if ran != 0 {
			t.Fatalf("the handler of a closed fd ran %d times", ran)
		}
		// Idle for a second: blocking iterations must sleep, not spin.
		before := cpuTime()
		deadline := time.Now().Add(time.Second)
		tm := m.ctx.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() {})
		for time.Now().Before(deadline) {
			if !tm.Pending() {
				tm.ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + int64(100*time.Millisecond))
			}
			m.iterate(true)
		}
		tm.Del()
		if used := cpuTime() - before; used > 200*time.Millisecond {
			t.Fatalf("the loop used %v of CPU in one idle second: it spins", used)
		}
		if err := m.ctx.SetFDHandler(fds[0], aiosource.FDHandler{}); !errors.Is(err, aiosource.ErrNoHandler) {
			t.Fatalf("the handler was not removed: %v", err)
		}
	})
}
