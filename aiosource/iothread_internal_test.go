package aiosource

import "testing"

// Once the loop has ended, its OS thread goes back to the Go scheduler, and Stop must not
// take a goroutine that lands there later for the loop: the loop forgets its thread id
// before it unlocks the thread. Which goroutine lands where is up to the scheduler, so
// this checks the id itself, which does not depend on it.
func TestIOThreadForgetsTIDWhenLoopEnds(t *testing.T) {
	th, err := NewIOThread("forget-tid")
	if err != nil {
		t.Fatal(err)
	}
	if th.tid.Load() == 0 {
		t.Fatal("a running IOThread has no thread id")
	}
	th.ctx.ScheduleOneshot(func() { th.ctx.Close() }) // ends the loop from its own thread
	<-th.done
	if tid := th.tid.Load(); tid != 0 {
		t.Fatalf("the ended loop still claims OS thread %d: a goroutine that runs there later would get ErrStopFromOwnThread", tid)
	}
	if err := th.Stop(); err != nil {
		t.Fatal(err)
	}
}
