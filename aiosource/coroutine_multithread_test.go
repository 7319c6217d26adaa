package aiosource_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

// Ports of the coroutine cases of QEMU's tests/unit/test-aio-multithread.c: coroutines
// spread over IOThreads, moved between them by aio_co_schedule, and a CoMutex contended
// from several threads, with the mcs and pthread baselines. Each runs for a fraction of
// QEMU's quick duration (GLIBAIO_STRESS=full: QEMU's slow one).

type ioThreads struct {
	t   *testing.T
	ths []*aiosource.IOThread
}

func newIOThreads(t *testing.T, n int) *ioThreads {
	t.Helper()
	leakcheck.Handles(t)
	it := &ioThreads{t: t}
	for i := 0; i < n; i++ {
		th, err := aiosource.NewIOThread(fmt.Sprintf("co-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		it.ths = append(it.ths, th)
	}
	t.Cleanup(func() {
		for _, th := range it.ths {
			if err := th.Stop(); err != nil {
				t.Errorf("Stop: %v", err)
			}
		}
	})
	return it
}

// run is ctx_run: fn runs on thread i's loop, and run returns once it has.
func (it *ioThreads) run(i int, fn func()) {
	done := make(chan struct{})
	it.ths[i].Context().ScheduleOneshot(func() { fn(); close(done) })
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		it.t.Fatalf("ctx_run on thread %d: the BH never ran", i)
	}
}

// coDuration scales QEMU's test durations.
func coDuration(quick time.Duration) time.Duration {
	if stressFull() {
		return 10 * quick
	}
	return quick / 4
}

// /aio/multi/schedule, as far as Go allows: coroutines on five IOThreads wake each
// other from thread to thread through aio_co_schedule. QEMU's test moves each coroutine
// to the context of the thread that picked it; Go's runtime coroutines cannot change
// threads, so here the waker schedules the coroutine on its own context, from another
// thread, and each step checks that it runs on the thread of its own context.
func TestCoroutineMultiSchedule(t *testing.T) {
	const n = 5
	it := newIOThreads(t, n)
	tids := make([]int, n)
	for i := range tids {
		it.run(i, func() { tids[i] = unix.Gettid() })
	}
	var toSchedule [n]atomic.Pointer[aiosource.Coroutine]
	var stop [n]atomic.Bool
	var here, other, retries, wrongThread atomic.Int64
	var running sync.WaitGroup
	schedule := func(me, k int) {
		co := toSchedule[k].Swap(nil)
		switch {
		case co == nil:
			retries.Add(1)
			return
		case k == me:
			here.Add(1)
		default:
			other.Add(1)
		}
		co.Context().CoSchedule(co)
	}
	for i := 0; i < n; i++ {
		running.Add(1)
		it.ths[i].Context().CoSchedule(aiosource.NewCoroutine(func(self *aiosource.Coroutine) {
			defer running.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for !stop[i].Load() {
				if unix.Gettid() != tids[i] || aiosource.CurrentContext() != it.ths[i].Context() {
					wrongThread.Add(1)
				}
				schedule(i, rng.IntN(n))
				toSchedule[i].Store(self) // published before the yield: another thread may schedule us
				aiosource.Yield()
				if toSchedule[i].Load() == self {
					t.Error("resumed while still published for scheduling")
				}
			}
		}))
	}
	// As in QEMU, a coroutine that finds no one to schedule still parks itself, so all
	// may end up parked: the test thread schedules one now and then, from outside.
	for end := time.Now().Add(coDuration(time.Second)); time.Now().Before(end); time.Sleep(time.Millisecond) {
		schedule(-1, rand.IntN(n))
	}
	// finish_cb: stop each thread's coroutine and schedule it if it is parked.
	for i := 0; i < n; i++ {
		it.run(i, func() {
			stop[i].Store(true)
			schedule(i, i)
		})
	}
	waitGroupTimeout(t, &running, 20*time.Second)
	for i := range toSchedule {
		if toSchedule[i].Load() != nil {
			t.Errorf("a coroutine is still published on thread %d", i)
		}
	}
	if wrongThread.Load() != 0 {
		t.Fatalf("%d coroutine steps ran off their context's thread", wrongThread.Load())
	}
	t.Logf("scheduled from the same thread %d, from another %d; %d retries", here.Load(), other.Load(), retries.Load())
	if other.Load() == 0 {
		t.Fatal("no coroutine was woken from another thread")
	}
}

func waitGroupTimeout(t *testing.T, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatal("the coroutines never finished (a lost wakeup)")
	}
}

