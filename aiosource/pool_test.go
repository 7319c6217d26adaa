package aiosource_test

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

// Work runs off the loop, completions on it, in both modes; concurrency is bounded.
func TestSubmit(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		const jobs, size = 50, 4
		if err := m.ctx.SetThreadPoolSize(size); err != nil {
			t.Fatal(err)
		}
		runtime.LockOSThread() // the "loop thread" of this test is this goroutine's thread
		defer runtime.UnlockOSThread()
		var running, peak atomic.Int32
		loopTID := unix.Gettid()
		var mu sync.Mutex
		var results []int
		doneCount := 0
		offLoop := atomic.Bool{}
		offLoop.Store(true)
		for i := 0; i < jobs; i++ {
			i := i
			m.ctx.Submit(func() error {
				if unix.Gettid() == loopTID {
					offLoop.Store(false)
				}
				r := running.Add(1)
				for {
					p := peak.Load()
					if r <= p || peak.CompareAndSwap(p, r) {
						break
					}
				}
				time.Sleep(time.Millisecond)
				running.Add(-1)
				if i%10 == 0 {
					return errors.New("job failed")
				}
				return nil
			}, func(err error) {
				if unix.Gettid() != loopTID {
					t.Error("a completion ran off the loop thread")
				}
				mu.Lock()
				results = append(results, i)
				mu.Unlock()
				if (err != nil) != (i%10 == 0) {
					t.Errorf("job %d: err %v", i, err)
				}
				doneCount++
			})
		}
		deadline := time.Now().Add(20 * time.Second)
		for doneCount < jobs && time.Now().Before(deadline) {
			m.iterate(true)
		}
		if doneCount != jobs {
			t.Fatalf("%d of %d completions ran", doneCount, jobs)
		}
		if !offLoop.Load() {
			t.Fatal("work ran on the loop thread")
		}
		if p := peak.Load(); p > size {
			t.Fatalf("%d jobs ran at once, the pool size is %d", p, size)
		}
	})
}

// A panic in work is raised again from the driving call when its completion runs.
func TestSubmitWorkPanic(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		doneRan := false
		m.ctx.Submit(func() error { panic("work-boom") }, func(error) { doneRan = true })
		var pe *glibloop.PanicError
		func() {
			defer func() {
				if r := recover(); r != nil {
					pe, _ = r.(*glibloop.PanicError)
				}
			}()
			for i := 0; i < 10000; i++ {
				m.iterate(true)
			}
		}()
		if pe == nil || pe.Value != "work-boom" || !strings.Contains(string(pe.Stack), "TestSubmitWorkPanic") {
			t.Fatalf("want the work's panic with its stack, got %v", pe)
		}
		if doneRan {
			t.Fatal("done ran for a job whose work panicked")
		}
		// The pool keeps working.
		ok := false
		m.ctx.Submit(func() error { return nil }, func(error) { ok = true })
		for i := 0; !ok && i < 10000; i++ {
			m.iterate(true)
		}
		if !ok {
			t.Fatal("the pool stopped after a panic")
		}
	})
}

// Close waits for work in flight and runs its completion; queued work gets ErrClosed,
// later Submits too; work that outlives the grace period is reported.
func TestSubmitClose(t *testing.T) {
	leakcheck.Handles(t)
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	c.SetThreadPoolSize(1)
	started := make(chan struct{})
	var results []error
	c.Submit(func() error { close(started); time.Sleep(50 * time.Millisecond); return nil }, func(err error) { results = append(results, err) })
	c.Submit(func() error { t.Error("queued work ran after Close"); return nil }, func(err error) { results = append(results, err) })
	<-started
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(results) != 2 || results[0] != nil && results[1] != nil {
		t.Fatalf("completions after Close: %v", results)
	}
	var sawClosed bool
	for _, r := range results {
		sawClosed = sawClosed || errors.Is(r, aiosource.ErrClosed)
	}
	if !sawClosed {
		t.Fatalf("the queued job did not get ErrClosed: %v", results)
	}
	var after error
	c.Submit(func() error { return nil }, func(err error) { after = err })
	if !errors.Is(after, aiosource.ErrClosed) {
		t.Fatalf("Submit after Close: done(%v), want ErrClosed", after)
	}

	c2, _ := aiosource.New()
	c2.SetThreadPoolGrace(20 * time.Millisecond)
	release := make(chan struct{})
	started2 := make(chan struct{})
	c2.Submit(func() error { close(started2); <-release; return nil }, nil)
	<-started2 // running, not queued: queued work would just get ErrClosed
	err = c2.Close()
	close(release)
	if err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("Close with stuck work: %v", err)
	}
	time.Sleep(20 * time.Millisecond) // let the worker see the pool stopped and exit
}

