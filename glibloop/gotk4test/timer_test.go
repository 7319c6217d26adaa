package gotk4test_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	coreglib "github.com/diamondburned/gotk4/pkg/core/glib"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

// gap separates consecutive deadlines: far more than GLib's millisecond rounding and
// aiosource's ScaleMS truncation, and enough for a loaded machine to wake in time.
const gap = 25 * time.Millisecond

// firing is one timer callback: its name, the probe's iteration count and the time
// since the timers were armed.
type firing struct {
	name string
	iter int
	at   time.Duration
}

// TestTimeoutDeadlineOrder arms coreglib timeouts (TimeoutAdd, TimeoutAddPriority), a
// glibloop timeout and aiosource timers on ClockRealtime and ClockHost, interleaved in
// deadline order but attached in another order, all on the default context, and
// checks that each fires alone in its own iteration, in deadline order, and never
// before its deadline. GLib's timeouts and the AioContext's timers all sit at
// PriorityDefault, and the coreglib timeouts are attached before the AioContext: if an
// aiosource timer missed its wake-up and became due together with a later coreglib
// timeout, GLib would run coreglib's first and the order would break.
func TestTimeoutDeadlineOrder(t *testing.T) {
	for _, drive := range []string{"Iteration", "LoopRun"} {
		t.Run(drive, func(t *testing.T) {
			// A machine stall longer than the gap makes two deadlines due in one
			// iteration, where GLib dispatches by attach order: such an attempt
			// proves nothing and is retried. A real bug fails every attempt.
			const attempts = 3
			probe := setup(t).probe
			for i := 1; ; i++ {
				problems, stalled := timeoutDeadlineOrder(t, probe, drive == "LoopRun")
				if len(problems) == 0 {
					return
				}
				if !stalled || i == attempts {
					t.Fatalf("attempt %d of %d:\n%s", i, attempts, strings.Join(problems, "\n"))
				}
				t.Logf("attempt %d: the loop was late by more than %v; retrying:\n%s", i, gap, strings.Join(problems, "\n"))
			}
		})
	}
}

// timeoutDeadlineOrder runs one attempt. It returns what went wrong and whether some
// callback ran a whole gap or more after its deadline.
func timeoutDeadlineOrder(t *testing.T, probe *iterProbe, run bool) (problems []string, stalled bool) {
	t.Helper()
	var cleanups []func()
	defer func() {
		for _, f := range slices.Backward(cleanups) {
			f()
		}
	}()
	def := glibloop.DefaultContext()
	aio, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	cleanups = append(cleanups, func() {
		if err := aio.Close(); err != nil {
			t.Errorf("aiosource Close: %v", err)
		}
	})

	var fired []firing
	var loop *glibloop.Loop
	if run {
		loop = glibloop.NewLoop(def)
	}
	const total = 6
	var t0 time.Time
	record := func(name string) {
		fired = append(fired, firing{name, probe.n, time.Since(t0)})
		if len(fired) == total && loop != nil {
			loop.Quit()
		}
	}
	deadline := map[string]time.Duration{}
	ms := func(d time.Duration) uint { return uint(d / time.Millisecond) }

	t0 = time.Now()
	// coreglib's sources first, then the AioContext, then glibloop's timeout.
	deadline["coreglib.TimeoutAdd"] = 2 * gap
	coreglib.TimeoutAdd(ms(2*gap), func() { record("coreglib.TimeoutAdd") })
	deadline["coreglib.TimeoutAddPriority"] = 4 * gap
	coreglib.TimeoutAddPriority(ms(4*gap), coreglib.PriorityDefault, func() bool {
		record("coreglib.TimeoutAddPriority")
		return false
	})
	if aio.Attach(def) == 0 {
		t.Fatal("AioContext.Attach returned 0")
	}
	timer := func(name string, clock aiosource.ClockType, d time.Duration) {
		deadline[name] = d
		tm := aio.NewTimer(clock, aiosource.ScaleMS, func() { record(name) })
		cleanups = append(cleanups, tm.Del)
		tm.Mod(aiosource.ClockNS(clock)/aiosource.ScaleMS + int64(ms(d)))
	}
	timer("aiosource/realtime/1", aiosource.ClockRealtime, 1*gap)
	timer("aiosource/host", aiosource.ClockHost, 3*gap)
	timer("aiosource/realtime/5", aiosource.ClockRealtime, 5*gap)
	deadline["glibloop.TimeoutAdd"] = 6 * gap
	glibloop.TimeoutAdd(def, 6*gap, func() bool { record("glibloop.TimeoutAdd"); return false })

	// A safety net that ends a stuck drive, removed before it could fire.
	stuck := false
	safety := glibloop.TimeoutAdd(def, 10*time.Second, func() bool {
		stuck = true
		if loop != nil {
			loop.Quit()
		}
		return false
	})
	cleanups = append(cleanups, func() { def.RemoveSource(safety) })

	if run {
		if err := loop.Run(context.Background()); err != nil {
			t.Fatalf("Loop.Run: %v", err)
		}
	} else {
		for len(fired) < total && !stuck {
			def.Iteration(true)
		}
	}
	if stuck {
		return []string{fmt.Sprintf("only %d of %d timers fired in 10s: %v", len(fired), total, fired)}, false
	}

	want := []string{"aiosource/realtime/1", "coreglib.TimeoutAdd", "aiosource/host",
		"coreglib.TimeoutAddPriority", "aiosource/realtime/5", "glibloop.TimeoutAdd"}
	var got []string
	for _, f := range fired {
		got = append(got, f.name)
	}
	if !slices.Equal(got, want) {
		problems = append(problems, fmt.Sprintf("order %v, want %v", got, want))
	}
	for i, f := range fired {
		// ScaleMS truncates "now" to the millisecond, so an aiosource deadline may
		// fall up to 1 ms before t0+d.
		if d := deadline[f.name]; f.at < d-time.Millisecond {
			problems = append(problems, fmt.Sprintf("%s fired at %v, before its deadline %v", f.name, f.at, d))
		} else if f.at-d >= gap {
			stalled = true
		}
		if i > 0 && f.iter <= fired[i-1].iter {
			problems = append(problems, fmt.Sprintf("%s ran in the same iteration as %s", f.name, fired[i-1].name))
		}
	}
	if len(problems) > 0 {
		problems = append(problems, fmt.Sprintf("firings: %v", fired))
	}
	return problems, stalled
}
