package aiosource

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/reactor"
)

// BenchmarkDispatchGo measures the Go side of one GLib dispatch of a context with one
// ready fd handler: what the reactor's Dispatch costs above the crossing into Go.
func BenchmarkDispatchGo(b *testing.B) {
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
	n := 0
	if err := c.SetFDHandler(fd, FDHandler{Read: func() { n++ }}); err != nil {
		b.Fatal(err)
	}
	defer c.SetFDHandler(fd, FDHandler{})
	node := c.table.Load().get(int32(fd))
	ev := []reactor.Event{{FD: int32(fd), Events: unix.EPOLLIN, Tag: node.gen}}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	for b.Loop() {
		c.dispatch(ev)
	}
	if n == 0 {
		b.Fatal("the handler never ran")
	}
}
