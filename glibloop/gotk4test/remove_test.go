package gotk4test_test

import (
	"context"
	"slices"
	"testing"
	"time"

	coreglib "github.com/diamondburned/gotk4/pkg/core/glib"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

// names returns the names of the recorded events, in order.
func (r *recorder) names() []string {
	var out []string
	for _, e := range r.events {
		out = append(out, e.name)
	}
	return out
}

// Removing coreglib's idle and timeout with coreglib.SourceRemove and their handles,
// before they run, leaves glibaio's BH, timer, Go-defined source and glibloop idle at
// the same priorities to run as before, and the AioContext attached.
func TestSourceRemoveBeforeDispatch(t *testing.T) {
	rec := setup(t)
	def := glibloop.DefaultContext()
	aio := newAio(t, glibloop.PriorityDefault)
	if aio.Attach(def) == 0 {
		t.Fatal("AioContext.Attach returned 0")
	}
	loop := glibloop.NewLoop(def)

	idle := coreglib.IdleAddPriority(coreglib.PriorityDefault, func() { rec.add("coreglib idle") })
	timeout := coreglib.TimeoutAdd(5, func() { rec.add("coreglib timeout") })
	bh := aio.NewBH("gotk4test", func() { rec.add("aio bh") })
	t.Cleanup(bh.Delete)
	bh.Schedule()
	addOneshot(glibloop.PriorityDefault, func() { rec.add("glibaio source") }).Unref()
	glibloop.IdleAddPriority(def, glibloop.PriorityDefault, func() bool { rec.add("glibloop idle"); return false })
	// The timer is due well after coreglib's timeout would have been.
	tm := aio.NewTimer(aiosource.ClockRealtime, aiosource.ScaleMS, func() {
		rec.add("aio timer")
		loop.Quit()
	})
	t.Cleanup(tm.Del)
	tm.Mod(aiosource.ClockNS(aiosource.ClockRealtime)/aiosource.ScaleMS + 30)

	if !coreglib.SourceRemove(idle) || !coreglib.SourceRemove(timeout) {
		t.Fatal("coreglib.SourceRemove did not find coreglib's own source")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := loop.Run(ctx); err != nil {
		t.Fatalf("Loop.Run: %v", err)
	}
	want := []string{"aio bh", "glibaio source", "glibloop idle", "aio timer"}
	if got := rec.names(); !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	// The AioContext is still attached and works.
	bh.Schedule()
	flushDefault(t)
	if got := rec.names(); len(got) != 5 || got[4] != "aio bh" || aio.Source().IsDestroyed() {
		t.Fatalf("after the removals a second BH gave %v (source destroyed: %v)", got, aio.Source().IsDestroyed())
	}
}

// A glibaio callback that removes a coreglib idle due in the same iteration keeps it
// from running; the glibaio source attached after it at the same priority still runs,
// and so does the AioContext's BH.
func TestSourceRemoveDuringDispatch(t *testing.T) {
	rec := setup(t)
	def := glibloop.DefaultContext()
	aio := newAio(t, glibloop.PriorityDefault)

	var idle coreglib.SourceHandle
	removed := false
	addOneshot(glibloop.PriorityDefault, func() {
		rec.add("glibaio before")
		removed = coreglib.SourceRemove(idle)
	}).Unref()
	idle = coreglib.IdleAddPriority(coreglib.PriorityDefault, func() { rec.add("coreglib idle") })
	if aio.Attach(def) == 0 {
		t.Fatal("AioContext.Attach returned 0")
	}
	bh := aio.NewBH("gotk4test", func() { rec.add("aio bh") })
	t.Cleanup(bh.Delete)
	bh.Schedule()
	addOneshot(glibloop.PriorityDefault, func() { rec.add("glibaio after") }).Unref()

	flushDefault(t)
	if !removed {
		t.Error("coreglib.SourceRemove from a glibaio callback did not find the idle")
	}
	want := []event{{"glibaio before", 0}, {"aio bh", 0}, {"glibaio after", 0}}
	got := slices.Clone(rec.events)
	for i := range got {
		got[i].iter -= rec.events[0].iter
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v (all in one iteration)", got, want)
	}
}

// Source ids are one namespace on the default context: coreglib.SourceRemove removes a
// glibaio source by the id Attach returned (its Finalize runs and its cgo handle is
// freed: setup's leak check), and glibloop's RemoveSource removes a coreglib timeout by
// its handle.
func TestSourceRemoveAcrossBindings(t *testing.T) {
	rec := setup(t)
	def := glibloop.DefaultContext()

	fin := &finalizeCounter{}
	s := glibloop.NewSource(fin)
	s.SetReadyTime(0)
	id := s.Attach(def)
	s.Unref()
	timeout := coreglib.TimeoutAdd(1, func() { rec.add("coreglib timeout") })

	if !coreglib.SourceRemove(coreglib.SourceHandle(id)) {
		t.Fatal("coreglib.SourceRemove did not find the glibaio source by its id")
	}
	if fin.finalized != 1 {
		t.Fatalf("the glibaio source was finalized %d times, want 1", fin.finalized)
	}
	if !def.RemoveSource(uint(timeout)) {
		t.Fatal("MainContext.RemoveSource did not find coreglib's timeout by its handle")
	}
	time.Sleep(5 * time.Millisecond)
	flushDefault(t)
	if fin.dispatched != 0 || len(rec.events) != 0 {
		t.Fatalf("removed sources ran: glibaio %d times, %v", fin.dispatched, rec.names())
	}
}

// finalizeCounter counts its dispatches and finalizations.
type finalizeCounter struct{ dispatched, finalized int }

func (f *finalizeCounter) Dispatch(*glibloop.Source) bool { f.dispatched++; return false }
func (f *finalizeCounter) Finalize(*glibloop.Source)      { f.finalized++ }
