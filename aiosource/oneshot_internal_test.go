package aiosource

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/reactor"

	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

// tryStall claims the ring's next slot the way push does, without writing it: a
// producer descheduled between its CAS and its store. finish completes the write and
// notifies, as push's caller would. It fails when the ring is full.
func tryStall(c *Context, fn func()) (finish func(), ok bool) {
	q := &c.oneshots
	pos := q.tail.Load()
	if pos >= q.freed.Load()+oneshotRingSize || !q.tail.CompareAndSwap(pos, pos+1) {
		return nil, false
	}
	return func() {
		s := &q.slots[pos&(oneshotRingSize-1)]
		s.fn = fn
		s.seq.Store(pos + 1)
		c.r.SetReady(reactor.ReadyNow)
		c.Notify()
	}, true
}

func stall(t *testing.T, c *Context, fn func()) (finish func()) {
	t.Helper()
	finish, ok := tryStall(c, fn)
	if !ok {
		t.Fatal("could not claim a slot")
	}
	return finish
}

// A producer stalled between claiming its slot and writing it holds back nobody: the
// oneshots claimed after it run in the next pass, and it runs once written. Nothing runs
// twice, and the ring stays consistent over many laps afterwards.
func TestOneshotRingStalledProducer(t *testing.T) {
	leakcheck.Handles(t)
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	runs := map[string]int{}
	finishA := stall(t, c, func() { runs["A"]++ })
	c.ScheduleOneshot(func() { runs["B"]++ })
	c.ScheduleOneshot(func() { runs["C"]++ })
	if !c.Poll(false) || runs["B"] != 1 || runs["C"] != 1 {
		t.Fatalf("the pass after B and C were scheduled ran %v, want B and C", runs)
	}
	if c.oneshots.ready() || c.computeTimeout() == 0 {
		t.Fatal("a slot still being written counts as ready work: the loop would spin")
	}
	if n := c.pendingOneshots(); n != 1 {
		t.Fatalf("pending %d, want 1 (A)", n)
	}
	finishA()
	if !c.Poll(true) || runs["A"] != 1 {
		t.Fatalf("after A was written, Poll ran %v", runs)
	}
	if n := c.pendingOneshots(); n != 0 || c.oneshots.head != c.oneshots.tail.Load() {
		t.Fatalf("pending %d, head %d, tail %d after everything ran", n, c.oneshots.head, c.oneshots.tail.Load())
	}
	// Several laps, with a stall in the middle of each.
	total := 0
	for lap := 0; lap < 5; lap++ {
		finish := stall(t, c, func() { total++ })
		for i := 0; i < oneshotRingSize/2; i++ {
			c.ScheduleOneshot(func() { total++ })
		}
		for c.Poll(false) {
		}
		finish()
		for c.Poll(false) {
		}
	}
	if want := 5 * (oneshotRingSize/2 + 1); total != want {
		t.Fatalf("%d oneshots ran over the laps, want %d", total, want)
	}
	if n := c.pendingOneshots(); n != 0 || c.oneshots.held != 0 || c.oneshots.head != c.oneshots.tail.Load() {
		t.Fatalf("pending %d, held %d, head %d, tail %d at the end", n, c.oneshots.held, c.oneshots.head, c.oneshots.tail.Load())
	}
}

// While a stalled slot holds the ring's oldest position, producers cannot lap it: the
// ring reports full one lap past it, and the overflow goes to the BH list.
func TestOneshotRingStallBoundsTheTail(t *testing.T) {
	leakcheck.Handles(t)
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	finish := stall(t, c, func() {})
	n := 0
	for i := 0; i < oneshotRingSize-1; i++ {
		if !c.oneshots.push(func() { n++ }) {
			t.Fatalf("push %d failed before the ring was full", i)
		}
	}
	c.r.SetReady(reactor.ReadyNow) // published, as ScheduleOneshot does after its push
	for c.Poll(false) {
	}
	if n != oneshotRingSize-1 {
		t.Fatalf("%d ran", n)
	}
	// Every slot but the stalled one is consumed, yet position head+size is its.
	if c.oneshots.push(func() {}) {
		t.Fatal("a producer lapped a slot that is still being written")
	}
	finish()
	for c.Poll(false) {
	}
	if !c.oneshots.push(func() { n++ }) {
		t.Fatal("the ring stayed full after the stalled slot ran")
	}
	c.r.SetReady(reactor.ReadyNow)
	for c.Poll(false) {
	}
	if n != oneshotRingSize {
		t.Fatalf("%d ran, want %d", n, oneshotRingSize)
	}
}

