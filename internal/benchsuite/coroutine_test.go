package benchsuite

import (
	"regexp"
	"testing"
	"time"

	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/internal/cbaseline"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

// The go test benchmarks behind the coroutine rows of aiobench: ns/op is the cost of one
// enter+yield pair, one create+run+finish, one CoMutex hand-off, or their baselines'.

func benchCoLoop(b *testing.B, glib bool, f func(l *CoLoop, n int)) {
	l, err := NewCoLoop(glib)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	f(l, 100) // warm up
	b.ReportAllocs()
	b.ResetTimer()
	f(l, b.N)
}

func BenchmarkCoEnterYield(b *testing.B) {
	b.Run("glibaio-Poll", func(b *testing.B) {
		benchCoLoop(b, false, func(l *CoLoop, n int) { l.EnterYield(n) })
	})
	b.Run("glibaio-GLib", func(b *testing.B) {
		benchCoLoop(b, true, func(l *CoLoop, n int) { l.EnterYield(n) })
	})
	b.Run("iter.Pull-floor", func(b *testing.B) { PullPairs(b.N) })
	b.Run("C-sigsetjmp", func(b *testing.B) {
		if _, err := cbaseline.SigjmpPairs(b.N); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("C-swapcontext", func(b *testing.B) {
		if _, err := cbaseline.SwapcontextPairs(b.N); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("chan-locked-loop", func(b *testing.B) { ChanRoundTrips(b.N) })
	// One empty cgo call, for the profile: aiosource's Enter makes one (cshim.StackMark)
	// to find the callback level it runs at.
	b.Run("cgo-call", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			cshim.StackMark()
		}
	})
}

func BenchmarkCoCreate(b *testing.B) {
	b.Run("glibaio-Poll", func(b *testing.B) {
		benchCoLoop(b, false, func(l *CoLoop, n int) { l.CreateRun(n) })
	})
	b.Run("oneshot-BH-Poll", func(b *testing.B) {
		benchCoLoop(b, false, func(l *CoLoop, n int) { l.Oneshot(n) })
	})
}

func BenchmarkCoMutexHandoff(b *testing.B) {
	b.Run("glibaio-Poll", func(b *testing.B) {
		benchCoLoop(b, false, func(l *CoLoop, n int) { l.Handoff(n) })
	})
	b.Run("sync.Mutex", func(b *testing.B) { MutexHandoffs(b.N) })
}

// The coroutine scenarios do what they claim: every enter resumes the coroutine past its
// yield, every create runs its entry, every hand-off gives the lock to the other
// coroutine; under Poll and under a GLib iteration. (Timings are meaningless here.)
func TestCoScenariosRun(t *testing.T) {
	leakcheck.Handles(t)
	for _, glib := range []bool{false, true} {
		l, err := NewCoLoop(glib)
		if err != nil {
			t.Fatal(err)
		}
		const n = 50
		if d := l.EnterYield(n); d <= 0 || l.Steps != n+1 {
			t.Errorf("glib %v: EnterYield(%d): %v, %d steps, want %d", glib, n, d, l.Steps, n+1)
		}
		l.Steps = 0
		if d := l.CreateRun(n); d <= 0 || l.Steps != n+1 {
			t.Errorf("glib %v: CreateRun(%d): %v, %d entries run, want %d", glib, n, d, l.Steps, n+1)
		}
		if d := l.Handoff(n); d <= 0 || l.Locks != n+2 {
			t.Errorf("glib %v: Handoff(%d): %v, %d acquisitions, want %d", glib, n, d, l.Locks, n+2)
		}
		if !glib {
			l.Steps = 0
			if d := l.Oneshot(n); d <= 0 || l.Steps != n {
				t.Errorf("Oneshot(%d): %v, %d BHs run", n, d, l.Steps)
			}
		}
		l.Close()
	}
	for name, f := range map[string]func(int) time.Duration{
		"PullPairs": PullPairs, "ChanRoundTrips": ChanRoundTrips, "MutexHandoffs": MutexHandoffs,
	} {
		if d := f(11); d <= 0 {
			t.Errorf("%s: %v", name, d)
		}
	}
}

// -only: a section that the regexp does not match does not run.
func TestRunOnly(t *testing.T) {
	leakcheck.Handles(t)
	var ran []string
	rows, sc, err := Run(Config{Rounds: 3, Ops: 30, Quick: true, Only: regexp.MustCompile("^CoMutex")},
		func(s string) { ran = append(ran, s) })
	if err != nil {
		t.Fatal(err)
	}
	if len(ran) != 1 || ran[0] != "CoMutex hand-off" || len(rows) != 1 || len(sc.FDs) != 0 {
		t.Fatalf("sections run %q, %d rows, %d scaling points", ran, len(rows), len(sc.FDs))
	}
	if r := rows[0]; r.Target != TargetReport || r.Pass || r.OursNS <= 0 || r.BaselineNS <= 0 {
		t.Fatalf("CoMutex row %+v", r)
	}
}
