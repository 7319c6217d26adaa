package aiosource

import (
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/watch"
)

// DefaultThreadPoolSize is the default bound on thread-pool goroutines, as QEMU's
// thread_pool_max (THREAD_POOL_MAX_THREADS_DEFAULT). The default minimum is 0.
const DefaultThreadPoolSize = 64

// threadPoolIdleTimeout is how long a worker waits for work before it exits if the
// pool has more workers than its minimum: the 10 000 ms of QEMU's worker_thread.
const threadPoolIdleTimeout = 10 * time.Second

// ErrCanceled is the error a request cancelled while still queued completes with (QEMU's
// -ECANCELED). errors.Is(err, unix.ECANCELED) recognises it too.
var ErrCanceled = fmt.Errorf("aiosource: thread-pool request canceled: %w", unix.ECANCELED)

// pool is a context's thread pool (QEMU's ThreadPool, ThreadPoolAio since 10.0):
// blocking work runs on a bounded set of goroutines, and completions run on the
// context's thread from one BH.
type pool struct {
	ctx *Context

	mu          sync.Mutex
	head, tail  *Request  // request_list: queued requests, oldest first
	idle        []*worker // idle workers, the most recently idle last
	min, max    int       // thread-pool-min and thread-pool-max
	cur         int       // cur_threads: workers started and not exited
	running     int       // workers running work
	seq         uint64    // numbers requests in submission order
	created     bool      // a Submit made the pool (aio_get_thread_pool)
	stopped     bool
	grace       time.Duration
	idleTimeout time.Duration
	reaper      *time.Timer // ends the wait of workers idle for idleTimeout
	reaperArmed bool

	done  atomic.Pointer[Request] // finished, not yet seen by the loop; LIFO, any goroutine pushes
	bh    *BH                     // the completion BH (thread_pool_completion_bh)
	ready []*Request              // finished requests seen by the loop: a max-heap on seq (loop thread)
}

// worker is one pool goroutine (QEMU's worker_thread). Whoever takes it off the idle
// list sends it one token on wake, under the pool's lock.
type worker struct {
	wake  chan struct{}
	since int64 // when it went idle (watch.Nanotime)
	reap  bool  // the reaper took it off the idle list: exit
}

// Request states, under the pool's lock (QEMU's ThreadState).
const (
	requestQueued = iota // THREAD_QUEUED: on the request list
	requestActive        // THREAD_ACTIVE, then THREAD_DONE: a worker took it
	requestDone          // THREAD_DONE without running: cancelled, or the pool closed
)

// Request is one thread-pool request, the BlockAIOCB that QEMU's thread_pool_submit_aio
// returns. SubmitAIO returns it; Cancel and CancelSync act on it. QEMU frees the AIOCB
// once its callback ran; a Request stays valid, and its methods do nothing once it has
// completed (the zero Request counts as completed).
type Request struct {
	pool       *pool
	work       func() error
	done       func(error)
	err        error
	seq        uint64
	state      uint8       // under pool.mu
	pooled     bool        // made by Submit: recycled once its completion ran
	completed  atomic.Bool // its completion ran (or was dropped)
	prev, link *Request    // request_list
	next       *Request    // the done stack
}

var requestPool = sync.Pool{New: func() any { return new(Request) }}

func (p *pool) init(c *Context) {
	p.ctx = c
	p.max = DefaultThreadPoolSize
	p.grace = 5 * time.Second
	p.idleTimeout = threadPoolIdleTimeout
}

