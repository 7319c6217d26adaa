package aiosource

import (
	"errors"
	"fmt"
	"iter"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/glibloop"
)

// Coroutine is QEMU's Coroutine (include/qemu/coroutine.h): a function that runs on the
// thread that enters it, and can yield back to whoever entered it and be entered again
// later to resume where it yielded. Entering is a synchronous switch: the enterer waits
// until the coroutine yields or returns, and one of them runs at a time. QEMU's block
// layer is written this way: code that reads top to bottom, waits for I/O with a yield,
// and is woken by a completion on its AioContext.
//
// Each Coroutine runs on a Go runtime coroutine (the mechanism behind iter.Pull), which
// switches goroutines without the scheduler, on the entering OS thread. A Coroutine is
// bound to the OS thread and callback level of its first entry (see Callback levels in
// the package documentation): entering it again elsewhere schedules it, or parks it
// until its level runs, and never runs it on the wrong thread. Finished coroutines go
// back to a pool, as QEMU keeps one, so that a create, run and finish allocates nothing
// in steady state; a Coroutine is recycled once it has returned and must not be used
// after that.
//
// Misuse panics with QEMU's message, as QEMU aborts: entering a coroutine that is
// entered already or scheduled, scheduling one twice, yielding outside a coroutine,
// returning with locks held.
type Coroutine struct {
	entry     func(*Coroutine)
	w         *coWorker               // the runtime coroutine running it; nil before its first entry
	caller    *Coroutine              // who entered it (leader outside coroutines); nil unless entered
	ctx       atomic.Pointer[Context] // the context of its most recent entry
	scheduled atomic.Pointer[string]  // nil, or who parked it ("aio_co_schedule", ...)
	locksHeld int                     // CoMutex and CoRwlock locks held
	wakeup    coList                  // co_queue_wakeup: woken by it, to run when it yields
	next      *Coroutine              // co_queue_next: its link in one list at a time
	schedNext *Coroutine              // co_scheduled_next: its link in a context's schedule list
	done      bool                    // the entry function returned
	panicked  *glibloop.PanicError    // what the entry function panicked with
}

// leader stands for the code outside coroutines that entered one (QEMU's per-thread
// leader coroutine): a coroutine entered from a BH has leader as its caller.
var leader = &Coroutine{}

// coroutines recycles Coroutine structs, which outlive their worker.
var coroutines = sync.Pool{New: func() any { return new(Coroutine) }}

// NewCoroutine creates a coroutine that will run entry(co) when first entered
// (qemu_coroutine_create). Nothing runs until then. entry receives the coroutine itself
// (qemu_coroutine_self).
func NewCoroutine(entry func(co *Coroutine)) *Coroutine {
	if entry == nil {
		panic("aiosource: NewCoroutine: nil entry")
	}
	co := coroutines.Get().(*Coroutine)
	co.entry = entry
	return co
}

// Enter runs the coroutine on the calling thread until it yields or returns
// (qemu_coroutine_enter), with the calling thread's current context (CurrentContext) as
// its context. Coroutines it wakes meanwhile (Wake, CoMutex.Unlock, ...) run after it
// yields, before Enter returns. A panic in the coroutine comes out of Enter as a
// *glibloop.PanicError with the coroutine's stack, once it is finished, so the panic
// rules of the callback that entered it apply.
//
// A coroutine that already ran is bound to the OS thread and callback level of its
// first entry. Entered on another thread or at another level, a coroutine of a context
// is scheduled there (CoSchedule) or parked until its level runs again, and Enter
// returns at once; one with no context panics.
func (co *Coroutine) Enter() { enter(nil, true, co) }

// EnterIfInactive enters the coroutine unless it is entered already, that is, running
// or waiting for a coroutine it entered (qemu_coroutine_enter_if_inactive).
func (co *Coroutine) EnterIfInactive() {
	if !co.Entered() {
		co.Enter()
	}
}

// Entered reports whether the coroutine is running or waits in a coroutine it entered
// (qemu_coroutine_entered): false before its first entry, and while it has yielded,
// is scheduled or sleeps. Call it on the thread that runs it.
func (co *Coroutine) Entered() bool { return co.caller != nil }

