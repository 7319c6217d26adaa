package aiosource_test

import (
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

// spinOn turns the spinning poll on for the test (GLIBAIO_POLL_MAX_NS=32000).
func spinOn(t *testing.T) {
	old := cshim.SpinMax()
	cshim.SetSpinMax(32000)
	t.Cleanup(func() { cshim.SetSpinMax(old) })
}

// With GLIBAIO_POLL_MAX_NS set, the first prepare of a context's reactor gives its
// GMainContext the spinning poll function (cshim/spin.h), which the last context closed
// takes back: GLib's g_poll again. Unset (the default), nothing is installed.
func TestSpinPollInstalledAndRestored(t *testing.T) {
	leakcheck.Handles(t)
	off := glibloop.NewMainContext()
	defer off.Unref()
	if cshim.SpinMax() == 0 {
		c, err := aiosource.New()
		if err != nil {
			t.Fatal(err)
		}
		c.Attach(off)
		off.Iteration(false)
		if cshim.SpinInstalled(off.Native()) {
			t.Fatal("spinning is off, yet the poll function was replaced")
		}
		c.Close()
	}
	spinOn(t)
	mc := glibloop.NewMainContext()
	defer mc.Unref()
	ml, err := aiosource.NewMainLoop(mc) // two contexts on mc: aio-context and io-handler
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if cshim.SpinInstalled(mc.Native()) {
		t.Fatal("the poll function changed before any prepare")
	}
	mc.Iteration(false)
	if !cshim.SpinInstalled(mc.Native()) {
		t.Fatal("the first iteration left GLib's poll function")
	}
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	c.Attach(mc)
	mc.Iteration(false)
	ml.Close()
	if !cshim.SpinInstalled(mc.Native()) {
		t.Fatal("closing two of three contexts took the poll function back")
	}
	c.Close()
	if cshim.SpinInstalled(mc.Native()) {
		t.Fatal("closing the last context left the spinning poll function")
	}
	// Still a working GMainContext, and a new context installs it again.
	c, err = aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Attach(mc)
	ran := false
	c.ScheduleOneshot(func() { ran = true })
	mc.Iteration(false)
	mc.Iteration(false)
	if !ran || !cshim.SpinInstalled(mc.Native()) {
		t.Fatalf("after reattaching: ran %v, installed %v", ran, cshim.SpinInstalled(mc.Native()))
	}
}

// A GMainContext whose program set a poll function of its own keeps it: nothing spins
// there, and the context works as before.
func TestSpinPollLeavesForeignPollFunc(t *testing.T) {
	leakcheck.Handles(t)
	spinOn(t)
	mc := glibloop.NewMainContext()
	defer mc.Unref()
	cshim.SetForeignPollFunc(mc.Native())
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Attach(mc)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ran atomic.Bool
	go func() {
		time.Sleep(5 * time.Millisecond)
		c.ScheduleOneshot(func() { ran.Store(true) })
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !ran.Load() && time.Now().Before(deadline) {
		mc.Iteration(true)
	}
	if !ran.Load() {
		t.Fatal("a oneshot from another goroutine never woke the blocking iteration")
	}
	if cshim.SpinInstalled(mc.Native()) {
		t.Fatal("the program's own poll function was replaced")
	}
}

// The spin's budget adapts as QEMU's polling time does: a wait that ends at once grows it
// from 0 to 4 us, and waits longer than 32 us halve it, to 0 below 4 us. A non-blocking
// iteration neither spins nor adapts.
func TestSpinBudgetAdapts(t *testing.T) {
	leakcheck.Handles(t)
	spinOn(t)
	c, mc := newAttached(t)
	runtime.LockOSThread() // the budget is the thread's
	defer runtime.UnlockOSThread()

	cshim.SetSpinBudget(0)
	fd, err := unix.Eventfd(1, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC) // readable
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	reads := 0
	c.SetFDHandler(fd, aiosource.FDHandler{Read: func() { reads++ }}) // never drains it
	mc.Iteration(true)
	if got := cshim.SpinBudget(); got != 4000 {
		t.Fatalf("after a wait that ended at once the budget is %d ns, want 4000", got)
	}
	hits := cshim.SpinHits()
	for range 10 {
		mc.Iteration(false)
	}
	if cshim.SpinBudget() != 4000 || cshim.SpinHits() != hits {
		t.Fatal("non-blocking iterations changed the budget or spun")
	}
	c.SetFDHandler(fd, aiosource.FDHandler{})
	if reads == 0 {
		t.Fatal("the ready fd was never dispatched")
	}

	// Each wait for a timer 2 ms away halves the budget. A sample counts only if the
	// iteration that ran the timer waited for it: on a loaded machine the thread may be
	// preempted past the deadline before it waits, and a wait that ends at once does not
	// halve the budget (that step is then taken again from the same budget).
	fired := 0
	tm := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { fired++ })
	budget := int64(32000)
	for _, want := range []int64{16000, 8000, 4000, 0, 0} {
		for attempt := 1; ; attempt++ {
			cshim.SetSpinBudget(budget)
			tm.ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + 2_000_000)
			var last time.Duration // the iteration that ran the timer
			for before := fired; fired == before; {
				start := time.Now()
				mc.Iteration(true)
				last = time.Since(start)
			}
			if last >= time.Millisecond {
				break
			}
			if attempt == 50 {
				t.Fatalf("no iteration in 50 waited for a timer 2 ms away")
			}
		}
		if got := cshim.SpinBudget(); got != want {
			t.Fatalf("after a 2 ms wait the budget is %d ns, want %d", got, want)
		}
		budget = want
	}
}

