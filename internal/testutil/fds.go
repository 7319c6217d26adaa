package testutil

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/glibloop"
)

// NewContext returns a new GMainContext that t's cleanup Unrefs.
func NewContext(t testing.TB) *glibloop.MainContext {
	t.Helper()
	c := glibloop.NewMainContext()
	t.Cleanup(c.Unref)
	return c
}

// Eventfd returns a non-blocking eventfd that t's cleanup closes.
func Eventfd(t testing.TB) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// EfdWrite adds 1 to an eventfd, making it readable.
func EfdWrite(t testing.TB, fd int) {
	t.Helper()
	var b [8]byte
	b[0] = 1
	if _, err := unix.Write(fd, b[:]); err != nil {
		t.Fatal(err)
	}
}

// EfdDrain reads an eventfd back to zero.
func EfdDrain(fd int) {
	var b [8]byte
	unix.Read(fd, b[:])
}
