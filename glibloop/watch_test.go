package glibloop_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"
	"github.com/glibaio/glibaio/internal/testutil"

	"github.com/glibaio/glibaio/glibloop"
)

// stallSource's Dispatch sleeps d, then goes on sleeping until seen reports true (at
// most 10 s), so that a watchdog tick that comes late on a loaded machine still finds
// it running. returnedSeen tells whether seen was true when it returned.
type stallSource struct {
	d            time.Duration
	seen         func() bool
	returnedSeen atomic.Bool
}

func (s *stallSource) Prepare(*glibloop.Source) (bool, time.Duration) { return true, 0 }
func (s *stallSource) Dispatch(*glibloop.Source) bool {
	time.Sleep(s.d)
	for end := time.Now().Add(10 * time.Second); !s.seen() && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	s.returnedSeen.Store(s.seen())
	return false
}

// The watchdog reports a Dispatch that runs past the threshold while it still runs,
// with its name, duration and the stack of the goroutine stuck in it; statistics count
// every dispatch with its mean and maximum time.
func TestStallWatchdog(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	stalls := make(chan glibloop.Stall, 4)
	glibloop.SetStallWatchdog(20*time.Millisecond, func(s glibloop.Stall) { stalls <- s })
	defer glibloop.SetStallWatchdog(0, nil)

	ss := &stallSource{d: 150 * time.Millisecond, seen: func() bool { return len(stalls) > 0 }}
	s := glibloop.NewSource(ss)
	s.SetName("slowpoke")
	s.Attach(c)
	defer s.Unref()
	returned := make(chan struct{})
	go func() { c.Iteration(false); close(returned) }()
	<-returned
	// The report is in the channel before the dispatch returns, so it was made while the
	// dispatch still ran.
	if !ss.returnedSeen.Load() {
		t.Fatal("no stall was reported while the callback ran (10 s)")
	}
	st := <-stalls
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
	c := testutil.NewContext(t)
	logged := func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
	s := glibloop.NewSource(&stallSource{d: 80 * time.Millisecond, seen: func() bool {
		return strings.Contains(logged(), "name=logged")
	}})
	s.SetName("logged")
	s.Attach(c)
	s.Unref()
	c.Iteration(false)
	out := logged()
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

// phasedSource is ready at every iteration; its Dispatch returns at once until stall is
// set, then stalls as stallSource does, or panics when boom is set.
type phasedSource struct {
	stallSource
	stall, boom atomic.Bool
}

func (s *phasedSource) Dispatch(src *glibloop.Source) bool {
	switch {
	case s.boom.Load():
		panic("boom")
	case s.stall.Load():
		s.stallSource.Dispatch(src)
	}
	return true
}

// A fast source's dispatches are timed by sampling after its first calls, but their
// count stays exact, and the watchdog still names the source when a later dispatch
// stalls, while it runs: it does not depend on which calls the sampling times. The
// stalled call keeps to the sampling rules (it is most likely untimed), but the time the
// watchdog saw it stuck, at least the threshold, shows as the Max.
func TestStallWatchdogSampledSource(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	stalls := make(chan glibloop.Stall, 4)
	ps := &phasedSource{}
	ps.stallSource = stallSource{d: 150 * time.Millisecond, seen: func() bool { return len(stalls) > 0 }}
	s := glibloop.NewSource(ps)
	s.SetName("fast then stuck")
	s.Attach(c)
	defer func() { s.Destroy(); s.Unref() }()

	const fast = 5000 // far past the calls that are all timed
	for i := 0; i < fast; i++ {
		c.Iteration(false)
	}
	ds := s.DispatchStats()
	if ds.Count != fast || ds.Total <= 0 || ds.Max <= 0 || ds.Max > 100*time.Millisecond {
		t.Fatalf("after %d fast dispatches: %+v", fast, ds)
	}

	glibloop.SetStallWatchdog(20*time.Millisecond, func(s glibloop.Stall) { stalls <- s })
	defer glibloop.SetStallWatchdog(0, nil)
	ps.stall.Store(true)
	returned := make(chan struct{})
	go func() { c.Iteration(false); close(returned) }()
	<-returned
	if !ps.returnedSeen.Load() {
		t.Fatal("no stall was reported while the sampled source's dispatch ran (10 s)")
	}
	st := <-stalls
	if st.Kind != "source dispatch" || st.Name != "fast then stuck" || st.Duration < 20*time.Millisecond ||
		!strings.Contains(string(st.Stack), "phasedSource).Dispatch") {
		t.Fatalf("stall %+v", st)
	}
	ds = s.DispatchStats()
	if ds.Count != fast+1 || ds.Max < st.Duration || ds.Max < 20*time.Millisecond {
		t.Fatalf("after the stall: %+v", ds)
	}
}

// A Dispatch that panics is counted, and the watchdog stops seeing it once the panic
// has left GLib: it never reports a callback that is no longer running.
func TestStallWatchdogAfterPanic(t *testing.T) {
	leakcheck.Handles(t)
	c := testutil.NewContext(t)
	stalls := make(chan glibloop.Stall, 4)
	glibloop.SetStallWatchdog(10*time.Millisecond, func(s glibloop.Stall) { stalls <- s })
	defer glibloop.SetStallWatchdog(0, nil)
	ps := &phasedSource{}
	ps.boom.Store(true)
	s := glibloop.NewSource(ps)
	s.SetName("panics")
	s.Attach(c)
	defer func() { s.Destroy(); s.Unref() }()
	if pe := catch(t, func() { c.Iteration(false) }); pe == nil {
		t.Fatal("the panic was not raised from Iteration")
	}
	select {
	case st := <-stalls:
		t.Fatalf("a stall was reported after the panicking dispatch returned: %+v", st)
	case <-time.After(100 * time.Millisecond):
	}
	if ds := s.DispatchStats(); ds.Count != 1 {
		t.Fatalf("dispatch stats after a panic: %+v", ds)
	}
}