// While a poll spins, producers write no eventfd: the loop sees their work through the
// ready word, or through kicked once the spin ends. Nothing they do may be lost: a
// oneshot, a BH, a timer armed to fire soon, or a new fd handler on a readable fd, each
// at a random moment before, during or after the spin, must wake the blocking iteration.
func TestSpinNoLostWakeups(t *testing.T) {
	leakcheck.Handles(t)
	spinOn(t)
	c, mc := newAttached(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	rounds := 3000
	if testing.Short() {
		rounds = 500
	}
	var done atomic.Int64 // the rounds whose work ran
	bh := c.NewBH("spin-bh", func() { done.Add(1) })
	defer bh.Delete()
	tm := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() { done.Add(1) })
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	var b [8]byte
	b[0] = 1
	fdRound := func() {
		unix.Write(efd, b[:])
		c.SetFDHandler(efd, aiosource.FDHandler{Read: func() {
			unix.Read(efd, b[:])
			c.SetFDHandler(efd, aiosource.FDHandler{})
			done.Add(1)
		}})
	}
	actions := []func(){
		func() { c.ScheduleOneshot(func() { done.Add(1) }) },
		bh.Schedule,
		func() { tm.ModNS(aiosource.ClockNS(aiosource.ClockRealtime) + 5000) },
		fdRound,
	}
	start := make(chan int)
	go func() {
		for r := range start {
			// 0 to 40 us from the start of the round: before, in or after the spin.
			wait := time.Duration(rand.IntN(40)) * time.Microsecond
			for t0 := time.Now(); time.Since(t0) < wait; {
			}
			actions[r%len(actions)]()
		}
	}()
	defer close(start)
	// A lost wakeup would block the iteration for good: wake the context every 2 s, and
	// fail a round that needed it.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Second):
				mc.Wakeup()
			}
		}
	}()
	hits := cshim.SpinHits()
	for r := range rounds {
		cshim.SetSpinBudget(32000) // spin every round
		start <- r
		t0 := time.Now()
		for done.Load() <= int64(r) {
			mc.Iteration(true)
		}
		if el := time.Since(t0); el > 1500*time.Millisecond {
			t.Fatalf("round %d (action %d) took %v: the loop was not woken for its work", r, r%len(actions), el)
		}
	}
	t.Logf("%d rounds, %d found by the spin", rounds, cshim.SpinHits()-hits)
	if cshim.SpinHits() == hits {
		t.Fatal("no spin ever found work: the spin was not exercised")
	}
}
