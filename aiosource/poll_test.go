package aiosource_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
)

// Adaptive busy polling: once a handler with a Poll callback has fired, a blocking Poll
// spins on its Poll callback first, and PollReady runs instead of Read. A registered
// handler without Poll disables busy polling altogether.
func TestAdaptivePolling(t *testing.T) {
	leakcheck.Handles(t)
	c := newCtx(t)
	if err := c.SetPollParams(-1, 0, 0); err == nil {
		t.Fatal("SetPollParams accepted a negative max")
	}
	if err := c.SetPollParams(int64(50*time.Millisecond), 0, 0); err != nil {
		t.Fatal(err)
	}
	a, b := socketpair(t)
	var flag atomic.Bool
	var reads, pollReadies int
	c.SetFDHandler(a, aiosource.FDHandler{
		Read:      func() { reads++; drain(a) },
		Poll:      func() bool { return flag.Load() },
		PollReady: func() { pollReadies++; flag.Store(false) },
	})
	// Fire once through the fd so the handler joins the poll list; the growth rules then
	// give it a polling time.
	// Poll(true), not Poll(false): every handler has a Poll callback, so a non-blocking
	// Poll looks at no fd, as QEMU's aio_poll (TestPollFalseNeedWait). The byte is
	// there: it does not block.
	for i := 0; i < 6; i++ {
		writeFD(b, []byte("x"))
		c.Poll(true)
	}
	if reads == 0 {
		t.Fatal("the read handler never ran")
	}
	// Readiness that only the Poll callback can see: the busy poll before blocking finds
	// it, and PollReady runs instead of Read. (Were polling off, this Poll would block:
	// a safety write ends it after 5 s, and the test fails.)
	readsBefore := reads
	flag.Store(true)
	safety := time.AfterFunc(5*time.Second, func() { writeFD(b, []byte("x")) })
	if !c.Poll(true) || pollReadies != 1 || reads != readsBefore {
		t.Fatalf("busy polling: progress with pollReadies=%d reads=%d, want 1 and no read", pollReadies, reads-readsBefore)
	}
	safety.Stop()
	// A second handler without Poll disables busy polling: the flag is not seen.
	x, _ := socketpair(t)
	c.SetFDHandler(x, aiosource.FDHandler{Read: func() {}})
	for c.Poll(false) {
	}
	before := pollReadies
	flag.Store(true)
	c.Poll(false)
	if pollReadies != before {
		t.Fatal("busy polling ran with a handler that has no Poll callback")
	}
	c.SetFDHandler(x, aiosource.FDHandler{})
	c.SetFDHandler(a, aiosource.FDHandler{})
}

// Notify followed by Poll(true) returns false at once.
func TestNotifyThenPoll(t *testing.T) {
	leakcheck.Handles(t)
	c := newCtx(t)
	c.Notify()
	done := make(chan bool)
	go func() { done <- c.Poll(true) }()
	select {
	case p := <-done:
		if p {
			t.Fatal("Poll(true) after Notify reported progress")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Poll(true) blocked after Notify")
	}
	// And a Notify from another goroutine wakes a blocked Poll(true), which returns false.
	go func() { done <- c.Poll(true) }()
	time.Sleep(20 * time.Millisecond)
	c.Notify()
	select {
	case p := <-done:
		if p {
			t.Fatal("a bare Notify counted as progress")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Notify did not wake a blocked Poll")
	}
}