// SetThreadPoolParams sets the least and the most goroutines of the context's thread
// pool, QEMU's thread-pool-min and thread-pool-max (aio_context_set_thread_pool_params,
// thread_pool_update_params). Defaults: 0 and DefaultThreadPoolSize. Once the pool
// exists (from the first Submit on), it starts workers until there are min, and idle
// workers above max exit at once; busy ones exit when their work returns. A worker idle
// for 10 s exits if there are more than min. Values with min < 0, max < 1 or min > max
// return an error that is os.ErrInvalid and change nothing; after Close it returns
// ErrClosed.
func (c *Context) SetThreadPoolParams(minThreads, maxThreads int) error {
	if minThreads < 0 || maxThreads < 1 || minThreads > maxThreads {
		return fmt.Errorf("aiosource: SetThreadPoolParams: bad thread-pool-min/thread-pool-max values %d/%d: %w", minThreads, maxThreads, os.ErrInvalid)
	}
	return c.pool.setParams(minThreads, maxThreads, "SetThreadPoolParams")
}

// SetThreadPoolSize bounds the goroutines that run Submit's work (default 64): it sets
// thread-pool-max alone, as SetThreadPoolParams(min, n) with the current minimum. For
// n < 1, or n below the minimum, it returns an error that is os.ErrInvalid and changes
// nothing; after Close it returns ErrClosed.
func (c *Context) SetThreadPoolSize(n int) error {
	if n < 1 {
		return fmt.Errorf("aiosource: SetThreadPoolSize: size %d is less than 1: %w", n, os.ErrInvalid)
	}
	return c.pool.setParams(-1, n, "SetThreadPoolSize")
}

// setParams is thread_pool_update_params; minThreads < 0 keeps the minimum.
func (p *pool) setParams(minThreads, maxThreads int, fn string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.ctx.closed.Load() {
		return ErrClosed
	}
	if minThreads < 0 {
		minThreads = p.min
		if maxThreads < minThreads {
			return fmt.Errorf("aiosource: %s: size %d is less than thread-pool-min %d: %w", fn, maxThreads, minThreads, os.ErrInvalid)
		}
	}
	p.min, p.max = minThreads, maxThreads
	if p.created {
		p.update()
	}
	return nil
}

// update starts workers up to the minimum and wakes idle ones above the maximum, which
// then exit (thread_pool_update_params). It runs under p.mu.
func (p *pool) update() {
	for p.cur < p.min {
		p.spawn()
	}
	for i := p.cur; i > p.max && len(p.idle) > 0; i-- {
		p.wakeIdle()
	}
	p.armReaper()
}

// SetThreadPoolGrace sets how long Close waits for work in flight before it reports it
// (default 5 s). With d <= 0 Close does not wait.
func (c *Context) SetThreadPoolGrace(d time.Duration) {
	c.pool.mu.Lock()
	c.pool.grace = d
	c.pool.mu.Unlock()
}

// Submit runs work on the context's thread pool, off the loop, and then done(err) on
// the context's thread, as QEMU's thread_pool_submit_aio. It works whether GLib or Poll
// drives the context, and allocates nothing in steady state. Use SubmitAIO for a
// request that can be cancelled.
//
// One BH delivers the completions, as QEMU's thread_pool_completion_bh: before each done
// it schedules itself again, so a done that drains (a nested Poll or GLib iteration)
// still sees the requests that finished with its own. The order is QEMU's: each time,
// of the requests that have finished, the one submitted last completes first. This is
// neither submission nor finishing order; as in QEMU, do not rely on any order. One run
// of the BH delivers at most as many completions as were ready when it started; the
// rest, with those that finished meanwhile, follow in the next BH pass, once the other
// handlers had their turn (QEMU's BH goes on until none is left).
//
// A panic in work is raised again, as a *glibloop.PanicError with the original value and
// stack, from the call that drives the context when the completion runs; done is not
// called then. After Close, done(ErrClosed) runs at once on the calling goroutine. done
// may be nil: the work's result is then dropped, as for fire-and-forget work in QEMU.
// It panics if work is nil.
func (c *Context) Submit(work func() error, done func(error)) {
	if work == nil {
		panic("aiosource: Submit: nil work")
	}
	r := requestPool.Get().(*Request)
	r.pooled = true
	c.pool.submit(r, work, done)
}

