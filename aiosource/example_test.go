package aiosource_test

import (
	"context"
	"fmt"
	"time"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

// QEMU's main loop on a GLib context: BHs and timers on "aio-context", fd handlers on
// "io-handler". In a gotk3 app, pass gotk3.Wrap(glib.MainContextDefault()) (package glibloop/gotk3) and
// let gtk.Main drive it instead of Run.
func ExampleNewMainLoop() {
	mc := glibloop.NewMainContext()
	defer mc.Unref()
	ml, err := aiosource.NewMainLoop(mc)
	if err != nil {
		panic(err)
	}
	defer ml.Close()
	aio := ml.AioContext()

	bh := aio.NewBH("hello", func() { fmt.Println("BH ran on the loop") })
	defer bh.Delete()
	timer := aio.NewTimer(aiosource.ClockRealtime, aiosource.ScaleMS, func() {
		fmt.Println("timer fired")
		ml.Quit()
	})
	bh.Schedule() // from any goroutine
	timer.Mod(aiosource.ClockNS(aiosource.ClockRealtime)/aiosource.ScaleMS + 5)

	ml.Run(context.Background())
	// Output:
	// BH ran on the loop
	// timer fired
}

// A worker loop driven by Poll, as QEMU's IOThread: Submit runs blocking work on the
// thread pool and its completion back on the loop.
func ExampleContext_Submit() {
	th, err := aiosource.NewIOThread("worker")
	if err != nil {
		panic(err)
	}
	defer th.Stop()
	done := make(chan string)
	th.Context().ScheduleOneshot(func() {
		th.Context().Submit(func() error {
			time.Sleep(time.Millisecond) // blocking work, off the loop
			return nil
		}, func(err error) {
			done <- fmt.Sprint("completed on the loop, err=", err)
		})
	})
	fmt.Println(<-done)
	// Output: completed on the loop, err=<nil>
}

// Poll drives a context by hand: a blocking Poll returns once it made progress.
func ExampleContext_Poll() {
	ctx, _ := aiosource.New()
	defer ctx.Close()
	e, _ := aiosource.NewEventNotifier(false)
	defer e.Close()
	ctx.SetEventNotifier(e, func(e *aiosource.EventNotifier) {
		e.TestAndClear()
		fmt.Println("notifier fired")
	})
	defer ctx.SetEventNotifier(e, nil)
	for ctx.Poll(false) { // accept the registration's notification
	}
	go e.Set()
	fmt.Println("progress:", ctx.Poll(true))
	// Output:
	// notifier fired
	// progress: true
}
