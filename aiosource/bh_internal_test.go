package aiosource

import (
	"testing"

	"github.com/glibaio/glibaio/internal/leakcheck"
)

// aio_compute_timeout's BH part: a blocking Poll may wait for no time while a BH is
// scheduled, 10 ms while only idle ones are (the idle BH's latency bound, which is why an
// idle BH is not progress), and without limit while none is; a timer's deadline wins
// when it is sooner.
func TestComputeTimeoutBHs(t *testing.T) {
	leakcheck.Handles(t)
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	idle := c.NewBH("idle", func() {})
	defer idle.Delete()
	normal := c.NewBH("normal", func() {})
	defer normal.Delete()

	if got := c.computeTimeout(); got != -1 {
		t.Fatalf("nothing scheduled: timeout %d, want -1", got)
	}
	idle.ScheduleIdle()
	if got := c.computeTimeout(); got != 10_000_000 {
		t.Fatalf("an idle BH: timeout %d, want 10 ms", got)
	}
	normal.Schedule()
	if got := c.computeTimeout(); got != 0 {
		t.Fatalf("a scheduled BH: timeout %d, want 0", got)
	}
	normal.Cancel()
	tm := c.NewTimer(ClockHost, ScaleMS, func() {})
	tm.Mod(ClockNS(ClockHost)/ScaleMS + 2)
	if got := c.computeTimeout(); got <= 0 || got > 2_000_000 {
		t.Fatalf("an idle BH and a timer due in 2 ms: timeout %d, want the timer's", got)
	}
	tm.Del()
	// The idle BH runs in the next pass, but its run is not progress.
	if c.Poll(false) {
		t.Fatal("a pass that ran only an idle BH (and a cancelled one) counted as progress")
	}
	if got := c.computeTimeout(); got != -1 {
		t.Fatalf("after the pass: timeout %d, want -1", got)
	}
}
