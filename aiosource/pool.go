package aiosource

import (
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glibaio/glibaio/glibloop"
)

// DefaultThreadPoolSize is the default bound on thread-pool goroutines, as QEMU's
// thread_pool_max.
const DefaultThreadPoolSize = 64

// pool is a context's thread pool (QEMU's ThreadPool): blocking work runs on a bounded
// set of goroutines, and completions run on the context's thread, in batches, from one
// BH.
type pool struct {
	ctx *Context

	mu      sync.Mutex
	cond    sync.Cond
	queue   []*request // queue[qhead:] waits for a worker
	qhead   int
	max     int
	workers int // started and not exited
	idle    int // waiting for work
	running int // executing work
	stopped bool
	grace   time.Duration

	done     atomic.Pointer[request] // completed, LIFO; any goroutine pushes
	bh       *BH                     // runs the completions
	draining []*request              // the current batch, oldest first (loop thread)
	next     int                     // index of the next completion in draining
}

type request struct {
	work func() error
	done func(error)
	err  error
	next *request
}

var requestPool = sync.Pool{New: func() any { return new(request) }}

func (p *pool) init(c *Context) {
	p.ctx = c
	p.cond.L = &p.mu
	p.max = DefaultThreadPoolSize
	p.grace = 5 * time.Second
}

// SetThreadPoolSize bounds the goroutines that run Submit's work (default 64). For n < 1
// it returns an error that is os.ErrInvalid and changes nothing.
func (c *Context) SetThreadPoolSize(n int) error {
	if n < 1 {
		return fmt.Errorf("aiosource: SetThreadPoolSize: size %d is less than 1: %w", n, os.ErrInvalid)
	}
	c.pool.mu.Lock()
	c.pool.max = n
	c.pool.mu.Unlock()
	return nil
}

// SetThreadPoolGrace sets how long Close waits for work in flight before it reports it
// (default 5 s). With d <= 0 Close does not wait.
func (c *Context) SetThreadPoolGrace(d time.Duration) {
	c.pool.mu.Lock()
	c.pool.grace = d
	c.pool.mu.Unlock()
}

// Submit runs work on the context's thread pool, off the loop, and then done(err) on
// the context's thread, as QEMU's thread_pool_submit_aio. Completions are batched: one
// BH runs every completion that is ready. It works whether GLib or Poll drives the
// context. A panic in work is raised again, as a *glibloop.PanicError with the original
// value and stack, from the call that drives the context when the completion runs;
// done is not called then. After Close, done(ErrClosed) runs at once on the calling
// goroutine. done may be nil: the work's result is then dropped, as for fire-and-forget
// work in QEMU. It panics if work is nil.
func (c *Context) Submit(work func() error, done func(error)) {
	if work == nil {
		panic("aiosource: Submit: nil work")
	}
	p := &c.pool
	req := requestPool.Get().(*request)
	req.work, req.done, req.err = work, done, nil
	p.mu.Lock()
	if p.stopped || c.closed.Load() {
		p.mu.Unlock()
		req.work, req.done = nil, nil
		requestPool.Put(req)
		if done != nil {
			done(ErrClosed)
		}
		return
	}
	if p.bh == nil {
		p.bh = c.NewBH("thread-pool-completion", p.complete)
	}
	p.queue = append(p.queue, req)
	switch {
	case p.idle > 0:
		p.cond.Signal()
	case p.workers < p.max:
		p.workers++
		go p.worker()
	}
	p.mu.Unlock()
}

func (p *pool) worker() {
	p.mu.Lock()
	for {
		for p.qhead == len(p.queue) && !p.stopped {
			p.idle++
			p.cond.Wait()
			p.idle--
		}
		if p.stopped {
			p.workers--
			p.cond.Broadcast()
			p.mu.Unlock()
			return
		}
		req := p.queue[p.qhead]
		p.queue[p.qhead] = nil
		if p.qhead++; p.qhead == len(p.queue) {
			p.queue, p.qhead = p.queue[:0], 0 // reuse the array: no allocation per job
		}
		p.running++
		p.mu.Unlock()

		req.err = p.run(req.work)
		// Hand the result over before counting the job finished, so Close, once it sees
		// no job running, finds every result on p.done.
		p.finish(req)

		p.mu.Lock()
		p.running--
		if p.stopped && p.running == 0 {
			p.cond.Broadcast() // Close waits for the last one
		}
	}
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
func (p *pool) finish(req *request) {
	for {
		head := p.done.Load()
		req.next = head
		if p.done.CompareAndSwap(head, req) {
			break
		}
	}
	p.bh.Schedule()
}

// complete runs on the context's thread: every completion that is ready, oldest first.
// If a done callback panics, the rest of the batch runs in the next pass.
func (p *pool) complete() {
	if p.next == len(p.draining) {
		p.draining, p.next = p.draining[:0], 0
		for r := p.done.Swap(nil); r != nil; r = r.next {
			p.draining = append(p.draining, r)
		}
		for i, j := 0, len(p.draining)-1; i < j; i, j = i+1, j-1 {
			p.draining[i], p.draining[j] = p.draining[j], p.draining[i]
		}
	}
	defer func() {
		if p.next < len(p.draining) {
			p.bh.Schedule() // a done callback panicked: finish the batch next pass
		}
	}()
	for p.next < len(p.draining) {
		req := p.draining[p.next]
		p.draining[p.next] = nil
		p.next++
		done, err := req.done, req.err
		req.work, req.done, req.err, req.next = nil, nil, nil, nil
		requestPool.Put(req)
		if wp, ok := err.(*workPanic); ok {
			panic(wp.p)
		}
		if done != nil {
			done(err)
		}
	}
	if p.done.Load() != nil {
		p.bh.Schedule()
	}
}

// close stops the pool: queued work that has not started gets ErrClosed, work in flight
// gets up to the grace period, and completions are delivered here. It returns what did
// not finish, and the first panic a job's work or done callback raised, for Close to
// raise once it has released everything else.
func (p *pool) close() (problems []string, panicked *glibloop.PanicError) {
	p.mu.Lock()
	p.stopped = true
	queued := p.queue[p.qhead:]
	p.queue, p.qhead = nil, 0
	p.cond.Broadcast()
	deadline := time.Now().Add(p.grace)
	for p.running > 0 && time.Now().Before(deadline) {
		// sync.Cond has no timeout: poll in short steps while the work finishes.
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
	for _, req := range queued {
		if req.done != nil {
			guard(func() { req.done(ErrClosed) })
		}
	}
	if bh != nil {
		// Deliver what finished, then retire the BH.
		for p.done.Load() != nil || p.next < len(p.draining) {
			guard(p.complete)
		}
		bh.Delete()
	}
	if running > 0 {
		problems = append(problems, fmt.Sprintf("%d thread-pool job(s) still running after %v", running, p.grace))
	}
	return problems, panicked
}
