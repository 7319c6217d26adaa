package aiosource

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

// An IOThread's thread has slack 1 ns from its first callback on, before its first
// blocking wait, even on an OS thread glibaio never touched: the hook gives the thread
// the kernel's default slack (50 µs) and schedules the callback before the first Poll,
// which therefore runs it without blocking.
func TestIOThreadSetsTimerSlack(t *testing.T) {
	leakcheck.Handles(t)
	res := make(chan [2]int, 1)
	testHookThreadStart = func(th *IOThread) {
		if th.id != "slack" {
			return // another test's IOThread
		}
		before := -1
		if cshim.SetTimerSlack(50000) == nil {
			cshim.ForgetTimerSlack()
			before, _ = unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
		}
		th.ctx.ScheduleOneshot(func() {
			ns, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
			if err != nil {
				ns = -1
			}
			res <- [2]int{before, ns}
		})
	}
	defer func() { testHookThreadStart = nil }()
	th, err := NewIOThread("slack")
	if err != nil {
		t.Fatal(err)
	}
	defer th.Stop()
	select {
	case got := <-res:
		if got[0] != 50000 {
			t.Fatalf("the hook could not give the thread the default slack: %d ns", got[0])
		}
		if got[1] != 1 {
			t.Fatalf("slack in the IOThread's first callback = %d ns, want 1", got[1])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the IOThread never ran the callback")
	}
}
