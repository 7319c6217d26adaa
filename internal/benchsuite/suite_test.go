package benchsuite

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/cbaseline"
)

// The go test benchmarks behind each aiobench row. Each reports ns/op for one side;
// aiobench runs the two sides interleaved and reports the ratios.

func BenchmarkFDRoundTrip(b *testing.B) {
	b.Run("glibaio", func(b *testing.B) {
		l, err := NewFDLoop(0)
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		b.ReportAllocs()
		b.ResetTimer()
		l.Drive(b.N)
	})
	b.Run("C-GSource", func(b *testing.B) {
		c, err := NewCSource()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ResetTimer()
		c.Drive(b.N)
	})
}

func BenchmarkIdleFDs(b *testing.B) {
	for _, n := range FDCounts {
		fds, err := eventfds(n + 1)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("glibaio/%d", n), func(b *testing.B) {
			l, err := NewFDLoopOn(fds[0], fds[1:])
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			b.ReportAllocs()
			b.ResetTimer()
			l.Drive(b.N)
		})
		b.Run(fmt.Sprintf("GLib-unix-fd-sources/%d", n), func(b *testing.B) {
			g := NewGLibFDSources(fds[0], fds[1:])
			defer g.Close()
			b.ResetTimer()
			g.Drive(b.N)
		})
		closeAll(fds)
	}
}

func BenchmarkBHIteration(b *testing.B) {
	b.Run("glibaio", func(b *testing.B) {
		bi, err := NewBHIteration()
		if err != nil {
			b.Fatal(err)
		}
		defer bi.Close()
		kicks := bi.Ctx.Stats().Kicks
		b.ReportAllocs()
		b.ResetTimer()
		bi.Run(b.N)
		b.ReportMetric(float64(bi.Ctx.Stats().Kicks-kicks)/float64(b.N), "eventfd-writes/op")
	})
	b.Run("gotk3-IdleAdd", func(b *testing.B) { Gotk3Idle(b.N) })
}

func BenchmarkOneshotFlood(b *testing.B) {
	b.Run("glibaio", func(b *testing.B) {
		bi, err := NewBHIteration()
		if err != nil {
			b.Fatal(err)
		}
		defer bi.Close()
		b.ReportAllocs()
		b.ResetTimer()
		per := OneshotFlood(bi.Ctx, glibloop.DefaultContext(), 4, max(b.N/4, 1))
		b.ReportMetric(float64(per), "ns/event")
	})
	b.Run("gotk3-IdleAdd", func(b *testing.B) {
		per := Gotk3Flood(4, max(b.N/4, 1))
		b.ReportMetric(float64(per), "ns/event")
	})
}

func BenchmarkTimerLateness(b *testing.B) {
	report := func(b *testing.B, d []time.Duration) {
		v := make([]float64, len(d))
		for i, x := range d {
			v[i] = float64(x) / 1e3
		}
		b.ReportMetric(Percentile(v, 50), "p50-µs")
		b.ReportMetric(Percentile(v, 99), "p99-µs")
	}
	b.Run("glibaio", func(b *testing.B) {
		d, err := TimerLateness(1500*time.Microsecond, max(b.N, 100))
		if err != nil {
			b.Fatal(err)
		}
		report(b, d)
	})
	for _, m := range []struct {
		name string
		mode int
	}{{"ready-time-GSource", cbaseline.TimerReadyTime}, {"bare-timerfd", cbaseline.TimerBareFD}, {"timerfd-C-GSource", cbaseline.TimerFDSource}} {
		b.Run(m.name, func(b *testing.B) {
			mc := glibloop.NewMainContext()
			defer mc.Unref()
			d, err := cbaseline.TimerLateness(mc.Native(), m.mode, 1500*time.Microsecond, max(b.N, 100))
			if err != nil {
				b.Fatal(err)
			}
			report(b, d)
		})
	}
}