// Context returns the context of the coroutine's most recent entry
// (qemu_coroutine_get_aio_context); nil if it was entered outside any context's walk.
func (co *Coroutine) Context() *Context { return co.ctx.Load() }

// Yield suspends the calling coroutine and returns to whoever entered it
// (qemu_coroutine_yield). It returns when the coroutine is entered again. Outside a
// coroutine it panics with QEMU's "Co-routine is yielding to no one".
func Yield() {
	// self, with threadOf's probe inlined: a coroutine yields at every wait.
	m := getm()
	t, ok := threadProbe(m)
	if !ok {
		t = threadOfSlow(m)
	}
	var co *Coroutine
	if t.held.Load() != 0 {
		co = t.current
	}
	if co == nil {
		panic("aiosource: Co-routine is yielding to no one")
	}
	co.w.yield(struct{}{}) // enter clears co.caller
}

// Yield is the package's Yield for a coroutine that holds its own *Coroutine (the
// entry function's argument): it suspends co and returns when co is entered again. It
// skips Yield's look-up of the running coroutine and compiles to the switch itself,
// about a third of the overhead that an enter+yield pair adds to a bare Go runtime
// coroutine switch.
//
// Only co itself may call it, as only the goroutine that iter.Pull's sequence runs on
// may call its yield. Called on co's thread while co is not the running coroutine
// (before its first entry, while it is suspended, from a coroutine it entered), it
// panics with QEMU's "Co-routine is yielding to no one". Called from any other
// goroutine (one that co started, say), its behaviour is undefined: the check reads
// state that only co's thread may read.
func (co *Coroutine) Yield() {
	w := co.w
	if w == nil || w.t.current != co {
		panic("aiosource: Co-routine is yielding to no one")
	}
	w.yield(struct{}{}) // enter clears co.caller
}

// Self returns the coroutine running on the calling thread (qemu_coroutine_self), or
// nil outside coroutines (where QEMU returns the thread's leader).
func Self() *Coroutine {
	_, co := self()
	return co
}

// InCoroutine reports whether the caller runs in a coroutine (qemu_in_coroutine).
func InCoroutine() bool { return Self() != nil }

// self returns the calling thread's record and its running coroutine, or nils. A
// goroutine not locked to its thread finds no coroutine: a thread that runs one is
// locked to its chain of control, which alone runs on it.
func self() (*thread, *Coroutine) {
	t := threadOf(getm())
	if t.held.Load() == 0 {
		return nil, nil
	}
	return t, t.current
}

// contextOrNil returns the context of the innermost walk on t, if any is active.
func (t *thread) contextOrNil() *Context {
	if t.held.Load() == 0 {
		return nil
	}
	return t.currentContext()
}

// coWorker is a Go runtime coroutine that runs Coroutines one after another: a pooled
// worker keeps its goroutine, so the next Coroutine costs no allocation.
type coWorker struct {
	next  func() (struct{}, bool) // switches to it (iter.Pull's next)
	stop  func()                  // ends it, between two Coroutines only
	yield func(struct{}) bool     // switches back, from inside it
	co    *Coroutine              // the Coroutine it runs now
	t     *thread                 // the thread and level it is bound to
	mark  uintptr
	pnext *coWorker // its link in a pool
}

// run is the worker's body: each Coroutine's entry, its panic caught with its own stack.
func (w *coWorker) run(yield func(struct{}) bool) {
	w.yield = yield
	for {
		co := w.co
		w.runEntry(co)
		co.done = true
		if !yield(struct{}{}) {
			return // stop: the pool lets it go
		}
	}
}

func (w *coWorker) runEntry(co *Coroutine) {
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(*glibloop.PanicError)
			if !ok {
				pe = &glibloop.PanicError{Value: r, Stack: debug.Stack(), Callback: "aiosource coroutine"}
			}
			co.panicked = pe
		}
	}()
	co.entry(co)
}

// coPool holds the idle workers of one level.
type coPool struct {
	mark uintptr
	head *coWorker
	n    int
}

// coPoolMax bounds the idle workers kept per level (QEMU: two batches of 128 per thread).
const coPoolMax = 256