// lockLoop is the body of the mutex tests: lock, count, unlock, until stopped; counter
// is protected by the lock, atomicCounter counts the same critical sections on its own.
type lockLoop struct {
	stop               atomic.Bool
	counter            int64
	atomicCounter      atomic.Int64
	running            sync.WaitGroup
	lock, unlock       func()
	inside, overlapped atomic.Int32
}

func (l *lockLoop) body() { l.lockedBody(l.lock, l.unlock) }

func (l *lockLoop) check(t *testing.T, what string, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	l.stop.Store(true)
	waitGroupTimeout(t, &l.running, 20*time.Second)
	if l.overlapped.Load() != 0 || l.counter != l.atomicCounter.Load() {
		t.Fatalf("%s: %d overlapping critical sections, counter %d, atomic counter %d",
			what, l.overlapped.Load(), l.counter, l.atomicCounter.Load())
	}
	t.Logf("%s: %d critical sections in %v", what, l.counter, d)
	if l.counter == 0 {
		t.Fatalf("%s: no critical section ran", what)
	}
}

// testCoMutexThreads runs n coroutines, one per IOThread, around one CoMutex.
func testCoMutexThreads(t *testing.T, n int, d time.Duration) {
	it := newIOThreads(t, n)
	var m aiosource.CoMutex
	l := &lockLoop{lock: m.Lock, unlock: m.Unlock}
	for i := 0; i < n; i++ {
		l.running.Add(1)
		it.ths[i].Context().CoSchedule(aiosource.NewCoroutine(func(*aiosource.Coroutine) { l.body() }))
	}
	l.check(t, fmt.Sprintf("CoMutex, %d threads", n), d)
}

// /aio/multi/mutex/contended: five coroutines on five threads.
func TestCoMutexContended(t *testing.T) { testCoMutexThreads(t, 5, coDuration(time.Second)) }

// /aio/multi/mutex/handoff: two, so that the lock mostly passes by hand-off.
func TestCoMutexHandoff(t *testing.T) { testCoMutexThreads(t, 2, coDuration(3*time.Second)) }

// /aio/multi/mutex/pthread: the baseline, a sync.Mutex taken by one BH loop per thread.
func TestCoMutexBaselinePthread(t *testing.T) {
	var m sync.Mutex
	testLockBaseline(t, "sync.Mutex", m.Lock, m.Unlock)
}

// /aio/multi/mutex/mcs: the baseline of a queue lock (MCS) that spins on the waiter's
// own flag, as QEMU's futex-based one hands off.
func TestCoMutexBaselineMCS(t *testing.T) {
	var m mcsLock
	var nodes [5]mcsNode
	var id atomic.Int32
	// Each thread's loop owns one node: the BH body locks it with its own.
	lock := func() *mcsNode { return &nodes[id.Add(1)-1] }
	testLockBaselineNodes(t, "MCS", &m, lock)
}

func testLockBaseline(t *testing.T, what string, lock, unlock func()) {
	it := newIOThreads(t, 5)
	l := &lockLoop{lock: lock, unlock: unlock}
	for i := 0; i < 5; i++ {
		l.running.Add(1)
		it.ths[i].Context().ScheduleOneshot(l.body)
	}
	l.check(t, what, coDuration(time.Second))
}

