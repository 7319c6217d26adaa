package aiosource

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// EventNotifier is QEMU's EventNotifier: an eventfd that one side sets and the other
// tests and clears, usually from an fd handler registered with SetEventNotifier.
type EventNotifier struct {
	mu sync.RWMutex // Close waits for Set and TestAndClear in flight: the fd is never reused under them
	fd int          // -1 after Close
}

// NewEventNotifier creates a notifier (event_notifier_init), set already if active.
// When the eventfd cannot be made, the error wraps an *os.SyscallError (errors.Is
// syscall.EMFILE, for instance).
func NewEventNotifier(active bool) (*EventNotifier, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("aiosource: NewEventNotifier: %w", os.NewSyscallError("eventfd", err))
	}
	e := &EventNotifier{fd: fd}
	if active {
		e.Set()
	}
	return e, nil
}

// Set makes the notifier readable (event_notifier_set). Setting a set notifier is
// harmless. It returns ErrClosed after Close, and an error wrapping an *os.SyscallError
// if the write fails.
func (e *EventNotifier) Set() error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.fd < 0 {
		return ErrClosed
	}
	one := [8]byte{1}
	for {
		_, err := unix.Write(e.fd, one[:])
		switch {
		case err == nil, errors.Is(err, unix.EAGAIN): // saturated: a read is pending anyway
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		default:
			return fmt.Errorf("aiosource: EventNotifier.Set: %w", os.NewSyscallError("write", err))
		}
	}
}

// TestAndClear reports whether the notifier was set, and clears it
// (event_notifier_test_and_clear). It returns false after Close.
func (e *EventNotifier) TestAndClear() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.fd < 0 {
		return false
	}
	var buf [8]byte
	for {
		n, err := unix.Read(e.fd, buf[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return n == 8
	}
}

// FD returns the fd to poll, or -1 after Close (event_notifier_get_fd).
func (e *EventNotifier) FD() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.fd
}

// Close closes the notifier (event_notifier_cleanup). Remove its handler first. Closing
// twice returns ErrClosed; a failing close(2) returns an error wrapping an
// *os.SyscallError.
func (e *EventNotifier) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fd < 0 {
		return ErrClosed
	}
	err := unix.Close(e.fd)
	e.fd = -1
	if err != nil {
		return fmt.Errorf("aiosource: EventNotifier.Close: %w", os.NewSyscallError("close", err))
	}
	return nil
}
