package aiosource_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
)

// waitWorkers waits until c's pool has want workers, all idle, or fails after 10 s.
func waitWorkers(t *testing.T, c *aiosource.Context, want int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		n, idle := aiosource.ThreadPoolWorkers(c)
		if n == want && idle == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers (%d idle) after 10 s, want %d idle", n, idle, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// runJobs submits n jobs that all run at once (so the pool grows to n workers) and
// drives the loop until every one completed.
func runJobs(t *testing.T, m *mode, n int) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(n)
	completed := 0
	for range n {
		m.ctx.Submit(func() error { wg.Done(); wg.Wait(); return nil }, func(error) { completed++ })
	}
	m.drive(t, "the jobs' completions", func() bool { return completed == n })
}

// SetThreadPoolParams rejects what aio_context_set_thread_pool_params rejects, and
// SetThreadPoolSize may not go below the minimum.
func TestThreadPoolParamsInvalid(t *testing.T) {
	c := newCtx(t)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{c.SetThreadPoolParams(-1, 4), "aiosource: SetThreadPoolParams: bad thread-pool-min/thread-pool-max values -1/4: invalid argument"},
		{c.SetThreadPoolParams(0, 0), "aiosource: SetThreadPoolParams: bad thread-pool-min/thread-pool-max values 0/0: invalid argument"},
		{c.SetThreadPoolParams(3, 2), "aiosource: SetThreadPoolParams: bad thread-pool-min/thread-pool-max values 3/2: invalid argument"},
	} {
		if !errors.Is(tc.err, os.ErrInvalid) || tc.err.Error() != tc.want {
			t.Errorf("err = %v, want %q", tc.err, tc.want)
		}
	}
	if err := c.SetThreadPoolParams(2, 4); err != nil {
		t.Fatal(err)
	}
	err := c.SetThreadPoolSize(1)
	if !errors.Is(err, os.ErrInvalid) || err.Error() != "aiosource: SetThreadPoolSize: size 1 is less than thread-pool-min 2: invalid argument" {
		t.Fatalf("SetThreadPoolSize below the minimum: %v", err)
	}
	if err := c.SetThreadPoolSize(2); err != nil {
		t.Fatal(err)
	}
	if err := c.SetThreadPoolParams(2, 2); err != nil { // the minimum was kept
		t.Fatal(err)
	}
	if d := aiosource.ThreadPoolIdleTimeout(c); d != 10*time.Second {
		t.Fatalf("idle timeout %v, want QEMU's 10 s", d)
	}
	c.Close()
	if err := c.SetThreadPoolParams(0, 1); !errors.Is(err, aiosource.ErrClosed) {
		t.Fatalf("SetThreadPoolParams after Close: %v", err)
	}
	if err := c.SetThreadPoolSize(1); !errors.Is(err, aiosource.ErrClosed) {
		t.Fatalf("SetThreadPoolSize after Close: %v", err)
	}
}

// Workers above thread-pool-min exit after the idle timeout; the minimum stays, is
// started with the pool (the first Submit) and at once when raised later.
func TestThreadPoolMinIdle(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		const idle = 20 * time.Millisecond
		aiosource.SetThreadPoolIdleTimeout(m.ctx, idle)
		if err := m.ctx.SetThreadPoolParams(2, 8); err != nil {
			t.Fatal(err)
		}
		if n, _ := aiosource.ThreadPoolWorkers(m.ctx); n != 0 {
			t.Fatalf("%d workers before the first Submit, want 0 (the pool is made by it)", n)
		}
		runJobs(t, m, 6)
		if n, _ := aiosource.ThreadPoolWorkers(m.ctx); n < 6 {
			t.Fatalf("%d workers ran 6 jobs at once", n)
		}
		waitWorkers(t, m.ctx, 2) // the surplus timed out
		time.Sleep(10 * idle)
		if n, idleN := aiosource.ThreadPoolWorkers(m.ctx); n != 2 || idleN != 2 {
			t.Fatalf("%d workers (%d idle) long after the idle timeout, want the minimum 2", n, idleN)
		}
		if err := m.ctx.SetThreadPoolParams(4, 8); err != nil {
			t.Fatal(err)
		}
		waitWorkers(t, m.ctx, 4)
		if err := m.ctx.SetThreadPoolParams(0, 8); err != nil {
			t.Fatal(err)
		}
		waitWorkers(t, m.ctx, 0)
	})
}

// Each worker gets the whole idle timeout from when it last went idle: one that ran a
// request lately outlives one idle since earlier.
func TestThreadPoolIdleTimeoutPerWorker(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		const idle = 100 * time.Millisecond
		aiosource.SetThreadPoolIdleTimeout(m.ctx, idle)
		runJobs(t, m, 2)
		time.Sleep(idle / 2)
		var end time.Time
		completed := false
		m.ctx.Submit(func() error { end = time.Now(); return nil }, func(error) { completed = true })
		m.drive(t, "the late request", func() bool { return completed })
		waitWorkers(t, m.ctx, 0)
		if since := time.Since(end); since < idle {
			t.Fatalf("the last worker exited %v after its request, before the idle timeout %v", since, idle)
		}
	})
}

// Lowering thread-pool-max makes idle workers above it exit at once and busy ones when
// their work returns, long before the idle timeout.
func TestThreadPoolMaxShrinks(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		aiosource.SetThreadPoolIdleTimeout(m.ctx, time.Hour)
		runJobs(t, m, 4)
		waitWorkers(t, m.ctx, 4)
		if err := m.ctx.SetThreadPoolParams(0, 2); err != nil {
			t.Fatal(err)
		}
		waitWorkers(t, m.ctx, 2)

		// Two busy workers, then max 1: one leaves when its work returns.
		release := make(chan struct{})
		var started sync.WaitGroup
		started.Add(2)
		completed := 0
		for range 2 {
			m.ctx.Submit(func() error { started.Done(); <-release; return nil }, func(error) { completed++ })
		}
		started.Wait()
		if err := m.ctx.SetThreadPoolSize(1); err != nil {
			t.Fatal(err)
		}
		if n, _ := aiosource.ThreadPoolWorkers(m.ctx); n != 2 {
			t.Fatalf("%d workers while both run, want 2", n)
		}
		close(release)
		m.drive(t, "the completions", func() bool { return completed == 2 })
		waitWorkers(t, m.ctx, 1)
	})
}

// Submissions racing with parameter changes and idle timeouts all complete: no wakeup
// is lost when a worker leaves.
func TestThreadPoolParamsStress(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		for _, idle := range []time.Duration{100 * time.Microsecond, time.Hour} {
			aiosource.SetThreadPoolIdleTimeout(m.ctx, idle)
			threadPoolStress(t, m)
		}
	})
}

// threadPoolStress submits jobs while another goroutine changes the pool's
// parameters. With an idle timeout of an hour, a lost wakeup shows as a completion that
// never comes.
func threadPoolStress(t *testing.T, m *mode) {
	const jobs = 2000
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			hi := 1 + rand.IntN(4)
			m.ctx.SetThreadPoolParams(rand.IntN(hi+1), hi)
			time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		}
	}()
	completed := 0
	for i := range jobs {
		m.ctx.Submit(func() error {
			if i%7 == 0 {
				time.Sleep(50 * time.Microsecond)
			}
			return nil
		}, func(error) { completed++ })
		if i%50 == 0 {
			m.iterate(false)
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		}
	}
	m.drive(t, "every completion", func() bool { return completed == jobs })
	stop.Store(true)
	wg.Wait()
}