func testLockBaselineNodes(t *testing.T, what string, m *mcsLock, node func() *mcsNode) {
	it := newIOThreads(t, 5)
	l := &lockLoop{}
	for i := 0; i < 5; i++ {
		l.running.Add(1)
		it.ths[i].Context().ScheduleOneshot(func() {
			n := node() // this thread's own node
			l.lockedBody(func() { m.lock(n) }, func() { m.unlock(n) })
		})
	}
	l.check(t, what, coDuration(time.Second))
}

func (l *lockLoop) lockedBody(lock, unlock func()) {
	defer l.running.Done()
	for !l.stop.Load() {
		lock()
		if l.inside.Add(1) != 1 {
			l.overlapped.Add(1)
		}
		l.counter++
		l.inside.Add(-1)
		unlock()
		l.atomicCounter.Add(1)
	}
}

// mcsLock is an MCS queue lock: each waiter spins on its own node.
type mcsLock struct{ tail atomic.Pointer[mcsNode] }

type mcsNode struct {
	next   atomic.Pointer[mcsNode]
	locked atomic.Bool
}

func (m *mcsLock) lock(n *mcsNode) {
	n.next.Store(nil)
	n.locked.Store(true)
	prev := m.tail.Swap(n)
	if prev == nil {
		return
	}
	prev.next.Store(n)
	for n.locked.Load() {
		runtime.Gosched()
	}
}

func (m *mcsLock) unlock(n *mcsNode) {
	next := n.next.Load()
	if next == nil {
		if m.tail.CompareAndSwap(n, nil) {
			return
		}
		for next = n.next.Load(); next == nil; next = n.next.Load() {
			runtime.Gosched()
		}
	}
	next.locked.Store(false)
}

// aio_co_schedule of a coroutine onto a context that another thread drives: the
// coroutine cannot change threads, so it goes back to its own context and resumes
// there, on its own thread, instead of being lost or run on the wrong thread.
func TestCoScheduleOntoAnotherThread(t *testing.T) {
	it := newIOThreads(t, 2)
	var tid0 int
	it.run(0, func() { tid0 = unix.Gettid() })
	var co *aiosource.Coroutine
	type step struct {
		tid int
		ctx *aiosource.Context
	}
	got := make(chan step, 1)
	it.run(0, func() {
		co = aiosource.NewCoroutine(func(*aiosource.Coroutine) {
			aiosource.Yield()
			got <- step{unix.Gettid(), aiosource.CurrentContext()}
		})
		co.Enter()
	})
	it.ths[1].Context().CoSchedule(co)
	select {
	case s := <-got:
		if s.tid != tid0 || s.ctx != it.ths[0].Context() {
			t.Fatalf("resumed on thread %d in %p; want its own thread %d and context %p", s.tid, s.ctx, tid0, it.ths[0].Context())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the coroutine was lost")
	}
}

// No goroutine of a finished or pooled coroutine outlives its loop: an IOThread that
// ran coroutines (its pool full of idle workers) leaves none once stopped, nor does a
// Poll driver once its Polls have returned.
func TestCoroutineNoLeak(t *testing.T) {
	before := goleak.IgnoreCurrent()
	th, err := aiosource.NewIOThread("co-leak")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	th.Context().ScheduleOneshot(func() {
		var cos []*aiosource.Coroutine
		for i := 0; i < 100; i++ { // 100 workers at once, then all back in the pool
			co := aiosource.NewCoroutine(func(*aiosource.Coroutine) { aiosource.Yield() })
			co.Enter()
			cos = append(cos, co)
		}
		for _, co := range cos {
			co.Enter()
		}
		close(done)
	})
	<-done
	if err := th.Stop(); err != nil {
		t.Fatal(err)
	}
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	c.ScheduleOneshot(func() {
		for i := 0; i < 10; i++ {
			aiosource.NewCoroutine(func(*aiosource.Coroutine) {}).Enter()
		}
	})
	c.Poll(false)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, before)
}