// A panic in a done callback is raised again from the driving call; the other
// completions of its batch are not lost and run when the loop is driven again.
func TestSubmitCompletionPanic(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		var ran []int
		var wg sync.WaitGroup
		for i := 0; i < 5; i++ {
			i := i
			wg.Add(1)
			m.ctx.Submit(func() error { wg.Done(); return nil }, func(error) {
				ran = append(ran, i)
				if i == 1 {
					panic("done-boom")
				}
			})
		}
		wg.Wait()
		// All five results queued, so that they make one batch.
		for deadline := time.Now().Add(10 * time.Second); aiosource.QueuedCompletions(m.ctx) < 5; {
			if time.Now().After(deadline) {
				t.Fatalf("%d of 5 results queued after 10 s", aiosource.QueuedCompletions(m.ctx))
			}
			time.Sleep(time.Millisecond)
		}
		var pe *glibloop.PanicError
		func() {
			defer func() { pe, _ = recover().(*glibloop.PanicError) }()
			for i := 0; i < 100; i++ {
				m.iterate(false)
			}
		}()
		if pe == nil || pe.Value != "done-boom" {
			t.Fatalf("want the done callback's panic, got %v", pe)
		}
		for i := 0; i < 100 && len(ran) < 5; i++ {
			m.iterate(false)
		}
		if len(ran) != 5 {
			t.Fatalf("completions that ran: %v, want all five", ran)
		}
	})
}

// A panic in thread-pool work raised at Close: Close still releases everything (the
// source is destroyed) and then raises it; a second Close is ErrClosed.
func TestClosePanicsOnlyAfterReleasing(t *testing.T) {
	leakcheck.Handles(t)
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	src := c.Source().Ref()
	defer src.Unref()
	done := make(chan struct{})
	c.Submit(func() error { defer close(done); panic("work-at-close") }, func(error) {})
	<-done
	time.Sleep(10 * time.Millisecond)
	var pe *glibloop.PanicError
	func() {
		defer func() { pe, _ = recover().(*glibloop.PanicError) }()
		c.Close()
	}()
	if pe == nil || pe.Value != "work-at-close" {
		t.Fatalf("Close raised %v, want the work's panic", pe)
	}
	if !src.IsDestroyed() {
		t.Fatal("Close panicked before destroying the GSource")
	}
	if !errors.Is(c.Close(), aiosource.ErrClosed) {
		t.Fatal("second Close")
	}
}

// Close delivers every completion exactly once: ErrClosed for queued jobs, the result
// for jobs that ran.
func TestCloseDeliversEveryCompletion(t *testing.T) {
	leakcheck.Handles(t)
	for round := 0; round < 20; round++ {
		c, _ := aiosource.New()
		const jobs = 200
		var calls atomic.Int32
		for i := 0; i < jobs; i++ {
			c.Submit(func() error { return nil }, func(error) { calls.Add(1) })
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if n := calls.Load(); n != jobs {
			t.Fatalf("round %d: %d of %d completions delivered by Close", round, n, jobs)
		}
	}
}

// Ports, in our own code, of QEMU's tests/unit/test-thread-pool.c, each through Poll
// and through GLib iterations. /thread-pool/submit-co waits for coroutines.

// workerTestData is QEMU's WorkerTestData: ret is unix.EINPROGRESS until done runs.
type workerTestData struct {
	req *aiosource.Request
	n   atomic.Int32
	ret error
}

// workerCB is QEMU's worker_cb: n++.
func (d *workerTestData) workerCB() error { d.n.Add(1); return nil }

// doneCB is QEMU's done_cb: it runs once per request, stores the result, forgets the
// request and counts it off active.
func (d *workerTestData) doneCB(t *testing.T, active *int) func(error) {
	return func(err error) {
		if d.ret != unix.EINPROGRESS && d.ret != unix.ECANCELED {
			t.Errorf("done ran with ret already %v", d.ret)
		}
		d.ret, d.req = err, nil
		*active--
	}
}

// /thread-pool/submit-no-complete: work submitted without a completion runs.
func TestThreadPoolSubmitNoComplete(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		var d workerTestData
		m.ctx.Submit(d.workerCB, nil)
		for d.n.Load() == 0 {
			m.iterate(true)
		}
		if n := d.n.Load(); n != 1 {
			t.Fatalf("n = %d, want 1", n)
		}
	})
}

