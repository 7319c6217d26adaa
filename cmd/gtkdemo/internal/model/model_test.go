package model

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glibaio/glibaio/coroutine"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/glibloop"
)

type fakeView struct {
	events, bytes int64
	done, total   int
	flood, late   string
	checksum      []string
}

func (f *fakeView) SetFDEvents(e, b int64) { f.events, f.bytes = e, b }
func (f *fakeView) SetProgress(d, t int)   { f.done, f.total = d, t }
func (f *fakeView) SetFlood(s string)      { f.flood = s }
func (f *fakeView) SetLateness(s string)   { f.late = s }
func (f *fakeView) SetChecksum(s string)   { f.checksum = append(f.checksum, s) }

// newModel returns a Model on a GMainContext of its own, with a fake view; the test
// closes the Model, and the context goes when the test ends.
func newModel(t *testing.T) (*glibloop.MainContext, *fakeView, *Model) {
	t.Helper()
	mc := glibloop.NewMainContext()
	t.Cleanup(mc.Unref)
	v := &fakeView{}
	m, err := New(mc, v)
	if err != nil {
		t.Fatal(err)
	}
	return mc, v, m
}

// The demo's AIO wiring, without GTK or a display: the child's pipe counts fd events,
// jobs move the progress, the flood reports its throughput, the timer its lateness, and
// everything closes with nothing left alive.
func TestModelWiring(t *testing.T) {
	leakcheck.Handles(t)
	mc, v, m := newModel(t)
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

// The checksum coroutine hashes a file chunk by chunk, showing progress on the loop
// thread, and ends with the file's digest; a cancelled one says so and stops.
func TestModelChecksum(t *testing.T) {
	leakcheck.Handles(t)
	mc, v, m := newModel(t)
	data := make([]byte, 3<<20+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	tk := m.Checksum(path)
	for !isDone(tk) {
		mc.Iteration(true)
	}
	want := fmt.Sprintf("sha256: %x (%d bytes)", sha256.Sum256(data), len(data))
	if tk.Err() != nil || len(v.checksum) < 4 || v.checksum[len(v.checksum)-1] != want {
		t.Fatalf("err %v, shown %q; want progress, then %q", tk.Err(), v.checksum, want)
	}
	if !strings.Contains(v.checksum[0], "% of") {
		t.Errorf("no progress shown first: %q", v.checksum[0])
	}

	v.checksum = nil
	tk = m.Checksum(path)
	for len(v.checksum) == 0 {
		mc.Iteration(true)
	}
	m.CancelChecksum()
	for !isDone(tk) {
		mc.Iteration(true)
	}
	if !errors.Is(tk.Err(), context.Canceled) || v.checksum[len(v.checksum)-1] != "sha256: cancelled" {
		t.Fatalf("cancelled checksum: err %v, shown %q", tk.Err(), v.checksum)
	}
	tk = m.Checksum(path) // Close with a checksum running: it is cancelled and returns
	for len(v.checksum) == 0 {
		mc.Iteration(true)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if !isDone(tk) {
		t.Fatal("Close left the checksum Task running")
	}
}

func isDone(tk *coroutine.Task) bool {
	select {
	case <-tk.Done():
		return true
	default:
		return false
	}
}

// Stop cancels a running checksum and calls its function once the Task has returned,
// on the loop.
func TestModelStop(t *testing.T) {
	leakcheck.Handles(t)
	mc, v, m := newModel(t)
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	tk := m.Checksum(path)
	for len(v.checksum) == 0 {
		mc.Iteration(true)
	}
	stopped := false
	m.Stop(func() {
		if !isDone(tk) {
			t.Error("Stop's function ran before the checksum Task returned")
		}
		stopped = true
	})
	for !stopped {
		mc.Iteration(true)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}