func BenchmarkPollTimerLateness(b *testing.B) {
	report := func(b *testing.B, d []time.Duration, err error) {
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(lateUS(d, 50), "p50-µs")
		b.ReportMetric(lateUS(d, 99), "p99-µs")
	}
	period := 1500 * time.Microsecond
	b.Run("glibaio-Poll", func(b *testing.B) {
		d, err := PollTimerLateness(period, max(b.N, 100), false)
		report(b, d, err)
	})
	b.Run("glibaio-Poll-default-slack", func(b *testing.B) {
		d, err := PollTimerLateness(period, max(b.N, 100), true)
		report(b, d, err)
	})
	b.Run("bare-timerfd", func(b *testing.B) {
		d, err := BareTimerLateness(cbaseline.TimerBareFD, period, max(b.N, 100))
		report(b, d, err)
	})
	b.Run("bare-ppoll", func(b *testing.B) {
		d, err := BareTimerLateness(cbaseline.TimerBarePPoll, period, max(b.N, 100))
		report(b, d, err)
	})
	b.Run("ppoll-from-Go", func(b *testing.B) {
		d, err := CgoPPollLateness(period, max(b.N, 100))
		report(b, d, err)
	})
}

func BenchmarkPingPong(b *testing.B) {
	b.Run("glibaio-IOThreads", func(b *testing.B) {
		d, err := PingPong(max(b.N, 10))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(d)/float64(max(b.N, 10)), "ns/roundtrip")
	})
	b.Run("C-threads", func(b *testing.B) {
		d := cbaseline.PingPong(max(b.N, 10))
		b.ReportMetric(float64(d)/float64(max(b.N, 10)), "ns/roundtrip")
	})
}

// A miniature run of the whole suite: every row comes out, with the JSON keys the
// issue fixes. (The timings are meaningless here; aiobench measures them.)
func TestSuiteRuns(t *testing.T) {
	leakcheck.Handles(t)
	cfg, want := Config{Rounds: 3, Ops: 30, Quick: true}, 28
	if asanBuild {
		// The C switch of the enter+yield rows is not for AddressSanitizer
		// (coroutine_cswitch_test.go): every other section runs.
		var names []string
		for _, s := range Sections {
			if s != "coroutine enter+yield" {
				names = append(names, regexp.QuoteMeta(s))
			}
		}
		cfg.Only, want = regexp.MustCompile("^("+strings.Join(names, "|")+")$"), 26
	}
	rows, sc, err := Run(cfg, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != want || len(sc.Ours) != len(FDCounts) || len(sc.GLib) != len(FDCounts) {
		t.Fatalf("%d rows, %d/%d scaling points", len(rows), len(sc.Ours), len(sc.GLib))
	}
	js, _ := json.Marshal(rows[0])
	for _, k := range []string{"name", "ours_ns", "baseline", "baseline_ns", "ratio", "target", "pass"} {
		if !strings.Contains(string(js), `"`+k+`"`) {
			t.Fatalf("JSON row %s lacks key %q", js, k)
		}
	}
	for _, r := range rows {
		if r.OursNS < 0 || (r.Baseline != "-" && r.BaselineNS <= 0) {
			t.Errorf("row %q has no measurement: %+v", r.Name, r)
		}
	}
}

// The Poll timer rows measure what they claim: each expiry once, on a thread whose slack
// Poll set to 1 ns itself, or that keeps the kernel's default 50 µs for the "default
// slack" figure; the floors run with slack 1 ns.
func TestPollTimerLatenessSlack(t *testing.T) {
	leakcheck.Handles(t)
	for _, def := range []bool{false, true} {
		want := 1
		if def {
			want = DefaultSlackNS
		}
		var seen []int
		d, err := pollTimerLateness(200*time.Microsecond, 5, def, func() {
			ns, _ := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
			seen = append(seen, ns)
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(d) != 5 || len(seen) != 5 {
			t.Fatalf("default slack %v: %d lateness samples, %d expiries for 5 rounds", def, len(d), len(seen))
		}
		for i, ns := range seen {
			if ns != want || d[i] < 0 {
				t.Fatalf("default slack %v: expiry %d ran %v late with slack %d ns, want slack %d", def, i, d[i], ns, want)
			}
		}
	}
}

// The fd round trip really runs the Go read handler once per iteration, in both
// backends, so the timings measure what they claim.
func TestFDLoopRunsHandlerEachIteration(t *testing.T) {
	leakcheck.Handles(t)
	for _, idle := range []int{0, 100} {
		l, err := NewFDLoop(idle)
		if err != nil {
			t.Fatal(err)
		}
		before := l.Ctx.Stats().Handlers
		l.Drive(1000)
		if got := l.Ctx.Stats().Handlers - before; got != 1000 {
			t.Errorf("%d idle fds: %d handler runs for 1000 iterations", idle, got)
		}
		l.Close()
	}
}