// SubmitAIO is Submit returning the request, which Cancel or CancelSync can cancel
// (thread_pool_submit_aio returns a BlockAIOCB for bdrv_aio_cancel_async and
// bdrv_aio_cancel). Unlike Submit it allocates the Request. It panics if work is nil.
func (c *Context) SubmitAIO(work func() error, done func(error)) *Request {
	if work == nil {
		panic("aiosource: SubmitAIO: nil work")
	}
	r := new(Request)
	c.pool.submit(r, work, done)
	return r
}

func (p *pool) submit(r *Request, work func() error, done func(error)) {
	r.pool, r.work, r.done, r.err = p, work, done, nil
	r.completed.Store(false)
	p.mu.Lock()
	if p.stopped || p.ctx.closed.Load() {
		r.state = requestDone
		p.mu.Unlock()
		p.release(r)
		if done != nil {
			done(ErrClosed)
		}
		return
	}
	if !p.created {
		p.created = true
		p.bh = p.ctx.NewBH("thread-pool-completion", p.complete)
		p.update()
	}
	p.seq++
	r.seq, r.state = p.seq, requestQueued
	r.prev, r.link = p.tail, nil
	if p.tail == nil {
		p.head = r
	} else {
		p.tail.link = r
	}
	p.tail = r
	if len(p.idle) > 0 {
		p.wakeIdle()
	} else if p.cur < p.max {
		p.spawn()
	}
	p.mu.Unlock()
}

// Cancel cancels the request if no worker has taken it yet (thread_pool_cancel, as
// bdrv_aio_cancel_async calls it): its done then runs on the loop, as for any
// completion, with an error that is ErrCanceled and unix.ECANCELED. A request that is
// running completes normally, with its work's result; a completed one is left alone.
// Either way done runs exactly once. Cancel does not wait; any goroutine may call it.
func (r *Request) Cancel() {
	p := r.pool
	if p == nil {
		return
	}
	p.mu.Lock()
	if r.state != requestQueued {
		p.mu.Unlock()
		return
	}
	p.unlink(r)
	r.state, r.err = requestDone, ErrCanceled
	p.mu.Unlock()
	p.finish(r)
}

// CancelSync is Cancel followed by Poll(true) on the request's context until its done
// has run (bdrv_aio_cancel): for a running request, until its work returns. Call it only
// where Poll may be called: from the thread that drives the context, callbacks
// included, or while nothing drives it. It returns at once if the request already
// completed, and once the context is closed.
func (r *Request) CancelSync() {
	r.Cancel()
	if r.pool == nil {
		return
	}
	c := r.pool.ctx
	for !r.completed.Load() && !c.closed.Load() {
		c.Poll(true)
	}
}

// unlink takes r off the request list; it runs under p.mu.
func (p *pool) unlink(r *Request) {
	if r.prev == nil {
		p.head = r.link
	} else {
		r.prev.link = r.link
	}
	if r.link == nil {
		p.tail = r.prev
	} else {
		r.link.prev = r.prev
	}
	r.prev, r.link = nil, nil
}

// spawn starts a worker; it runs under p.mu. QEMU creates threads from a BH of the
// home context so they do not inherit a vCPU thread's affinity; goroutines have none,
// so the worker starts at once.
func (p *pool) spawn() {
	p.cur++
	go p.worker(&worker{wake: make(chan struct{}, 1)})
}

// wakeIdle takes the most recently idle worker off the idle list and wakes it; it runs
// under p.mu. The others stay idle and, above the minimum, time out.
func (p *pool) wakeIdle() {
	n := len(p.idle) - 1
	w := p.idle[n]
	p.idle[n] = nil
	p.idle = p.idle[:n]
	w.wake <- struct{}{}
}

