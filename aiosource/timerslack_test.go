package aiosource_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/internal/leakcheck"
	"github.com/glibaio/glibaio/internal/testutil"
)

// defaultSlackNS is the kernel's default timer slack (init_task's timer_slack_ns): what
// a thread that glibaio never touched has.
const defaultSlackNS = 50000

// timerSlack reads the calling OS thread's timer slack with prctl(PR_GET_TIMERSLACK), or
// returns -1.
func timerSlack() int {
	ns, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return -1
	}
	return ns
}

// untouchedThread locks the test's goroutine to its OS thread for good (the runtime
// retires the thread with the goroutine, so what is set here reaches no other test),
// gives it the kernel's default slack and marks it as never set by glibaio.
func untouchedThread(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	if err := cshim.SetTimerSlack(defaultSlackNS); err != nil {
		t.Fatal(err)
	}
	cshim.ForgetTimerSlack()
	if got := timerSlack(); got != defaultSlackNS {
		t.Fatalf("slack before the test = %d ns, want %d", got, defaultSlackNS)
	}
}

// Poll(true) sets its thread's slack to 1 ns before it first blocks, once per thread,
// and leaves it so; Poll(false) never touches it, even when it polls fds.
func TestPollSetsTimerSlack(t *testing.T) {
	leakcheck.Handles(t)
	untouchedThread(t)
	c := newCtx(t)
	fd := testutil.Eventfd(t)
	if err := c.SetFDHandler(fd, aiosource.FDHandler{Read: func() { testutil.EfdDrain(fd) }}); err != nil {
		t.Fatal(err)
	}
	defer c.SetFDHandler(fd, aiosource.FDHandler{})
	for i := 0; i < 3; i++ {
		c.Poll(false)
	}
	if got := timerSlack(); got != defaultSlackNS {
		t.Fatalf("after Poll(false): slack %d ns, want it untouched (%d)", got, defaultSlackNS)
	}

	calls := cshim.TimerSlackSyscalls()
	fired, inside := 0, -1
	tm := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() {
		fired++
		if fired == 1 {
			inside = timerSlack()
		}
	})
	defer tm.Del()
	for round := 1; round <= 20; round++ {
		tm.ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + int64(200*time.Microsecond))
		for fired < round {
			c.Poll(true)
		}
	}
	if inside != 1 {
		t.Fatalf("slack in the callback of the first blocking Poll = %d ns, want 1", inside)
	}
	if got := timerSlack(); got != 1 {
		t.Fatalf("slack after Poll(true) returned = %d ns, want 1 (not restored, as in QEMU)", got)
	}
	if n := cshim.TimerSlackSyscalls() - calls; n != 1 {
		t.Fatalf("20 blocking Polls on one thread set the slack %d times, want once", n)
	}
}

// MainLoop.Run's thread has slack 1 ns while it runs, and keeps it.
func TestMainLoopRunSetsTimerSlack(t *testing.T) {
	leakcheck.Handles(t)
	untouchedThread(t)
	ml, _ := newMainLoop(t)
	inside := -1
	ml.AioContext().ScheduleOneshot(func() { inside = timerSlack(); ml.Quit() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ml.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if inside != 1 {
		t.Fatalf("slack inside MainLoop.Run = %d ns, want 1", inside)
	}
	if got := timerSlack(); got != 1 {
		t.Fatalf("slack after MainLoop.Run returned = %d ns, want 1", got)
	}
}
