package aiosource

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/reactor"
)

// BenchmarkDispatchPath measures the Go half of the fd round trip alone: the GSource
// dispatch of a context with one fd event harvested, whose read handler does nothing,
// called directly (no GLib iteration, no crossing). It is the part of the round trip
// that aiosource itself adds above a Go source's bare Dispatch.
func BenchmarkDispatchPath(b *testing.B) {
	c, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	ran := 0
	if err := c.SetFDHandler(fd, FDHandler{Read: func() { ran++ }}); err != nil {
		b.Fatal(err)
	}
	defer c.SetFDHandler(fd, FDHandler{})
	n := c.table.Load().get(int32(fd))
	events := []reactor.Event{{FD: int32(fd), Events: unix.EPOLLIN, Tag: n.gen}}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c.dispatch(events)
	b.ReportAllocs()
	for b.Loop() {
		c.dispatch(events)
	}
	if ran == 0 {
		b.Fatal("the handler never ran")
	}
}

// A BH pass looks at the BH list only when the ready word says work was queued, or a
// slice is left over: every way of queueing a BH sets the word after the push. This
// checks both halves of that contract: a push whose ready bit is not set yet waits for
// the pass after the bit (it is mid-enqueue), and every public way of queueing sets it.
func TestBHPassNeedsReadyWord(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ran := 0
	b := c.NewBH("raw", func() { ran++ })
	defer b.Delete()
	// A producer between its push and its SetReady.
	b.flags.Or(bhPending | bhScheduled)
	b.next = c.bhList.Load()
	c.bhList.Store(b)
	if c.Poll(false) || ran != 0 {
		t.Fatal("a pass took a BH whose enqueue had not set the ready word yet")
	}
	c.r.SetReady(reactor.ReadyNow) // the producer finishes
	if !c.Poll(false) || ran != 1 {
		t.Fatalf("the pass after the ready word was set ran the BH %d times, want 1", ran)
	}
	for name, queue := range map[string]func(){
		"Schedule":        b.Schedule,
		"ScheduleIdle":    b.ScheduleIdle,
		"ScheduleOneshot": func() { c.ScheduleOneshot(func() { ran++ }) },
	} {
		if c.r.Ready() != 0 {
			t.Fatalf("before %s: ready word %#x, want 0", name, c.r.Ready())
		}
		before := ran
		queue()
		if c.r.Ready() == 0 {
			t.Fatalf("%s left the ready word clear", name)
		}
		c.Poll(false)
		if ran != before+1 {
			t.Fatalf("%s: the BH ran %d times in the next pass, want 1", name, ran-before)
		}
	}
	// Delete queues the BH too (to free it): the word is set, and the pass clears it.
	d := c.NewBH("deleted", func() { t.Fatal("a deleted BH ran") })
	d.Delete()
	if c.r.Ready() == 0 {
		t.Fatal("Delete left the ready word clear")
	}
	c.Poll(false)
	if c.bhList.Load() != nil || len(c.slices) != 0 {
		t.Fatal("a pass after Delete left the BH queued")
	}
}

// BenchmarkOneshotDrain measures the loop's half of the oneshot flood: a pass that runs
// 512 queued oneshots (queued with the timer stopped), per oneshot.
func BenchmarkOneshotDrain(b *testing.B) {
	c, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ran := 0
	fn := func() { ran++ }
	const batch = 512
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for range batch {
			c.ScheduleOneshot(fn)
		}
		b.StartTimer()
		c.Poll(false)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/oneshot")
	if ran != b.N*batch {
		b.Fatalf("%d ran, want %d", ran, b.N*batch)
	}
}