// The same stall under a real GMainContext, with a nested GLib iteration in a oneshot
// behind it: GLib neither spins on the stalled slot nor sleeps through the oneshots after
// it, and finishing the stall from another goroutine wakes a blocking iteration.
func TestOneshotRingStallUnderGLib(t *testing.T) {
	leakcheck.Handles(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	mc := glibloop.NewMainContext()
	defer mc.Unref()
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Attach(mc)
	if !mc.Acquire() {
		t.Fatal("Acquire")
	}
	defer mc.Release()
	for mc.Iteration(false) {
	}
	var ranA atomic.Bool
	runs := 0
	finishA := stall(t, c, func() { ranA.Store(true) })
	// nested: a oneshot that iterates GLib inside its callback, behind the stall
	c.ScheduleOneshot(func() {
		runs++
		c.ScheduleOneshot(func() { runs++ })
		for i := 0; i < 5 && mc.Iteration(false); i++ {
		}
	})
	c.ScheduleOneshot(func() { runs++ })
	n := 0
	for mc.Iteration(false) {
		n++
		if n > 50 {
			t.Fatalf("GLib spins with a stalled slot (runs %d)", runs)
		}
	}
	if runs != 3 {
		t.Fatalf("runs %d", runs)
	}
	go func() { time.Sleep(30 * time.Millisecond); finishA() }()
	start := time.Now()
	for !ranA.Load() && time.Since(start) < 2*time.Second {
		mc.Iteration(true)
	}
	if !ranA.Load() {
		t.Fatal("A never ran")
	}
	n = 0
	for mc.Iteration(false) {
		n++
		if n > 50 {
			t.Fatal("spin after A")
		}
	}
	if c.oneshots.head != c.oneshots.tail.Load() || c.oneshots.held != 0 {
		t.Fatalf("head %d tail %d held %d", c.oneshots.head, c.oneshots.tail.Load(), c.oneshots.held)
	}
}

// A nested pass consumes positions after the one whose callback runs it and frees their
// slots, which producers then write for the next lap while the outer pass goes on: the
// outer pass must not read those slots again for their old positions (under -race, a
// read of a slot that a producer is writing is reported). Every oneshot runs once.
func TestOneshotNestedPassWithProducers(t *testing.T) {
	leakcheck.Handles(t)
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const producers, each = 4, 20000
	var ran atomic.Int64
	var nested atomic.Int64
	fn := func() {
		if ran.Add(1)%97 == 0 {
			nested.Add(1)
			c.Poll(false) // consumes, and frees, the positions after this one
		}
	}
	done := make(chan struct{})
	for range producers {
		go func() {
			defer func() { done <- struct{}{} }()
			for range each {
				c.ScheduleOneshot(fn)
			}
		}()
	}
	finished := 0
	deadline := time.Now().Add(30 * time.Second)
	for ran.Load() < producers*each {
		select {
		case <-done:
			finished++
		default:
		}
		c.Poll(false)
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d ran", ran.Load(), producers*each)
		}
	}
	for ; finished < producers; finished++ {
		<-done
	}
	for c.Poll(false) {
	}
	if got := ran.Load(); got != producers*each {
		t.Fatalf("%d ran, want %d", got, producers*each)
	}
	t.Logf("%d nested passes", nested.Load())
}
