package aiosource_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
)

// Scheduling N times before the BH runs runs it once.
func TestBHCoalesce(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		n := 0
		bh := m.ctx.NewBH("coalesce", func() { n++ })
		defer bh.Delete()
		for i := 0; i < 5; i++ {
			bh.Schedule()
		}
		m.flush()
		if n != 1 {
			t.Fatalf("ran %d times, want 1", n)
		}
	})
}

// A BH scheduled from a BH runs in the next pass, never in the current one, even when
// it is another BH.
func TestBHScheduledFromBHRunsNextPass(t *testing.T) {
	leakcheck.Handles(t)
	c := newCtx(t)
	var order []string
	var b *aiosource.BH
	a := c.NewBH("a", func() { order = append(order, "a"); b.Schedule() })
	b = c.NewBH("b", func() { order = append(order, "b") })
	defer a.Delete()
	defer b.Delete()
	a.Schedule()
	if !c.Poll(false) || len(order) != 1 {
		t.Fatalf("first pass ran %v, want [a]", order)
	}
	if !c.Poll(false) || len(order) != 2 || order[1] != "b" {
		t.Fatalf("second pass: %v", order)
	}
}

func TestScheduleOneshot(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		leakcheck.Handles(t)
		n := 0
		for i := 0; i < 3; i++ {
			m.ctx.ScheduleOneshot(func() { n++ })
		}
		m.flush()
		if n != 3 {
			t.Fatalf("oneshots ran %d times, want 3", n)
		}
		m.flush()
		if n != 3 {
			t.Fatal("a oneshot ran twice")
		}
		// A oneshot that schedules a oneshot: the second runs in the next pass.
		m.ctx.ScheduleOneshot(func() { n++; m.ctx.ScheduleOneshot(func() { n += 10 }) })
		m.iterate(false)
		if n != 4 {
			t.Fatalf("n=%d after one pass, want 4", n)
		}
		m.flush()
		if n != 14 {
			t.Fatalf("n=%d, want 14", n)
		}
	})
}

// An idle BH runs within 10 ms without counting as progress.
func TestBHIdle(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		n := 0
		bh := m.ctx.NewBH("idle", func() { n++ })
		defer bh.Delete()
		bh.ScheduleIdle()
		if !m.glib {
			m.iterate(false) // accept the notification
		}
		start := time.Now()
		for n == 0 {
			progress := m.iterate(true)
			if !m.glib && progress {
				t.Fatal("an idle BH counted as progress")
			}
			if time.Since(start) > 5*time.Second {
				t.Fatal("the idle BH never ran")
			}
		}
	})
}

// Schedule is lock-free from many goroutines and loses no wakeup: an IOThread that
// blocks in Poll(true) runs every BH, and Schedule from its own thread costs no write.
func TestBHScheduleManyGoroutines(t *testing.T) {
	leakcheck.Handles(t)
	th, err := aiosource.NewIOThread("bh-many")
	if err != nil {
		t.Fatal(err)
	}
	defer th.Stop()
	const goroutines, per = 8, 2000
	var ran atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				th.Context().ScheduleOneshot(func() {
					if ran.Add(1) == goroutines*per {
						close(done)
					}
				})
				if i%64 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%d of %d BHs ran: a wakeup was lost", ran.Load(), goroutines*per)
	}
}

// Scheduling from the loop thread, between or inside dispatches, writes no eventfd.
func TestBHScheduleOnLoopThreadNoKick(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		n := 0
		var bh *aiosource.BH
		bh = m.ctx.NewBH("self", func() {
			n++
			if n < 100 {
				bh.Schedule()
			}
		})
		defer bh.Delete()
		m.flush()
		before := m.ctx.Stats().Kicks
		bh.Schedule()
		for n < 100 {
			m.iterate(false)
		}
		if kicks := m.ctx.Stats().Kicks - before; kicks != 0 {
			t.Fatalf("%d eventfd writes for 100 BHs scheduled on the loop thread, want 0", kicks)
		}
	})
}
