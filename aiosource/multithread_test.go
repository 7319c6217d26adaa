package aiosource_test

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

// Ports of QEMU's tests/unit/test-aio-multithread.c that need no coroutines: ctx_run, a
// synchronous call on another IOThread's context (a oneshot BH, then a wait for it),
// and the lifecycle check that every IOThread wakes from its last blocking Poll when it
// is stopped.
func TestMultithreadCtxRun(t *testing.T) {
	leakcheck.Handles(t)
	const threads = 4
	var ths []*aiosource.IOThread
	for i := 0; i < threads; i++ {
		th, err := aiosource.NewIOThread(fmt.Sprintf("ctx-run-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ths = append(ths, th)
	}
	// ctxRun is test-aio-multithread.c's ctx_run: fn runs on thread i's loop, and
	// ctxRun returns only once it has.
	ctxRun := func(i int, fn func()) {
		done := make(chan struct{})
		ths[i].Context().ScheduleOneshot(func() { fn(); close(done) })
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("ctx_run on thread %d: the BH never ran (a lost wakeup)", i)
		}
	}
	tids := make([]int, threads)
	for i := range ths {
		ctxRun(i, func() { tids[i] = unix.Gettid() })
	}
	seen := map[int]bool{unix.Gettid(): true}
	for i, tid := range tids {
		if seen[tid] {
			t.Fatalf("thread %d ran its BH on OS thread %d, which another context or the test uses", i, tid)
		}
		seen[tid] = true
	}
	// Many synchronous calls in a row, each to a sleeping loop: every one must wake it,
	// and run on that loop's own thread.
	for n := 0; n < 400; n++ {
		i := (n * 7) % threads
		var got int
		ran := false
		ctxRun(i, func() { got, ran = unix.Gettid(), true })
		if !ran || got != tids[i] {
			t.Fatalf("call %d: ran=%v on OS thread %d, want thread %d's %d", n, ran, got, i, tids[i])
		}
	}
	// join_aio_contexts: each loop wakes from its last wait and ends.
	for i, th := range ths {
		stopped := make(chan error, 1)
		go func() { stopped <- th.Stop() }()
		select {
		case err := <-stopped:
			if err != nil {
				t.Fatalf("thread %d: Stop: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("thread %d never woke from its last blocking Poll", i)
		}
	}
}
