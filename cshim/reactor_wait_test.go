package cshim

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/watch"
)

// newTestReactor makes a reactor whose GSource is released when the test ends.
func newTestReactor(t *testing.T) *Reactor {
	t.Helper()
	var re *Reactor
	re, err := NewReactor(&Source{
		Dispatch: func() bool { return true },
		Finalize: func() { re.Shutdown(); re.Finalized() },
		Describe: func() string { return "test reactor" },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p := SourceUnref(re.GSource()); p != nil {
			t.Error(fmt.Sprint(p))
		}
	})
	return re
}

// bothBackends runs f on a fresh reactor on its poll backend, watching 2 idle eventfds,
// and on one moved to epoll, watching 80. fds are the watched eventfds; fd i has tag i.
func bothBackends(t *testing.T, f func(t *testing.T, re *Reactor, fds []int)) {
	for _, epoll := range []bool{false, true} {
		t.Run(fmt.Sprintf("epoll=%v", epoll), func(t *testing.T) {
			re := newTestReactor(t)
			n := 2
			if epoll {
				n = 80 // past CSHIM_EPOLL_THRESHOLD (64)
			}
			var fds []int
			for i := 0; i < n; i++ {
				fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { unix.Close(fd) })
				if err := re.Add(fd, unix.EPOLLIN, uint32(i)); err != nil {
					t.Fatal(err)
				}
				fds = append(fds, fd)
			}
			if re.EpollMode() != epoll {
				t.Fatalf("epoll mode %v with %d fds, want %v", re.EpollMode(), n, epoll)
			}
			f(t, re, fds)
		})
	}
}

// A wait's deadline is absolute: the time the caller spent before C got to wait, here
// 300 ms of a 400 ms wait, is not waited again. Both backends.
func TestWaitUntilCountsFromTheCaller(t *testing.T) {
	bothBackends(t, func(t *testing.T, re *Reactor, fds []int) {
		const timeout, ago = 400 * time.Millisecond, 300 * time.Millisecond
		begin := time.Now()
		if _, err := re.WaitUntil(watch.Nanotime() - int64(ago) + int64(timeout)); err != nil {
			t.Fatal(err)
		}
		// About 100 ms are left; the whole 400 ms would be a wait counted from C's start.
		if el := time.Since(begin); el >= timeout-ago+200*time.Millisecond {
			t.Fatalf("a %v timeout started %v ago waited %v more", timeout, ago, el)
		}
	})
}

// timerfdLeft returns how long the reactor's timerfd has to run (0: disarmed) and
// whether it is readable, that is expired and not drained. Any thread may call it.
func timerfdLeft(re *Reactor) (left time.Duration, readable bool, err error) {
	fd := int(re.r.timerfd)
	var its unix.ItimerSpec
	if err := unix.TimerfdGettime(fd, &its); err != nil {
		return 0, false, err
	}
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if _, err := unix.Poll(p, 0); err != nil {
		return 0, false, err
	}
	return time.Duration(its.Value.Nano()), p[0].Revents&unix.POLLIN != 0, nil
}

// mustTimerfdLeft is timerfdLeft on the test's goroutine.
func mustTimerfdLeft(t *testing.T, re *Reactor) (time.Duration, bool) {
	t.Helper()
	left, readable, err := timerfdLeft(re)
	if err != nil {
		t.Fatal(err)
	}
	return left, readable
}