func (p *pool) worker(w *worker) {
	p.mu.Lock()
	for p.cur <= p.max && !p.stopped {
		r := p.head
		if r == nil {
			if !p.waitIdle(w) {
				break
			}
			continue
		}
		p.unlink(r)
		r.state = requestActive
		p.running++
		p.mu.Unlock()

		r.err = p.run(r.work)
		// Hand the result over before counting the job finished, so Close, once it sees
		// no job running, finds every result on p.done.
		p.finish(r)

		p.mu.Lock()
		p.running--
	}
	if !w.reap {
		p.cur-- // the reaper counted its own
	}
	// QEMU signals request_cond once more here, since a surplus worker that leaves may
	// have taken the signal meant for a request. Here no wakeup is lost: each request
	// queued while workers idled took one off the idle list, and update woke one idle
	// worker per worker above the maximum. So the woken workers that stay cover the
	// queued requests, and busy ones look at the queue when their work returns.
	p.mu.Unlock()
}

// waitIdle waits on the idle list until a request or the reaper wakes the worker; it
// is called and returns with p.mu held. It reports false when the reaper woke it: the
// worker waited the idle timeout for nothing while the pool had more workers than its
// minimum, and exits.
//
// QEMU's workers each wait on the request condition with a 10 s timeout. A timer per
// wait costs more than the rest of a request's round trip here, so one timer, the
// reaper, serves the whole idle list: workers are woken most recently idle first, so
// the first on the list has waited longest, and the reaper's deadline is its.
func (p *pool) waitIdle(w *worker) bool {
	w.since = watch.Nanotime()
	p.idle = append(p.idle, w)
	if !p.reaperArmed {
		p.armReaper()
	}
	p.mu.Unlock()
	<-w.wake
	p.mu.Lock()
	return !w.reap
}

// armReaper sets the reaper for the deadline of the longest-idle worker, if the pool
// has workers above its minimum; it runs under p.mu.
func (p *pool) armReaper() {
	if p.reaperArmed || len(p.idle) == 0 || p.cur <= p.min || p.stopped {
		return
	}
	d := time.Duration(p.idle[0].since + int64(p.idleTimeout) - watch.Nanotime())
	if p.reaper == nil {
		p.reaper = time.AfterFunc(d, p.reap)
	} else {
		p.reaper.Reset(d)
	}
	p.reaperArmed = true
}

// reap ends the wait of the workers idle for the idle timeout, longest-idle first, while
// no request is queued and the pool has more workers than its minimum.
func (p *pool) reap() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reaperArmed = false
	now := watch.Nanotime()
	for len(p.idle) > 0 && p.head == nil && p.cur > p.min && !p.stopped {
		w := p.idle[0]
		if now-w.since < int64(p.idleTimeout) {
			break
		}
		n := copy(p.idle, p.idle[1:])
		p.idle[n] = nil
		p.idle = p.idle[:n]
		w.reap = true
		p.cur--
		w.wake <- struct{}{}
	}
	p.armReaper()
}

// run calls work, turning a panic into a *glibloop.PanicError for the loop to raise.
func (p *pool) run(work func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &workPanic{&glibloop.PanicError{Value: r, Stack: debug.Stack(), Callback: "thread-pool work"}}
		}
	}()
	return work()
}

type workPanic struct{ p *glibloop.PanicError }

func (w *workPanic) Error() string { return w.p.Error() }

// finish hands a finished request to the loop.
func (p *pool) finish(r *Request) {
	for {
		head := p.done.Load()
		r.next = head
		if p.done.CompareAndSwap(head, r) {
			break
		}
	}
	p.bh.Schedule()
}

