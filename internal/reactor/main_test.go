package reactor_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func newContext(t testing.TB) *glibloop.MainContext {
	t.Helper()
	c := glibloop.NewMainContext()
	t.Cleanup(c.Unref)
	return c
}

func eventfd(t testing.TB) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func efdWrite(t testing.TB, fd int) {
	t.Helper()
	var b [8]byte
	b[0] = 1
	if _, err := unix.Write(fd, b[:]); err != nil {
		t.Fatal(err)
	}
}

func efdDrain(fd int) {
	var b [8]byte
	unix.Read(fd, b[:])
}
