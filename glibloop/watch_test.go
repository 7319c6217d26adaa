package glibloop_test

import (
	"bytes"
	"github.com/glibaio/glibaio/internal/leakcheck"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glibaio/glibaio/glibloop"
)

type stallSource struct{ d time.Duration }

func (s *stallSource) Prepare(*glibloop.Source) (bool, time.Duration) { return true, 0 }
func (s *stallSource) Dispatch(*glibloop.Source) bool {
	time.Sleep(s.d)
	return false
}

// The watchdog reports a Dispatch that runs past the threshold while it still runs,
// with its name, duration and the stack of the goroutine stuck in it; statistics count
// every dispatch with its mean and maximum time.
func TestStallWatchdog(t *testing.T) {
	leakcheck.Handles(t)
	c := newContext(t)
	stalls := make(chan glibloop.Stall, 4)
	glibloop.SetStallWatchdog(20*time.Millisecond, func(s glibloop.Stall) { stalls <- s })
	defer glibloop.SetStallWatchdog(0, nil)

	s := glibloop.NewSource(&stallSource{d: 150 * time.Millisecond})
	s.SetName("slowpoke")
	s.Attach(c)
	defer s.Unref()
	returned := make(chan time.Time, 1)
	go func() { c.Iteration(false); returned <- time.Now() }()
	var st glibloop.Stall
	select {
	case st = <-stalls:
	case <-time.After(10 * time.Second):
		t.Fatal("no stall was reported")
	}
	reportedAt := time.Now()
	ret := <-returned
	if !reportedAt.Before(ret) {
		t.Fatal("the stall was reported only after the callback returned")
	}
	if st.Kind != "source dispatch" || st.Name != "slowpoke" || st.Duration < 20*time.Millisecond {
		t.Fatalf("stall %+v", st)
	}
	for _, want := range []string{"stallSource).Dispatch", "time.Sleep"} {
		if !strings.Contains(string(st.Stack), want) {
			t.Fatalf("the stall's stack lacks %q:\n%s", want, st.Stack)
		}
	}
	select {
	case extra := <-stalls:
		t.Fatalf("one stall reported twice: %+v", extra)
	case <-time.After(100 * time.Millisecond):
	}
	ds := s.DispatchStats()
	if ds.Count != 1 || ds.Max < 150*time.Millisecond || ds.Mean() != ds.Max {
		t.Fatalf("dispatch stats %+v", ds)
	}
}

// The default report goes through log/slog.
func TestStallWatchdogDefaultLogs(t *testing.T) {
	leakcheck.Handles(t)
	var mu sync.Mutex
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil)))
	defer slog.SetDefault(old)
	glibloop.SetStallWatchdog(10*time.Millisecond, nil)
	defer glibloop.SetStallWatchdog(0, nil)
	c := newContext(t)
	s := glibloop.NewSource(&stallSource{d: 80 * time.Millisecond})
	s.SetName("logged")
	s.Attach(c)
	s.Unref()
	c.Iteration(false)
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "stalled callback") || !strings.Contains(out, "name=logged") {
		t.Fatalf("slog output: %q", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
