package gotk4test_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	coreglib "github.com/diamondburned/gotk4/pkg/core/glib"

	"github.com/glibaio/glibaio/glibloop"
)

// coreglib's priorities are GLib's G_PRIORITY_* values, as glibloop's are, so a
// conversion between the two types keeps the meaning.
func TestPriorityValuesMatch(t *testing.T) {
	pairs := []struct {
		core coreglib.Priority
		ours glibloop.Priority
	}{
		{coreglib.PriorityHigh, glibloop.PriorityHigh},
		{coreglib.PriorityDefault, glibloop.PriorityDefault},
		{coreglib.PriorityHighIdle, glibloop.PriorityHighIdle},
		{coreglib.PriorityDefaultIdle, glibloop.PriorityDefaultIdle},
		{coreglib.PriorityLow, glibloop.PriorityLow},
	}
	for _, p := range pairs {
		if int(p.core) != int(p.ours) {
			t.Errorf("coreglib priority %d, glibloop %d", p.core, p.ours)
		}
	}
}

// TestIdlePriorityOrder attaches one-shot callbacks of four kinds to the default
// context, in an order that has nothing to do with their priorities: coreglib idles
// (IdleAdd and IdleAddPriority), glibloop idles (IdleAddPriority), Go-defined glibaio
// sources (NewSource), and a BH of an AioContext attached to the same context. GLib must
// dispatch them one priority level per iteration, highest first, and within a level in
// the order they were attached, whoever attached them.
func TestIdlePriorityOrder(t *testing.T) {
	drives := []struct {
		name  string
		drive func(t *testing.T, quit *func())
	}{
		{"Iteration", func(t *testing.T, quit *func()) { flushDefault(t) }},
		{"LoopRun", func(t *testing.T, quit *func()) {
			loop := glibloop.NewLoop(glibloop.DefaultContext())
			*quit = loop.Quit
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := loop.Run(ctx); err != nil {
				t.Fatalf("Loop.Run: %v", err)
			}
		}},
	}
	// The AioContext's GSource at PriorityDefault (QEMU's choice) and at
	// PriorityDefaultIdle, where its BH shares a level with coreglib.IdleAdd.
	for _, aioPrio := range []glibloop.Priority{glibloop.PriorityDefault, glibloop.PriorityDefaultIdle} {
		for _, d := range drives {
			t.Run(fmt.Sprintf("%s/aio@%d", d.name, aioPrio), func(t *testing.T) {
				testIdlePriorityOrder(t, aioPrio, d.drive)
			})
		}
	}
}

func testIdlePriorityOrder(t *testing.T, aioPrio glibloop.Priority, drive func(*testing.T, *func())) {
	rec := setup(t)
	probe := rec.probe
	quit := func() {}
	aio := newAio(t, aioPrio)
	def := glibloop.DefaultContext()

	// Each step attaches one callback that records its name; the last level's last
	// callback ends a Loop.Run.
	type step struct {
		name   string
		prio   glibloop.Priority
		attach func(fn func())
	}
	core := func(p coreglib.Priority) func(func()) {
		return func(fn func()) { coreglib.IdleAddPriority(p, fn) }
	}
	idle := func(p glibloop.Priority) func(func()) {
		return func(fn func()) { glibloop.IdleAddPriority(def, p, func() bool { fn(); return false }) }
	}
	src := func(p glibloop.Priority) func(func()) {
		return func(fn func()) { addOneshot(p, fn).Unref() }
	}
	steps := []step{
		{"coreglib.IdleAdd", glibloop.PriorityDefaultIdle, func(fn func()) { coreglib.IdleAdd(fn) }},
		{"source/high", glibloop.PriorityHigh, src(glibloop.PriorityHigh)},
		{"coreglib/low", glibloop.PriorityLow, core(coreglib.PriorityLow)},
		{"aio-bh", aioPrio, func(fn func()) {
			if aio.Attach(def) == 0 {
				t.Fatal("AioContext.Attach returned 0")
			}
			bh := aio.NewBH("gotk4test", fn)
			t.Cleanup(bh.Delete) // before the context's Close, which runs later
			bh.Schedule()
		}},
		{"glibloop/high-idle", glibloop.PriorityHighIdle, idle(glibloop.PriorityHighIdle)},
		{"coreglib/high", glibloop.PriorityHigh, core(coreglib.PriorityHigh)},
		{"glibloop/default-idle", glibloop.PriorityDefaultIdle, idle(glibloop.PriorityDefaultIdle)},
		{"source/default", glibloop.PriorityDefault, src(glibloop.PriorityDefault)},
		{"coreglib/default", glibloop.PriorityDefault, core(coreglib.PriorityDefault)},
		{"glibloop/low", glibloop.PriorityLow, idle(glibloop.PriorityLow)},
	}
	for _, s := range steps {
		last := s.name == "glibloop/low"
		s.attach(func() {
			rec.add(s.name)
			if last {
				quit()
			}
		})
	}

	// Expected: a stable sort of the steps by priority; one iteration per level.
	sorted := slices.Clone(steps)
	slices.SortStableFunc(sorted, func(a, b step) int { return int(a.prio) - int(b.prio) })
	var want []event
	level := -1
	for i, s := range sorted {
		if i == 0 || s.prio != sorted[i-1].prio {
			level++
		}
		want = append(want, event{s.name, level})
	}

	start := probe.n
	drive(t, &quit)
	got := slices.Clone(rec.events)
	if len(got) > 0 {
		base := got[0].iter
		if base <= start {
			t.Errorf("first callback ran at probe count %d, not after the drive began (%d)", base, start)
		}
		for i := range got {
			got[i].iter -= base
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("dispatch order (name, iteration):\n got %v\nwant %v", got, want)
	}
	if def.Pending() {
		t.Error("the default context still has work after the drive")
	}
}
