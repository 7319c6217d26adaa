package aiosource

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/leakcheck"
	"github.com/glibaio/glibaio/internal/watch"
)

// QEMU's adjust_polling_time rules (util/aio-posix.c), one row each.
func TestAdjustPollTime(t *testing.T) {
	leakcheck.Handles(t)
	for _, tc := range []struct {
		name                  string
		max, grow, shrink     int64
		pollNS, blockNS, want int64
	}{
		{"sweet spot: blocked no longer than it polls", 32768, 0, 0, 8000, 8000, 8000},
		{"blocked past max: shrink to zero by default", 32768, 0, 0, 16000, 40000, 0},
		{"blocked past max: shrink by the factor", 32768, 0, 4, 16000, 40000, 4000},
		{"grow from zero starts at 4 us", 32768, 0, 0, 0, 10000, 4000},
		{"grow doubles by default", 32768, 0, 0, 4000, 10000, 8000},
		{"grow by the factor", 32768, 3, 0, 4000, 10000, 12000},
		{"grow is clamped to max", 32768, 0, 0, 30000, 32000, 32768},
		{"at max it stays", 32768, 0, 0, 32768, 32767, 32768},
	} {
		c := &Context{}
		c.pollMaxNS.Store(tc.max)
		c.pollGrow.Store(tc.grow)
		c.pollShrink.Store(tc.shrink)
		n := &fdNode{pollNS: tc.pollNS}
		c.adjustPollTime(n, tc.blockNS)
		if n.pollNS != tc.want {
			t.Errorf("%s: poll time %d, want %d", tc.name, n.pollNS, tc.want)
		}
	}
}

func TestSoonest(t *testing.T) {
	leakcheck.Handles(t)
	for _, tc := range [][3]int64{{-1, -1, -1}, {-1, 5, 5}, {5, -1, 5}, {3, 5, 3}, {0, -1, 0}} {
		if got := soonest(tc[0], tc[1]); got != tc[2] {
			t.Errorf("soonest(%d, %d) = %d, want %d", tc[0], tc[1], got, tc[2])
		}
	}
}

// A Poll callback that panics during the final busy poll, between WaitBegin and
// WaitEnd, leaves notify_me as it found it.
func TestWaitEndAfterPanic(t *testing.T) {
	leakcheck.Handles(t)
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tm := c.NewTimer(ClockRealtime, ScaleMS, func() {})
	tm.Mod(ClockNS(ClockRealtime)/ScaleMS + 60_000) // a timeout, so Poll(true) waits
	defer tm.Del()
	for c.Poll(false) {
	}
	n := &fdNode{fd: -1, h: FDHandler{Poll: func() bool { panic("poll-boom") }, PollReady: func() {}}}
	c.pollHandlers = append(c.pollHandlers, n)
	n.inPoll = true
	c.pollStarted = true
	func() {
		defer func() { recover() }()
		c.Poll(true)
	}()
	if w := c.r.Waiting(); w != 0 {
		t.Fatalf("notify_me = %d after the panic, want 0", w)
	}
	c.pollHandlers, c.pollStarted = nil, false
}

// On the epoll backend a closed fd is found by the periodic sweep, removed and reported.
func TestEpollSweepFindsClosedFD(t *testing.T) {
	leakcheck.Handles(t)
	old := epollSweepInterval
	epollSweepInterval = 10 * time.Millisecond
	defer func() { epollSweepInterval = old }()
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errs := make(chan error, 4)
	c.SetErrorHandler(func(err error) { errs <- err })
	var fds []int
	for i := 0; i < 80; i++ { // past the epoll threshold
		fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		if err := c.SetFDHandler(fd, FDHandler{Read: func() {}}); err != nil {
			t.Fatal(err)
		}
	}
	if !c.r.EpollMode() {
		t.Fatal("80 fds did not move into epoll")
	}
	unix.Close(fds[40]) // behind the loop's back
	deadline := time.Now().Add(5 * time.Second)
	var got error
	for got == nil && time.Now().Before(deadline) {
		c.Poll(false)
		time.Sleep(5 * time.Millisecond)
		select {
		case got = <-errs:
		default:
		}
	}
	var ce *ClosedFDError
	if !errors.As(got, &ce) || ce.FD != fds[40] {
		t.Fatalf("sweep reported %v, want fd %d", got, fds[40])
	}
	for i, fd := range fds {
		if i != 40 {
			c.SetFDHandler(fd, FDHandler{})
			unix.Close(fd)
		}
	}
}

// The deadline a blocking Poll hands the reactor, which waits for it on its timerfd
// (aio_compute_timeout as an absolute CLOCK_MONOTONIC time): a ClockRealtime timer's own
// expire time, the same on every Poll that waits for it, so the reactor writes its
// timerfd once per timer; for a running virtual clock the time GLib's prepare arms the
// timerfd with; 10 ms from now for an idle BH when that is sooner; 0 (do not block) for
// work that is due; -1 (no deadline) for none.
func TestComputeDeadline(t *testing.T) {
	leakcheck.Handles(t)
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if to, dl := c.computeDeadline(); to != -1 || dl != -1 {
		t.Fatalf("nothing to do: timeout %d, deadline %d; want -1, -1", to, dl)
	}

	tm := c.NewTimer(ClockRealtime, ScaleNS, func() {})
	defer tm.Del()
	expire := ClockNS(ClockRealtime) + int64(time.Hour)
	tm.ModNS(expire)
	before := watch.Nanotime()
	to, dl := c.computeDeadline()
	if dl != expire || to <= 0 || to > expire-before {
		t.Fatalf("a realtime timer at %d: timeout %d, deadline %d; want the expire time and what is left of it", expire, to, dl)
	}
	if _, again := c.computeDeadline(); again != dl {
		t.Fatalf("the same timer gave the deadline %d, then %d: each Poll would rewrite the timerfd", dl, again)
	}

	idle := c.NewBH("idle", func() {})
	defer idle.Delete()
	idle.ScheduleIdle()
	before = watch.Nanotime()
	to, dl = c.computeDeadline()
	after := watch.Nanotime()
	if to != idleBHTimeoutNS || dl < before+idleBHTimeoutNS || dl > after+idleBHTimeoutNS {
		t.Fatalf("an idle BH before a timer an hour away: timeout %d, deadline %d; want 10 ms from now", to, dl)
	}
	idle.Cancel()

	tm.ModNS(ClockNS(ClockRealtime) - 1)
	if to, dl := c.computeDeadline(); to != 0 || dl != 0 {
		t.Fatalf("a due timer: timeout %d, deadline %d; want 0, 0", to, dl)
	}
	tm.Del()

	vt := c.NewTimer(ClockVirtual, ScaleNS, func() {})
	defer vt.Del()
	vt.ModNS(ClockNS(ClockVirtual) + int64(time.Hour))
	if _, dl := c.computeDeadline(); dl != c.r.Deadline() || dl <= 0 {
		t.Fatalf("a virtual timer: Poll's deadline %d, GLib's %d; want the same time", dl, c.r.Deadline())
	}
}
