package aiosource_test

import (
	"testing"
	"time"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

func TestSmoke(t *testing.T) {
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	bh := c.NewBH("x", func() { n++ })
	bh.Schedule()
	if !c.Poll(true) || n != 1 {
		t.Fatalf("poll: n=%d", n)
	}
	if c.Poll(false) {
		t.Fatal("second poll progress")
	}
	tm := c.NewTimer(aiosource.ClockRealtime, aiosource.ScaleMS, func() { n++ })
	tm.Mod(aiosource.ClockNS(aiosource.ClockRealtime)/1e6 + 20)
	start := time.Now()
	c.Poll(false) // accept the notification of the new head
	if !c.Poll(true) || n != 2 {
		t.Fatalf("timer poll n=%d", n)
	}
	t.Logf("timer after %v", time.Since(start))
	e, _ := aiosource.NewEventNotifier(false)
	c.SetEventNotifier(e, func(e *aiosource.EventNotifier) { e.TestAndClear(); n++ })
	e.Set()
	if !c.Poll(true) || n != 3 {
		t.Fatalf("event n=%d", n)
	}
	// GLib mode
	m := glibloop.NewMainContext()
	defer m.Unref()
	c.Attach(m)
	bh.Schedule()
	m.Iteration(false)
	if n != 4 {
		t.Fatalf("glib bh n=%d", n)
	}
	e.Set()
	m.Iteration(true)
	if n != 5 {
		t.Fatalf("glib event n=%d", n)
	}
	tm.Mod(aiosource.ClockNS(aiosource.ClockRealtime)/1e6 + 20)
	start = time.Now()
	for n != 6 {
		m.Iteration(true)
	}
	t.Logf("glib timer after %v", time.Since(start))
	c.SetEventNotifier(e, nil)
	bh.Delete()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	e.Close()
}
