package glibloop_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/glibloop"
)

// counterSource is a Go-defined GSource that drains an eventfd: it needs no Prepare or
// Check, because the fd it watches makes it ready.
type counterSource struct {
	fd   int
	seen uint64
	done func()
}

func (c *counterSource) Dispatch(s *glibloop.Source) bool {
	var b [8]byte
	if n, _ := unix.Read(c.fd, b[:]); n == 8 {
		c.seen += binary.NativeEndian.Uint64(b[:]) // writes made before this read add up
	}
	if c.seen >= 3 {
		c.done()
		return false // remove the source
	}
	return true
}

// A custom source written in Go, attached to a context and driven by a Loop.
func ExampleNewSource() {
	ctx := glibloop.NewMainContext()
	defer ctx.Unref()
	loop := glibloop.NewLoop(ctx)

	fd, _ := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	defer unix.Close(fd)
	cs := &counterSource{fd: fd, done: loop.Quit}
	src := glibloop.NewSource(cs)
	src.SetName("eventfd-counter")
	src.AddUnixFD(fd, glibloop.IOIn)
	src.Attach(ctx)
	src.Unref() // the context keeps it alive while attached

	go func() {
		for i := 0; i < 3; i++ {
			unix.Write(fd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
			time.Sleep(time.Millisecond)
		}
	}()
	loop.Run(context.Background())
	fmt.Println("events:", cs.seen)
	// Output: events: 3
}

// Typed callbacks need no reflection and run on the thread that drives the context.
func ExampleIdleAdd() {
	ctx := glibloop.NewMainContext()
	defer ctx.Unref()
	n := 0
	glibloop.IdleAdd(ctx, func() bool {
		n++
		return n < 3 // run three times
	})
	for ctx.Iteration(false) {
	}
	fmt.Println(n)
	// Output: 3
}

// Wake a source from any goroutine with SetReadyTime(0).
func ExampleSource_SetReadyTime() {
	ctx := glibloop.NewMainContext()
	defer ctx.Unref()
	loop := glibloop.NewLoop(ctx)
	src := glibloop.NewSource(&wakeSource{quit: loop.Quit})
	src.Attach(ctx)
	defer src.Unref()

	go src.SetReadyTime(0) // from another goroutine
	loop.Run(context.Background())
	src.Destroy()
	// Output: woken
}

type wakeSource struct{ quit func() }

func (w *wakeSource) Dispatch(s *glibloop.Source) bool {
	s.SetReadyTime(-1) // dispatch does not reset the ready time
	fmt.Println("woken")
	w.quit()
	return true
}

// A panic in a callback comes back out of the call that drove the context.
func ExamplePanicError() {
	ctx := glibloop.NewMainContext()
	defer ctx.Unref()
	glibloop.IdleAdd(ctx, func() bool { panic("oops") })
	defer func() {
		pe := recover().(*glibloop.PanicError)
		fmt.Println("recovered:", pe.Value)
	}()
	ctx.Iteration(false)
	// Output: recovered: oops
}
