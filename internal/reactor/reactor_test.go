package reactor_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/testutil"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
	"github.com/glibaio/glibaio/internal/reactor"
	"github.com/glibaio/glibaio/internal/watch"
)

func newReactor(t *testing.T, dispatch func([]reactor.Event)) *reactor.Reactor {
	t.Helper()
	r, err := reactor.New(dispatch, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// The GLib side of the wake handshake: prepare sets bit 0 of notify_me, check clears
// it (and only check), and a Notify writes the eventfd only while bit 0 is set.
func TestReactorHandshakeUnderGLib(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var dispatches int
	r := newReactor(t, func([]reactor.Event) { dispatches++ })
	r.Source().Attach(c)
	if !c.Acquire() {
		t.Fatal("Acquire")
	}
	defer c.Release()

	_, prio := c.Prepare()
	if r.Waiting()&1 == 0 {
		t.Fatal("prepare did not set bit 0")
	}
	r.Notify() // the loop may block: this one must write the eventfd
	if r.Kicks() != 1 {
		t.Fatalf("Notify during prepare..check made %d writes, want 1", r.Kicks())
	}
	fds := make([]glibloop.PollFD, 4)
	_, n := c.Query(prio, fds)
	glibloop.PPoll(fds[:n], 0)
	if c.Check(prio, fds[:n]) {
		c.Dispatch()
	}
	if r.Waiting() != 0 {
		t.Fatalf("check left notify_me = %d", r.Waiting())
	}
	if r.Notified() {
		t.Fatal("check did not accept the notification")
	}
	if dispatches != 1 {
		t.Fatalf("the kick dispatched the source %d times, want 1", dispatches)
	}
	r.Notify() // the loop is busy (between check and the next prepare): no write
	if r.Kicks() != 1 {
		t.Fatalf("Notify outside prepare..check wrote the eventfd (%d writes)", r.Kicks())
	}

	// Pending runs prepare and check with no dispatch; prepare alone leaves bit 0 set.
	c.Prepare()
	if r.Waiting()&1 == 0 {
		t.Fatal("bit 0 is not sticky until check")
	}
	_, n = c.Query(prio, fds)
	c.Check(prio, fds[:n])
	if r.Waiting() != 0 {
		t.Fatal("check did not clear bit 0")
	}
}

// One GLib wait costs producers one eventfd write however many Notify it (QEMU's
// aio_notify writes on every call): the first Notify after prepare writes, the others
// find the write made, and check starts the count again for the next wait. A blocking
// Wait is woken by every Notify. A prepare that finds work queued leaves bit 0 clear:
// that iteration does not wait, and Notify writes nothing during it.
func TestReactorKicksOncePerGLibWait(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	r := newReactor(t, func([]reactor.Event) {})
	r.Source().Attach(c)
	if !c.Acquire() {
		t.Fatal("Acquire")
	}
	defer c.Release()
	fds := make([]glibloop.PollFD, 4)
	for wait := 1; wait <= 3; wait++ {
		_, prio := c.Prepare()
		for range 5 {
			r.Notify()
		}
		if r.Kicks() != uint64(wait) {
			t.Fatalf("wait %d: %d eventfd writes in all, want %d", wait, r.Kicks(), wait)
		}
		_, n := c.Query(prio, fds)
		glibloop.PPoll(fds[:n], 0)
		if !c.Check(prio, fds[:n]) {
			t.Fatalf("wait %d: the kick did not make the source ready", wait)
		}
		c.Dispatch() // reads the eventfd
		r.Notify()   // between check and the next prepare: no write
		if r.Kicks() != uint64(wait) {
			t.Fatalf("wait %d: Notify outside the wait wrote the eventfd", wait)
		}
		r.NotifyAccept()
	}

	// Work queued before prepare: no wait, so no write.
	r.SetReady(reactor.ReadyNow)
	kicks := r.Kicks()
	_, prio := c.Prepare()
	if r.Waiting() != 0 {
		t.Fatal("prepare with work queued announced a wait")
	}
	r.Notify()
	if r.Kicks() != kicks {
		t.Fatal("Notify during an iteration that does not wait wrote the eventfd")
	}
	_, n := c.Query(prio, fds)
	if c.Check(prio, fds[:n]) {
		c.Dispatch()
	}
	r.TakeReady()

	// A blocking Wait: every Notify writes.
	if r.WaitBegin() {
		t.Fatal("WaitBegin saw a notification")
	}
	r.Notify()
	r.Notify()
	if got := r.Kicks() - kicks; got != 2 {
		t.Fatalf("two Notify during a blocking Wait wrote %d times, want 2", got)
	}
	r.WaitEnd()
	r.Wait(0)
	r.NotifyAccept()
}

// Ready bits ask GLib for no wait (ReadyNow) or 10 ms (ReadyIdle).
func TestReactorReadyBits(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var dispatches int
	r := newReactor(t, func([]reactor.Event) { dispatches++ })
	r.Source().Attach(c)
	c.Acquire()
	defer c.Release()
	for _, tc := range []struct {
		bits    uint32
		timeout time.Duration
	}{{0, -1}, {reactor.ReadyIdle, 10 * time.Millisecond}, {reactor.ReadyNow, 0}, {reactor.ReadyNow | reactor.ReadyIdle, 0}} {
		r.TakeReady()
		r.SetReady(tc.bits)
		_, prio := c.Prepare()
		fds := make([]glibloop.PollFD, 4)
		timeout, n := c.Query(prio, fds)
		ready := c.Check(prio, fds[:n])
		if timeout != tc.timeout || ready != (tc.bits != 0) {
			t.Errorf("ready bits %b: timeout %v ready %v, want %v %v", tc.bits, timeout, ready, tc.timeout, tc.bits != 0)
		}
		if ready {
			c.Dispatch()
		}
	}
}

// Below 64 fds GLib polls each fd itself (the poll backend); from 64 on, the reactor
// moves them into epoll for good and GLib polls the epoll fd instead of them, however
// many there are (besides the kick eventfd, and the timerfd once a deadline was set);
// dispatch gets the events either way.
func TestReactorEpoll(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var got []reactor.Event
	r := newReactor(t, func(ev []reactor.Event) { got = append(got[:0], ev...) })
	r.Source().Attach(c)
	var fds []int
	for i := 0; i < 10; i++ {
		fd := testutil.Eventfd(t)
		fds = append(fds, fd)
		if err := r.Add(fd, unix.EPOLLIN, uint32(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if r.EpollMode() {
		t.Fatal("10 fds moved into epoll")
	}
	assertPollCount(t, c, 2+10) // wakeup fd, kick eventfd, and each fd (no epoll fd yet)
	testutil.EfdWrite(t, fds[3])
	c.Iteration(false)
	if len(got) != 1 || got[0].FD != int32(fds[3]) || got[0].Events&unix.EPOLLIN == 0 || got[0].Tag != 4 {
		t.Fatalf("poll backend events %v, want fd %d IN with tag 4", got, fds[3])
	}
	testutil.EfdDrain(fds[3])
	if err := r.Add(fds[3], unix.EPOLLIN, 99); err == nil {
		t.Fatal("adding an fd twice succeeded")
	}
	for i := 10; i < 1000; i++ {
		fd := testutil.Eventfd(t)
		fds = append(fds, fd)
		if err := r.Add(fd, unix.EPOLLIN, uint32(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if !r.EpollMode() {
		t.Fatal("1000 fds did not move into epoll")
	}
	testutil.EfdWrite(t, fds[500])
	c.Iteration(false)
	if len(got) != 1 || got[0].FD != int32(fds[500]) || got[0].Events&unix.EPOLLIN == 0 || got[0].Tag != 501 {
		t.Fatalf("events %v, want fd %d IN with tag 501", got, fds[500])
	}
	testutil.EfdDrain(fds[500])
	if err := r.Delete(fds[500]); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(fds[500]); err == nil {
		t.Fatal("deleting twice succeeded")
	}
	if err := r.Modify(fds[1], unix.EPOLLOUT, 7); err != nil {
		t.Fatal(err)
	}
	got = nil
	c.Iteration(false)
	if len(got) != 1 || got[0].FD != int32(fds[1]) || got[0].Events&unix.EPOLLOUT == 0 || got[0].Tag != 7 {
		t.Fatalf("events %v, want fd %d OUT with tag 7", got, fds[1])
	}
	// GLib's poll set: the context's wakeup fd, the reactor's kick eventfd and the
	// epoll fd, whatever the number of fds.
	assertPollCount(t, c, 3)
}

func assertPollCount(t *testing.T, c *glibloop.MainContext, want int) {
	t.Helper()
	c.Acquire()
	defer c.Release()
	_, prio := c.Prepare()
	fds := make([]glibloop.PollFD, 64)
	_, n := c.Query(prio, fds)
	c.Check(prio, fds[:min(n, 64)])
	if n != want {
		t.Fatalf("GLib polls %d fds, want %d", n, want)
	}
}

// The deadline arms the timerfd: a blocking iteration wakes at it, not at a rounded
// millisecond, and the timerfd is never reported as an event.
func TestReactorDeadline(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	var dispatched atomic.Int32
	var events int
	r := newReactor(t, func(ev []reactor.Event) { dispatched.Add(1); events += len(ev) })
	r.Source().Attach(c)
	start := time.Now()
	r.SetDeadline(watch.Nanotime() + int64(30*time.Millisecond))
	for dispatched.Load() == 0 {
		c.Iteration(true)
	}
	if el := time.Since(start); el < 29*time.Millisecond {
		t.Fatalf("woke after %v, before the 30 ms deadline", el)
	}
	if events != 0 {
		t.Fatal("the timerfd was reported as an event")
	}
	r.SetDeadline(-1)
}

// Wait is the standalone form: it blocks, honours its ns timeout through the timerfd,
// and a Notify between WaitBegin and WaitEnd wakes it.
func TestReactorWait(t *testing.T) {
	leakcheck.Handles(t)
	r := newReactor(t, func([]reactor.Event) {})
	start := time.Now()
	ev, err := r.Wait(int64(20 * time.Millisecond))
	if err != nil || len(ev) != 0 || time.Since(start) < 19*time.Millisecond {
		t.Fatalf("Wait(20ms) = %v, %v after %v", ev, err, time.Since(start))
	}
	if r.WaitBegin() {
		t.Fatal("WaitBegin saw a notification nobody sent")
	}
	go func() { time.Sleep(10 * time.Millisecond); r.Notify() }()
	if _, err := r.Wait(-1); err != nil {
		t.Fatal(err)
	}
	r.WaitEnd()
	if r.Kicks() != 1 || !r.Notified() {
		t.Fatalf("kicks=%d notified=%v", r.Kicks(), r.Notified())
	}
	r.NotifyAccept()
	if r.Waiting() != 0 || r.Notified() {
		t.Fatal("the handshake state was not restored")
	}
	r.Close()
	r.Close()  // twice is harmless
	r.Notify() // after Close: nothing is written anywhere
	if _, err := r.Wait(0); err == nil {
		t.Fatal("Wait after Close succeeded")
	}
	if err := r.Add(0, unix.EPOLLIN, 1); err == nil {
		t.Fatal("Add after Close succeeded")
	}
}
