package glibloop_test

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
	"github.com/glibaio/glibaio/internal/testutil"
)

// defaultSlackNS is the kernel's default timer slack (init_task's timer_slack_ns): what
// a thread that glibaio never touched has.
const defaultSlackNS = 50000

// timerSlack reads the calling OS thread's timer slack with prctl(PR_GET_TIMERSLACK).
func timerSlack(t *testing.T) int {
	t.Helper()
	ns, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Fatalf("prctl(PR_GET_TIMERSLACK): %v", err)
	}
	return ns
}

// untouchedThread locks the test's goroutine to its OS thread for good (the thread is
// retired with it, so the slack set here reaches no other test), gives it the kernel's
// default slack and marks it as never set by glibaio.
func untouchedThread(t *testing.T) {
	t.Helper()
	lockOSThread()
	if err := cshim.SetTimerSlack(defaultSlackNS); err != nil {
		t.Fatal(err)
	}
	cshim.ForgetTimerSlack()
	if got := timerSlack(t); got != defaultSlackNS {
		t.Fatalf("slack before the test = %d ns, want %d", got, defaultSlackNS)
	}
}

// Loop.Run sets its thread's timer slack to 1 ns (QEMU's init_clocks()) before its first
// callback and leaves it so after it returns. It makes the syscall once per thread, not
// once per Run, so a slack the program sets afterwards stays.
func TestLoopRunSetsTimerSlack(t *testing.T) {
	leakcheck.Handles(t)
	untouchedThread(t)
	c := testutil.NewContext(t)
	l := glibloop.NewLoop(c)
	run := func() int {
		inside := -1
		glibloop.IdleAdd(c, func() bool { inside = timerSlack(t); l.Quit(); return false })
		if err := l.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		return inside
	}
	calls := cshim.TimerSlackSyscalls()
	for i := 0; i < 3; i++ {
		if got := run(); got != 1 {
			t.Fatalf("Run %d: slack inside Run = %d ns, want 1", i, got)
		}
		if got := timerSlack(t); got != 1 {
			t.Fatalf("Run %d: slack after Run returned = %d ns, want 1 (not restored, as in QEMU)", i, got)
		}
	}
	if n := cshim.TimerSlackSyscalls() - calls; n != 1 {
		t.Fatalf("3 Runs on one thread set the slack %d times, want once", n)
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, 20000, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if got := run(); got != 20000 {
		t.Fatalf("slack inside Run = %d ns, want the 20000 the program set after the first Run", got)
	}
}

// Iteration leaves the slack alone: only the drivers that own a thread set it.
func TestIterationLeavesTimerSlack(t *testing.T) {
	leakcheck.Handles(t)
	untouchedThread(t)
	c := testutil.NewContext(t)
	ran := false
	glibloop.IdleAdd(c, func() bool { ran = true; return false })
	c.Iteration(true)
	if got := timerSlack(t); !ran || got != defaultSlackNS {
		t.Fatalf("after Iteration(true) (dispatched %v): slack %d ns, want it untouched (%d)", ran, got, defaultSlackNS)
	}
}
