package aiosource_test

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

func TestCloseReportsLeaks(t *testing.T) {
	leakcheck.Handles(t)
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	c.NewBH("forgotten-bh", func() {})
	deleted := c.NewBH("deleted-bh", func() {})
	deleted.Delete()
	tm := c.NewTimer(aiosource.ClockVirtual, aiosource.ScaleMS, leakyTimerCallback)
	tm.Mod(1 << 40)
	c.ScheduleOneshot(func() {})
	err = c.Close()
	var le *aiosource.LeakError
	if !errors.As(err, &le) {
		t.Fatalf("Close = %v, want a LeakError", err)
	}
	msg := err.Error()
	for _, want := range []string{`"forgotten-bh"`, "leakyTimerCallback", "clock virtual", "1 oneshot"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Close error %q does not mention %s", msg, want)
		}
	}
	if strings.Contains(msg, "deleted-bh") {
		t.Errorf("Close reported a deleted BH: %q", msg)
	}
	// Everything afterwards is a no-op or ErrClosed, and never crashes.
	if !errors.Is(c.Close(), aiosource.ErrClosed) {
		t.Fatal("second Close did not return ErrClosed")
	}
	if c.Poll(true) {
		t.Fatal("Poll after Close made progress")
	}
	a, _ := socketpair(t)
	if err := c.SetFDHandler(a, aiosource.FDHandler{Read: func() {}}); !errors.Is(err, aiosource.ErrClosed) {
		t.Fatalf("SetFDHandler after Close: %v", err)
	}
	if err := c.SetPollParams(1, 0, 0); !errors.Is(err, aiosource.ErrClosed) {
		t.Fatalf("SetPollParams after Close: %v", err)
	}
	c.Notify()
	c.ScheduleOneshot(func() { t.Error("a oneshot ran after Close") })
	late := c.NewBH("late", func() { t.Error("a BH ran after Close") })
	late.Schedule()
	late.Delete()
	if c.Attach(glibloop.DefaultContext()) != 0 {
		t.Fatal("Attach after Close succeeded")
	}
	tm.Mod(0)
	if tm.Pending() {
		t.Fatal("Mod after Close armed a timer")
	}
	c.Poll(false)
}

func leakyTimerCallback() {}

// Concurrent Schedule, Notify and Mod from other goroutines while the context closes
// never crash. (Close itself runs on the loop's side: after the last Poll.)
func TestCloseRacesWithProducers(t *testing.T) {
	leakcheck.Handles(t)
	for i := 0; i < 20; i++ {
		c, _ := aiosource.New()
		bh := c.NewBH("racer", func() {})
		tm := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleNS, func() {})
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					bh.Schedule()
					c.ScheduleOneshot(func() {})
					c.Notify()
					tm.ModNS(1 << 50)
					tm.Del()
				}
			}()
		}
		polled := make(chan struct{})
		go func() {
			defer close(polled)
			for j := 0; j < 50; j++ {
				c.Poll(false)
			}
		}()
		time.Sleep(2 * time.Millisecond)
		<-polled
		bh.Delete()
		c.Close()
		close(stop)
		wg.Wait()
	}
}

func TestMainLoop(t *testing.T) {
	leakcheck.Handles(t)
	mc := glibloop.NewMainContext()
	defer mc.Unref()
	ml, err := aiosource.NewMainLoop(mc)
	if err != nil {
		t.Fatal(err)
	}
	if got := ml.AioContext().Source().Name(); got != "aio-context" {
		t.Fatalf("main context source name %q", got)
	}
	if got := ml.IOHandler().Source().Name(); got != "io-handler" {
		t.Fatalf("iohandler source name %q", got)
	}
	if ml.AioContext().Source().ID() == 0 || ml.IOHandler().Source().ID() == 0 {
		t.Fatal("the contexts are not attached")
	}
	if !ml.AioContext().Source().CanRecurse() {
		t.Fatal("the AioContext source cannot recurse")
	}

	// An iohandler fd handler never runs inside a nested Poll of the main AioContext.
	a, b := socketpair(t)
	var ioRuns, nestedPolls int
	if err := ml.SetFDHandler(a, func() { ioRuns++; drain(a) }, nil); err != nil {
		t.Fatal(err)
	}
	bh := ml.AioContext().NewBH("nested-poll", func() {
		ioBefore := ioRuns
		for i := 0; i < 3; i++ {
			ml.AioContext().Poll(false)
			nestedPolls++
		}
		if ioRuns != ioBefore {
			t.Error("a nested Poll of aio-context ran an io-handler fd handler")
		}
	})
	bh.Schedule()
	defer func() {
		bh.Delete()
		if err := ml.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	b2 := []byte("x")
	if _, err := writeFD(b, b2); err != nil {
		t.Fatal(err)
	}
	// The GLib loop runs both contexts at the top level.
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	glibloop.IdleAdd(mc, func() bool {
		if ioRuns > 0 && nestedPolls == 3 {
			ml.Quit()
			return false
		}
		return true
	})
	if err := ml.Run(ctx); err != nil {
		t.Fatalf("Run: %v (io=%d nested=%d)", err, ioRuns, nestedPolls)
	}
	ml.SetFDHandler(a, nil, nil)
}

// The skeleton of QEMU's test-aio-multithread: IOThreads ping-pong oneshot BHs at random
// for a bounded time. No wakeup may be lost, and shutdown is clean.
func TestMultithreadPingPong(t *testing.T) {
	leakcheck.Handles(t)
	const threads = 5
	var ths []*aiosource.IOThread
	for i := 0; i < threads; i++ {
		th, err := aiosource.NewIOThread("pp" + string(rune('0'+i)))
		if err != nil {
			t.Fatal(err)
		}
		if got := th.Context().Source().Name(); got != "IO pp"+string(rune('0'+i))+" aio-context" {
			t.Fatalf("IOThread source name %q", got)
		}
		ths = append(ths, th)
	}
	var scheduled, ran atomic.Int64
	var stopping atomic.Bool
	perThread := make([]atomic.Int64, threads)
	var seed atomic.Uint64
	seed.Store(0x9e3779b97f4a7c15)
	next := func() int {
		for {
			s := seed.Load()
			x := s ^ s<<13
			x ^= x >> 7
			x ^= x << 17
			if seed.CompareAndSwap(s, x) {
				return int(x % threads)
			}
		}
	}
	var hop func(i int) func()
	hop = func(i int) func() {
		return func() {
			ran.Add(1)
			perThread[i].Add(1)
			if !stopping.Load() {
				j := next()
				scheduled.Add(1)
				ths[j].Context().ScheduleOneshot(hop(j))
			}
		}
	}
	for i := 0; i < threads; i++ {
		scheduled.Add(1)
		ths[i].Context().ScheduleOneshot(hop(i))
	}
	time.Sleep(time.Second)
	stopping.Store(true)
	// Every BH scheduled before the stop must run: wait for the counts to meet.
	deadline := time.Now().Add(10 * time.Second)
	for ran.Load() != scheduled.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if ran.Load() != scheduled.Load() {
		t.Fatalf("%d BHs scheduled, %d ran: a wakeup was lost", scheduled.Load(), ran.Load())
	}
	for i, th := range ths {
		if err := th.Stop(); err != nil {
			t.Errorf("thread %d: %v", i, err)
		}
		if perThread[i].Load() == 0 {
			t.Errorf("thread %d ran nothing", i)
		}
	}
	t.Logf("%d hops in 1 s across %d IOThreads", ran.Load(), threads)
}
