package aiosource_test

import (
	"unsafe"

	"github.com/glibaio/glibaio/glibloop/gotk3"

	"testing"

	"github.com/glibaio/glibaio/internal/cbaseline"
	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/gotk3/gotk3/glib"

	"github.com/glibaio/glibaio/aiosource"
)

// gotk3's own GMainLoop drives a MainLoop attached through gotk3.Wrap, sub-millisecond
// timers included.
func TestGotk3LoopDrivesAio(t *testing.T) {
	leakcheck.Handles(t)
	ml, err := aiosource.NewMainLoop(gotk3.Wrap(glib.MainContextDefault()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := ml.Close(); err != nil {
			t.Error(err)
		}
	}()
	loop := glib.MainLoopNew(glib.MainContextDefault(), false)
	defer cbaseline.MainLoopUnref(unsafe.Pointer(loop))
	var steps []string
	bh := ml.AioContext().NewBH("gotk3", func() { steps = append(steps, "bh") })
	defer bh.Delete()
	tm := ml.AioContext().NewTimer(aiosource.ClockRealtime, aiosource.ScaleUS, func() {
		steps = append(steps, "timer")
		loop.Quit()
	})
	bh.Schedule()
	tm.Mod(aiosource.ClockNS(aiosource.ClockRealtime)/aiosource.ScaleUS + 300)
	safety := glib.TimeoutAdd(5000, func() bool { loop.Quit(); return false })
	loop.Run()
	glib.SourceRemove(safety)
	if len(steps) != 2 || steps[0] != "bh" || steps[1] != "timer" {
		t.Fatalf("steps %v, want [bh timer]", steps)
	}
}
