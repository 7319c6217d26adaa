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

// A wait's timeout counts from when the caller started it (Wait: the call), not from when
// the C side gets to ppoll: the time spent before that is taken off. Both backends.
func TestWaitTimeoutCountsFromStart(t *testing.T) {
	for _, epoll := range []bool{false, true} {
		t.Run(fmt.Sprintf("epoll=%v", epoll), func(t *testing.T) {
			re := newTestReactor(t)
			if epoll {
				for i := 0; i < 80; i++ { // past CSHIM_EPOLL_THRESHOLD (64)
					fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { unix.Close(fd) })
					if err := re.Add(fd, unix.EPOLLIN, uint32(i)); err != nil {
						t.Fatal(err)
					}
				}
				if !re.EpollMode() {
					t.Fatal("the reactor did not move to epoll")
				}
			}
			const timeout, ago = 400 * time.Millisecond, 300 * time.Millisecond
			begin := time.Now()
			if _, err := re.wait(int64(timeout), watch.Nanotime()-int64(ago)); err != nil {
				t.Fatal(err)
			}
			// About 100 ms are left; the whole 400 ms would be a wait counted from C's start.
			if el := time.Since(begin); el >= timeout-ago+200*time.Millisecond {
				t.Fatalf("a %v timeout started %v ago waited %v more", timeout, ago, el)
			}
		})
	}
}
