package aiosource

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/reactor"
)

// BenchmarkDispatchPath measures the Go half of the fd round trip alone: the GSource
// dispatch of a context with one fd event harvested, whose read handler does nothing,
// called directly (no GLib iteration, no crossing). It is the part of the round trip
// that aiosource itself adds above a Go source's bare Dispatch.
func BenchmarkDispatchPath(b *testing.B) {
	c, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	ran := 0
	if err := c.SetFDHandler(fd, FDHandler{Read: func() { ran++ }}); err != nil {
		b.Fatal(err)
	}
	defer c.SetFDHandler(fd, FDHandler{})
	n := c.table.Load().get(int32(fd))
	events := []reactor.Event{{FD: int32(fd), Events: unix.EPOLLIN, Tag: n.gen}}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c.dispatch(events)
	b.ReportAllocs()
	for b.Loop() {
		c.dispatch(events)
	}
	if ran == 0 {
		b.Fatal("the handler never ran")
	}
}