// worker returns an idle worker of the level mark, or a new one made here (and so
// bound to this thread and level).
func (t *thread) worker(mark uintptr) *coWorker {
	for i := range t.pools {
		p := &t.pools[i]
		if p.mark == mark && p.head != nil {
			w := p.head
			p.head, w.pnext = w.pnext, nil
			p.n--
			t.pooled--
			return w
		}
	}
	w := &coWorker{t: t, mark: mark}
	w.next, w.stop = iter.Pull(w.run)
	t.coUsed = true
	return w
}

// putWorker pools w, whose Coroutine has returned, or ends it if its pool is full.
func (t *thread) putWorker(w *coWorker) {
	w.co = nil
	var p *coPool
	for i := range t.pools {
		if t.pools[i].mark == w.mark {
			p = &t.pools[i]
			break
		}
	}
	if p == nil {
		t.pools = append(t.pools, coPool{mark: w.mark})
		p = &t.pools[len(t.pools)-1]
	}
	if p.n >= coPoolMax {
		w.stop()
		return
	}
	w.pnext, p.head = p.head, w
	p.n++
	t.pooled++
}

// drainPool ends the idle workers of level mark; the caller runs at that level.
func (t *thread) drainPool(mark uintptr) {
	for i := range t.pools {
		p := &t.pools[i]
		if p.mark != mark {
			continue
		}
		for p.head != nil {
			w := p.head
			p.head, w.pnext = w.pnext, nil
			p.n--
			t.pooled--
			w.stop()
		}
		t.pools[i] = t.pools[len(t.pools)-1]
		t.pools = t.pools[:len(t.pools)-1]
		return
	}
}

// enter is qemu_aio_coroutine_enter: it runs co in ctx (with current, in the context
// of the calling thread's innermost walk), then, depth-first, what each coroutine it
// ran woke, until none is left, at the calling goroutine's callback level. An enter
// directly in a walk of ctx at that level runs in that walk; any other counts itself in
// as an enter chain of its own (enterChain), whose end runs the parked coroutines of
// its level and retires its pool.
//
// Coroutine.Enter inlines into its caller as a call of enter, and the loop here makes
// the switch: every frame between the caller and the switch costs a mispredicted return
// when the coroutine yields back (the CPU's return stack holds the coroutine's frames
// then). A coroutine's
// panic never comes out of a switch (its worker catches it, runEntry); the panics
// raised here leave the coroutines still pending scheduled on their contexts, and
// t.current as it was.
func enter(ctx *Context, current bool, co *Coroutine) {
	if co == nil {
		panic("aiosource: qemu_aio_coroutine_enter: nil coroutine")
	}
	t := currentThread()
	if current {
		ctx = t.contextOrNil()
	}
	mark := cshim.StackMark()
	if !t.inWalk(ctx, mark) {
		t.enterChain(ctx, co, mark)
		return
	}
	runtime.UnlockOSThread() // the walk's own lock keeps the thread
	var pending coList
	from := t.current
	caller := from
	if caller == nil {
		caller = leader
	}
	for to := co; to != nil; to = pending.pop() {
		if s := to.scheduled.Load(); s != nil {
			t.rescheduleAll(&pending)
			panic(fmt.Sprintf("aiosource: qemu_aio_coroutine_enter: Co-routine was already scheduled in '%s'", *s))
		}
		if to.caller != nil {
			t.rescheduleAll(&pending)
			panic("aiosource: Co-routine re-entered recursively")
		}
		if to.w == nil {
			to.w = t.worker(mark)
			to.w.co = to
		} else if to.w.t != t || to.w.mark != mark {
			t.elsewhere(to, &pending)
			continue
		}
		to.caller = caller
		if to.ctx.Load() != ctx {
			to.ctx.Store(ctx)
		}
		t.current = to
		to.w.next() // runs it until it yields or returns; a Goexit in it ends us too
		t.current = from
		to.caller = nil // it yielded (qemu_coroutine_yield clears it), or returned
		if !to.wakeup.empty() {
			pending.pushFrontList(&to.wakeup) // what it woke runs first, in order
		}
		if to.done {
			t.terminate(to, &pending)
		}
	}
}