// complete is the completion BH (thread_pool_completion_bh). Each step runs, of the
// requests finished so far, the one submitted last: QEMU walks its list of requests,
// newest first, from the front again after every callback. Before a done callback it
// schedules itself, so that a nested Poll in the callback runs the other completions;
// afterwards it cancels that, since it goes on itself. It runs at most the number of
// completions ready when it started, then leaves the rest to the next BH pass.
func (p *pool) complete() {
	p.collect()
	for budget := len(p.ready); budget > 0 && len(p.ready) > 0; budget-- {
		r := p.popNewest()
		done, err := r.done, r.err
		p.release(r)
		wp, panicked := err.(*workPanic)
		if done == nil && !panicked {
			p.collect()
			continue
		}
		p.bh.Schedule()
		if panicked {
			panic(wp.p) // the BH stays scheduled: the rest completes in the next pass
		}
		done(err)
		p.bh.Cancel()
		p.collect()
	}
	if len(p.ready) > 0 || p.done.Load() != nil {
		p.bh.Schedule()
	}
}

// release marks r completed and drops its callbacks; Submit's requests go back to the
// pool.
func (p *pool) release(r *Request) {
	r.work, r.done, r.err, r.next = nil, nil, nil, nil
	r.completed.Store(true)
	if r.pooled {
		r.pool, r.pooled = nil, false
		requestPool.Put(r)
	}
}

// collect moves the finished requests from the done stack into the ready heap.
func (p *pool) collect() {
	if p.done.Load() == nil {
		return
	}
	for r := p.done.Swap(nil); r != nil; {
		next := r.next
		r.next = nil
		p.push(r)
		r = next
	}
}

// push adds r to the ready heap (largest seq at the root).
func (p *pool) push(r *Request) {
	h := append(p.ready, r)
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if h[parent].seq >= h[i].seq {
			break
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
	p.ready = h
}

// popNewest takes the request with the largest seq off the ready heap.
func (p *pool) popNewest() *Request {
	h := p.ready
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = nil
	h = h[:n]
	for i := 0; ; {
		l, largest := 2*i+1, i
		if l < n && h[l].seq > h[largest].seq {
			largest = l
		}
		if l+1 < n && h[l+1].seq > h[largest].seq {
			largest = l + 1
		}
		if largest == i {
			break
		}
		h[i], h[largest] = h[largest], h[i]
		i = largest
	}
	p.ready = h
	return top
}

// close stops the pool: queued work that has not started gets ErrClosed, work in flight
// gets up to the grace period, and completions are delivered here. It returns what did
// not finish, and the first panic a job's work or done callback raised, for Close to
// raise once it has released everything else.
func (p *pool) close() (problems []string, panicked *glibloop.PanicError) {
	p.mu.Lock()
	p.stopped = true
	var queued []*Request
	for r := p.head; r != nil; r = r.link {
		r.state = requestDone
		queued = append(queued, r)
	}
	p.head, p.tail = nil, nil
	for len(p.idle) > 0 {
		p.wakeIdle() // each sees the pool stopped and exits
	}
	if p.reaper != nil {
		p.reaper.Stop()
	}
	deadline := time.Now().Add(p.grace)
	for p.running > 0 && time.Now().Before(deadline) {
		// Poll in short steps while the work finishes.
		p.mu.Unlock()
		time.Sleep(time.Millisecond)
		p.mu.Lock()
	}
	running := p.running
	bh := p.bh
	p.mu.Unlock()

	// A panicking callback must not stop the others, nor Close.
	guard := func(fn func()) {
		defer func() {
			if r := recover(); r != nil && panicked == nil {
				if pe, ok := r.(*glibloop.PanicError); ok {
					panicked = pe
				} else {
					panicked = &glibloop.PanicError{Value: r, Stack: debug.Stack(), Callback: "thread-pool completion"}
				}
			}
		}()
		fn()
	}
	for _, r := range queued {
		done := r.done
		r.prev, r.link = nil, nil
		p.release(r)
		if done != nil {
			guard(func() { done(ErrClosed) })
		}
	}
	if bh != nil {
		// Deliver what finished, then retire the BH.
		for p.done.Load() != nil || len(p.ready) > 0 {
			guard(p.complete)
		}
		bh.Delete()
	}
	if running > 0 {
		problems = append(problems, fmt.Sprintf("%d thread-pool job(s) still running after %v", running, p.grace))
	}
	return problems, panicked
}
