package gotk4test_test

import (
	"context"
	"fmt"

	coreglib "github.com/diamondburned/gotk4/pkg/core/glib"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

// A gotk4 program shares GTK's default context with glibaio: attach the AioContext to
// glibloop.DefaultContext(), and whatever iterates that context (gtk.Application.Run,
// gtk.Main, or glibaio's Loop as here) runs coreglib's idles and glibaio's BHs, timers
// and sources together, in GLib priority order.
func Example() {
	aio, err := aiosource.New()
	if err != nil {
		panic(err)
	}
	defer aio.Close()
	aio.Attach(glibloop.DefaultContext()) // the context GTK iterates

	loop := glibloop.NewLoop(glibloop.DefaultContext())
	bh := aio.NewBH("example", func() { fmt.Println("aiosource BH (PriorityDefault)") })
	defer bh.Delete()

	coreglib.IdleAdd(func() { // PriorityDefaultIdle: after the BH
		fmt.Println("coreglib.IdleAdd (PriorityDefaultIdle)")
		loop.Quit()
	})
	bh.Schedule()

	if err := loop.Run(context.Background()); err != nil {
		panic(err)
	}
	// Output:
	// aiosource BH (PriorityDefault)
	// coreglib.IdleAdd (PriorityDefaultIdle)
}