// inWalk reports whether the innermost walk on t is of ctx at the level mark.
func (t *thread) inWalk(ctx *Context, mark uintptr) bool {
	n := len(t.walks)
	return n > 0 && t.walks[n-1].mark == mark && t.walks[n-1].ctx == ctx
}

// enterChain runs enter as an enter chain of its own, on t, the calling goroutine's
// thread, which the caller has just locked it to (acquire takes that lock over).
func (t *thread) enterChain(ctx *Context, co *Coroutine, mark uintptr) {
	t.acquire(ctx, mark, false)
	defer t.leave()
	enter(ctx, false, co)
}

// leave ends an enter chain: leaving's work, then release, even if leaving panics.
func (t *thread) leave() {
	defer t.release()
	t.leaving()
}

// terminate recycles a coroutine whose entry returned, and raises its panic.
func (t *thread) terminate(co *Coroutine, pending *coList) {
	w, pe, held := co.w, co.panicked, co.locksHeld
	*co = Coroutine{}
	coroutines.Put(co)
	t.putWorker(w)
	if pe != nil || held != 0 {
		t.rescheduleAll(pending)
	}
	if pe != nil {
		panic(pe)
	}
	if held != 0 {
		panic(fmt.Sprintf("aiosource: coroutine returned with %d lock(s) held (QEMU asserts locks_held == 0)", held))
	}
}

// elsewhere handles a coroutine bound to another thread or level than the enter
// running now: one of this thread is parked for its level; one of another thread goes
// back to its context, whose thread runs it (Go's runtime coroutines never change
// threads); one with no context cannot be run.
func (t *thread) elsewhere(co *Coroutine, pending *coList) {
	ctx := co.ctx.Load()
	switch {
	case ctx == nil:
		t.rescheduleAll(pending)
		panic("aiosource: coroutine entered on another OS thread or callback level than it first ran at, with no context to run it later (Go's runtime coroutines switch only at the level at which they were made)")
	case co.w.t == t:
		t.parked = append(t.parked, co)
	case ctx == t.currentContext():
		// Its own context is driven by this thread now: no thread can run it.
		ctx.reportError(errors.New("aiosource: a coroutine that first ran on another OS thread was entered on the thread that drives its context now; Go's runtime coroutines cannot change threads, so it stays suspended"))
	default:
		ctx.CoSchedule(co)
	}
}

// runParked enters the parked coroutines of level mark, each with its context.
func (t *thread) runParked(mark uintptr) {
	for i := 0; i < len(t.parked); {
		co := t.parked[i]
		if co.w.mark != mark {
			i++
			continue
		}
		t.parked = append(t.parked[:i], t.parked[i+1:]...)
		enter(co.ctx.Load(), false, co)
	}
}

// rescheduleAll schedules the coroutines left in pending when a coroutine panicked, on
// their contexts; those without one stay as they are.
func (t *thread) rescheduleAll(pending *coList) {
	for !pending.empty() {
		co := pending.pop()
		if ctx := co.ctx.Load(); ctx != nil && co.scheduled.Load() == nil && co.caller == nil {
			ctx.CoSchedule(co)
		}
	}
}

// coList is a FIFO of coroutines linked through their next field.
type coList struct{ head, tail *Coroutine }

func (l *coList) empty() bool { return l.head == nil }

func (l *coList) push(co *Coroutine) {
	co.next = nil
	if l.tail == nil {
		l.head = co
	} else {
		l.tail.next = co
	}
	l.tail = co
}

func (l *coList) pushFront(co *Coroutine) {
	co.next = l.head
	l.head = co
	if l.tail == nil {
		l.tail = co
	}
}

func (l *coList) pop() *Coroutine {
	co := l.head
	if co == nil {
		return nil
	}
	l.head = co.next
	if l.head == nil {
		l.tail = nil
	}
	co.next = nil
	return co
}

// pushFrontList moves all of o, in order, to the front of l.
func (l *coList) pushFrontList(o *coList) {
	if o.head == nil {
		return
	}
	o.tail.next = l.head
	if l.tail == nil {
		l.tail = o.tail
	}
	l.head = o.head
	*o = coList{}
}