// A wait's deadline sits on the reactor's timerfd, not in a poll timeout (which the
// kernel ends up to 0.1% of its length late): while WaitUntil blocks, the timerfd holds
// the deadline, and the wait never ends before it. The expiry is left unread; the next
// blocking wait, for a later deadline or none, is not ended by it. Both backends.
func TestWaitUntilWaitsOnTheTimerfd(t *testing.T) {
	bothBackends(t, func(t *testing.T, re *Reactor, fds []int) {
		const wait = 200 * time.Millisecond
		deadline := watch.Nanotime() + int64(wait)
		seen := make(chan time.Duration, 1)
		go func() { // reading the timerfd's setting is safe from any thread
			time.Sleep(wait / 4)
			left, _, err := timerfdLeft(re)
			if err != nil {
				t.Error(err)
			}
			seen <- left
		}()
		ev, err := re.WaitUntil(deadline)
		if err != nil || len(ev) != 0 {
			t.Fatalf("WaitUntil = %v, %v", ev, err)
		}
		if now := watch.Nanotime(); now < deadline {
			t.Fatalf("the wait ended %v before its deadline", time.Duration(deadline-now))
		}
		if left := <-seen; left <= 0 || left > wait {
			t.Fatalf("during a %v wait the timerfd had %v left, want the deadline on it", wait, left)
		}
		// The next deadline is waited for in full.
		next := watch.Nanotime() + int64(wait/2)
		if _, err := re.WaitUntil(next); err != nil {
			t.Fatal(err)
		}
		if now := watch.Nanotime(); now < next {
			t.Fatalf("a wait after an expiry ended %v before its deadline", time.Duration(next-now))
		}
		// So is a wait with none, after an expiry.
		const kickAfter = 100 * time.Millisecond
		go func() { time.Sleep(kickAfter); re.Kick() }()
		begin := time.Now()
		if _, err := re.WaitUntil(-1); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(begin); el < kickAfter-10*time.Millisecond {
			t.Fatalf("a wait with no deadline after an expiry ended after %v, before the kick at %v", el, kickAfter)
		}
		if left, readable := mustTimerfdLeft(t, re); left != 0 || readable {
			t.Fatalf("a wait with no deadline left the timerfd with %v to run, readable %v", left, readable)
		}
		// A deadline already past polls once and returns.
		begin = time.Now()
		if _, err := re.WaitUntil(watch.Nanotime() - int64(time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(begin); el > 100*time.Millisecond {
			t.Fatalf("a deadline in the past waited %v", el)
		}
	})
}

// A wait that a kick ends early leaves its deadline on the timerfd, so a wait for the
// same deadline need not write it again; a wait with no deadline disarms it, so the
// stale deadline cannot end that wait. Both backends.
func TestWaitUntilKeepsOrDropsTheDeadline(t *testing.T) {
	bothBackends(t, func(t *testing.T, re *Reactor, fds []int) {
		deadline := watch.Nanotime() + int64(50*time.Millisecond)
		re.Kick()
		if _, err := re.WaitUntil(deadline); err != nil {
			t.Fatal(err)
		}
		if int64(re.r.armed) != deadline {
			t.Fatalf("a wait ended by a kick left the timerfd armed at %d, want its deadline %d", int64(re.r.armed), deadline)
		}
		if left, _ := mustTimerfdLeft(t, re); left <= 0 {
			t.Fatal("the kicked wait disarmed the timerfd")
		}
		const kickAfter = 150 * time.Millisecond
		go func() { time.Sleep(kickAfter); re.Kick() }()
		begin := time.Now()
		if _, err := re.WaitUntil(-1); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(begin); el < kickAfter-10*time.Millisecond {
			t.Fatalf("a wait with no deadline ended after %v, before the kick at %v: the stale deadline ended it", el, kickAfter)
		}
		if left, readable := mustTimerfdLeft(t, re); left != 0 || readable {
			t.Fatalf("a wait with no deadline left the timerfd with %v to run, readable %v", left, readable)
		}
	})
}

// A wait that the deadline ends together with an fd reports the fd's event, and one that
// the deadline ends alone reports nothing; neither reports the timerfd. Both backends.
func TestWaitUntilDeadlineWithAnFD(t *testing.T) {
	bothBackends(t, func(t *testing.T, re *Reactor, fds []int) {
		ev, err := re.WaitUntil(watch.Nanotime() + int64(time.Millisecond))
		if err != nil || len(ev) != 0 {
			t.Fatalf("a wait that its deadline ended: events %v, %v; want none", ev, err)
		}
		fd, tag := fds[len(fds)-1], uint32(len(fds)-1)
		if _, err := unix.Write(fd, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
		ev, err = re.WaitUntil(watch.Nanotime() - 1) // past: the timerfd is readable at once
		if err != nil {
			t.Fatal(err)
		}
		if len(ev) != 1 || int(ev[0].FD) != fd || ev[0].Tag != tag || ev[0].Events&unix.EPOLLIN == 0 {
			t.Fatalf("the deadline and fd %d (tag %d) ready together: events %+v, want that fd's", fd, tag, ev)
		}
	})
}
