package aiosource

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Go's runtime makes its netpoller (an epoll fd and an eventfd) when the first timer
// is armed, and throws "runtime: netpollinit failed", which kills the process, when it
// cannot make them. A Context arms Go timers (the thread pool's idle reaper), and so
// does the runtime itself (its background scavenger), so a program whose first timer
// comes while it is at the fd limit dies. New makes sure the netpoller exists first,
// and fails with EMFILE instead while two fds cannot be had.
var netpoll struct {
	mu    sync.Mutex
	ready bool
}

// ensureNetpoll makes the runtime's netpoller if it was not made yet: it checks that
// two fds can be had, hands them back, and arms (and stops) a timer. Only another
// thread that takes the fds between the check and the timer can still make the
// runtime throw.
func ensureNetpoll() error {
	netpoll.mu.Lock()
	defer netpoll.mu.Unlock()
	if netpoll.ready {
		return nil
	}
	probe, err := reserveTwoFDs()
	if err != nil {
		return err
	}
	unix.Close(probe[0])
	unix.Close(probe[1])
	time.AfterFunc(time.Hour, func() {}).Stop()
	netpoll.ready = true
	return nil
}

// reserveTwoFDs holds two fds (eventfds) for a caller that must know two can be had
// before code that cannot fail cleanly makes them (the runtime's netpoller, GLib's
// wakeups); the caller closes each just before that code needs it. It fails with the
// eventfd error, wrapped as an *os.SyscallError, holding nothing.
func reserveTwoFDs() (fds [2]int, err error) {
	for i := range fds {
		fds[i], err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			if i > 0 {
				unix.Close(fds[0])
			}
			return fds, os.NewSyscallError("eventfd", err)
		}
	}
	return fds, nil
}