// /thread-pool/submit-aio: done does not run before the loop is driven, then once.
func TestThreadPoolSubmitAIO(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) {
		d := workerTestData{ret: unix.EINPROGRESS}
		active := 1
		d.req = m.ctx.SubmitAIO(d.workerCB, d.doneCB(t, &active))
		if d.ret != unix.EINPROGRESS {
			t.Fatal("done ran before the loop was driven")
		}
		for d.ret == unix.EINPROGRESS {
			m.iterate(true)
		}
		if active != 0 || d.n.Load() != 1 || d.ret != nil {
			t.Fatalf("active %d, n %d, ret %v; want 0, 1, nil", active, d.n.Load(), d.ret)
		}
	})
}

// submitMany is /thread-pool/submit-many: more requests than workers all complete.
func submitMany(t *testing.T, m *mode) {
	t.Helper()
	var data [100]workerTestData
	active := len(data)
	for i := range data {
		data[i].ret = unix.EINPROGRESS
		data[i].req = m.ctx.SubmitAIO(data[i].workerCB, data[i].doneCB(t, &active))
	}
	for active > 0 {
		m.iterate(true)
	}
	for i := range data {
		if n := data[i].n.Load(); n != 1 || data[i].ret != nil {
			t.Fatalf("request %d: n %d, ret %v; want 1, nil", i, n, data[i].ret)
		}
	}
}

func TestThreadPoolSubmitMany(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) { submitMany(t, m) })
}

// /thread-pool/cancel and /thread-pool/cancel-async: of 100 long requests on 64
// workers, those not started are cancelled (their n goes 0 to 4 first) and complete
// with ECANCELED; the running ones cannot be cancelled and complete with 0 once their
// work returned (n 3). QEMU's long_cb sleeps 2 s after a 1 s wait for the workers to
// start; here the test waits for the 64 to start and releases them itself.
func TestThreadPoolCancel(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) { testThreadPoolCancel(t, m, true) })
}

func TestThreadPoolCancelAsync(t *testing.T) {
	leakcheck.Handles(t)
	eachMode(t, func(t *testing.T, m *mode) { testThreadPoolCancel(t, m, false) })
}

func testThreadPoolCancel(t *testing.T, m *mode, wait bool) {
	submitMany(t, m) // more requests than workers: the pool is full

	var data [100]workerTestData
	var started atomic.Int32
	release := make(chan struct{})
	longCB := func(d *workerTestData) func() error {
		return func() error {
			if d.n.CompareAndSwap(0, 1) {
				started.Add(1)
				<-release
				d.n.Or(2)
			}
			return nil
		}
	}
	active := len(data)
	for i := range data {
		data[i].ret = unix.EINPROGRESS
		data[i].req = m.ctx.SubmitAIO(longCB(&data[i]), data[i].doneCB(t, &active))
	}
	m.ctx.Notify()
	m.iterate(false)
	if active != 100 {
		t.Fatalf("active %d before any work returned, want 100", active)
	}
	for deadline := time.Now().Add(10 * time.Second); started.Load() < aiosource.DefaultThreadPoolSize; {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests started after 10 s, want %d", started.Load(), aiosource.DefaultThreadPoolSize)
		}
		time.Sleep(time.Millisecond)
	}

	cancel := func(r *aiosource.Request) {
		if wait {
			r.CancelSync()
		} else {
			r.Cancel()
		}
	}
	// Cancel the requests that have not started.
	canceled := 0
	for i := range data {
		if data[i].n.CompareAndSwap(0, 4) {
			data[i].ret = unix.ECANCELED
			cancel(data[i].req)
			canceled++
		}
	}
	if active <= 0 || canceled != 100-aiosource.DefaultThreadPoolSize {
		t.Fatalf("active %d, %d cancelled; want > 0 and %d", active, canceled, 100-aiosource.DefaultThreadPoolSize)
	}
	// Cancelling the others waits for their work (sync) or does nothing (async).
	time.AfterFunc(20*time.Millisecond, func() { close(release) })
	for i := range data {
		if data[i].req != nil && data[i].n.Load() < 4 {
			cancel(data[i].req)
		}
	}
	for active > 0 {
		m.iterate(true)
	}
	for i := range data {
		d := &data[i]
		if d.req != nil {
			t.Fatalf("request %d: done never ran", i)
		}
		switch n := d.n.Load(); n {
		case 3: // could not be cancelled: completed
			if d.ret != nil {
				t.Fatalf("request %d ran: ret %v, want nil", i, d.ret)
			}
		case 4: // cancelled before it started
			if !errors.Is(d.ret, unix.ECANCELED) {
				t.Fatalf("request %d cancelled: ret %v, want ECANCELED", i, d.ret)
			}
		default:
			t.Fatalf("request %d: n = %d: never started or aborted while running", i, n)
		}
	}
}
