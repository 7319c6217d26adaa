package model

import (
	"strings"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/glibloop"
)

type fakeView struct {
	events, bytes int64
	done, total   int
	flood, late   string
}

func (f *fakeView) SetFDEvents(e, b int64) { f.events, f.bytes = e, b }
func (f *fakeView) SetProgress(d, t int)   { f.done, f.total = d, t }
func (f *fakeView) SetFlood(s string)      { f.flood = s }
func (f *fakeView) SetLateness(s string)   { f.late = s }

// The demo's AIO wiring, without GTK or a display: the child's pipe counts fd events,
// jobs move the progress, the flood reports its throughput, the timer its lateness, and
// everything closes with nothing left alive.
func TestModelWiring(t *testing.T) {
	leakcheck.Handles(t)
	mc := glibloop.NewMainContext()
	defer mc.Unref()
	v := &fakeView{}
	m, err := New(mc, v)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.StartChild(); err != nil {
		t.Fatal(err)
	}
	m.StartJobs(20, time.Millisecond)
	m.Flood(100_000)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		mc.Iteration(true)
		if v.events >= 3 && v.done == 20 && strings.Contains(v.flood, "BHs/s") && v.late != "" {
			break
		}
	}
	if v.events < 3 || v.bytes < 15 {
		t.Errorf("fd events %d (%d bytes) from the child's pipe", v.events, v.bytes)
	}
	if v.done != 20 || v.total != 20 {
		t.Errorf("progress %d/%d", v.done, v.total)
	}
	if !strings.HasPrefix(v.flood, "100000 BHs in") {
		t.Errorf("flood report %q", v.flood)
	}
	if n, took := m.LastFlood(); n != 100_000 || took <= 0 {
		t.Errorf("LastFlood = %d, %v", n, took)
	}
	if !strings.Contains(v.late, "lateness: p50") {
		t.Errorf("lateness %q", v.late)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}
