package aiosource

import (
	"fmt"
	"runtime"
	"sync/atomic"
	_ "unsafe" // for go:linkname

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/glibloop"
)

// The home thread (see the package documentation for what it is and what fails).
//
// QEMU fixes an AioContext's home thread once (qemu_set_current_aio_context) and
// asserts it in aio_poll (in_aio_context_home_thread). Goroutines move between OS
// threads from one call to the next, so here a driver holds the context while it
// drives it: hold and letGo bracket each Poll and GLib dispatch, holdFor and letGoFor
// an IOThread's life and a MainLoop.Run.
//
// How it works. A walk (a Poll, a dispatch, a driver's hold) on the home thread while
// that thread already walks the context is nested, and costs no atomic operation beyond
// the count Stats reports. An outermost walk counts itself in an entry counter before
// it looks at anything, and in exits when it ends; the outermost walks active now are
// the entries minus the exits. A walk that finds itself the only active one, on a
// thread other than the recorded home thread, records its thread as the new home
// thread; one that finds another active is in conflict. With sequentially consistent
// counters, of two walks that overlap at least one sees the other (Dekker's argument),
// and the one that is not on the home thread backs out. The entry counters of outermost
// Polls and dispatches are the statistics counters that Stats reports, so an outermost
// call pays one atomic addition more (its exit) and a few loads, and no call pays a
// syscall: threads are compared by their runtime M, which the goroutine reads from the
// runtime, and each walk locks its goroutine to its OS thread, so that the M cannot
// change under a callback that polls again. The OS thread id, for the messages, is read
// once per change of home thread.

// getm returns the runtime's M, the Go runtime's handle of the OS thread the calling
// goroutine runs on; an M is one OS thread for its whole life. The runtime keeps this
// linkname for packages outside it (go.dev/issue/67401).
//
//go:linkname getm runtime.getm
func getm() uintptr

// driver is a thread that drives a context.
type driver struct {
	m    uintptr // runtime M of the thread
	tid  int     // its OS thread id
	name string  // what holds it across calls ("IOThread x", "MainLoop.Run"), or ""
}

// home is the home-thread state of a Context. The entry counters of outermost Polls and
// dispatches are the Context's statistics counters, c.stats.polls and c.stats.dispatches.
type home struct {
	holds atomic.Uint64 // entries of drivers' outermost holds (holdFor)
	// Ends of outermost walks: Polls, dispatches and holds. A locked addition: it also
	// publishes the walk's writes (depth, the walk's buffers) to the thread that finds
	// the context idle next and takes it over.
	exits atomic.Uint64

	nestedPolls, nestedDispatches atomic.Uint64 // Stats's counts of nested walks

	rec   atomic.Pointer[driver] // the home thread: the thread that last drove the context
	depth int                    // the home thread's walks active now (home thread only)
	prev  *driver                // the home thread before rec, reused if it comes back
}

// homeSpins bounds how long the home thread waits for a thread that counted itself in
// while the context was idle and then found the home thread active: that thread either
// takes the context over or backs out within a few instructions.
const homeSpins = 10000

// active returns how many outermost walks are active, the caller's included. Exits are
// read before entries: every exit counted then has its entry counted, so the result is
// never less than the walks active when exits were read.
func (c *Context) active() uint64 {
	x := c.home.exits.Load()
	return c.stats.polls.Load() + c.stats.dispatches.Load() + c.home.holds.Load() - x
}

// hold starts a walk (a Poll or a GLib dispatch) on the calling thread, counted in
// outer if it is outermost and in nested if not: it makes the thread the context's home
// thread, or nests in its own walk, or panics with a message that starts with op when
// another thread drives the context. It returns the thread's record: every hold needs a
// letGo of it, on panic too.
func (c *Context) hold(outer, nested *atomic.Uint64, op string) *thread {
	runtime.LockOSThread()
	m := getm()
	t := threadOf(m)
	// Nested or not is the thread's own record's to say: the home thread's record and
	// depth may change under a thread that is not walking the context.
	if t.walking(c) {
		nested.Add(1)
		c.home.depth++ // nested in the home thread's own walk
		t.acquire(c, 0, true)
		return t
	}
	outer.Add(1)
	// The record is read after the count: once the caller finds itself alone, a thread
	// that took the context over meanwhile has recorded itself (before its exit).
	if c.active() == 1 {
		if d := c.home.rec.Load(); d != nil && d.m == m {
			c.home.depth++ // the home thread again, alone
			t.acquire(c, 0, true)
			return t
		}
	}
	if err := c.holdSlow(m, "", 0); err != nil {
		c.home.exits.Add(1)
		runtime.UnlockOSThread()
		panic(fmt.Sprintf("aiosource: %s: %v", op, err))
	}
	t.acquire(c, 0, true)
	return t
}

// holdFor makes the calling thread the context's home thread until letGo, for a driver
// that keeps the context across its calls (an IOThread, MainLoop.Run), or nests in the
// thread's own walk. It fails with a *homeError when another thread drives the context.
func (c *Context) holdFor(name string, tid int) error {
	runtime.LockOSThread()
	m := getm()
	t := threadOf(m)
	if t.walking(c) {
		c.home.depth++ // nested in the home thread's own walk
		t.acquire(c, cshim.StackMark(), true)
		return nil
	}
	c.home.holds.Add(1)
	if err := c.holdSlow(m, name, tid); err != nil {
		c.home.exits.Add(1)
		runtime.UnlockOSThread()
		return err
	}
	// A driver's hold lasts: its level's mark is taken now, so that the coroutine
	// workers of walks at the same level (Polls of an IOThread) stay pooled.
	t.acquire(c, cshim.StackMark(), true)
	return nil
}

// holdSlow decides an outermost walk that hold's fast path did not: the caller has
// counted itself in and runs on M m. A named hold records its name even on the home
// thread.
func (c *Context) holdSlow(m uintptr, name string, tid int) error {
	for spins := 0; ; spins++ {
		d := c.home.rec.Load()
		mine := d != nil && d.m == m
		if c.active() == 1 { // alone: the caller's thread is, or becomes, the home thread
			c.takeOver(d, m, name, tid)
			c.home.depth++
			return nil
		}
		if !mine || spins == homeSpins {
			if d == nil || mine {
				d = nil // not known yet: the other thread has not recorded itself
			}
			return &homeError{caller: unix.Gettid(), home: d}
		}
		// The caller is the home thread, idle until now, and another thread counted
		// itself in meanwhile: that thread takes the context over, or backs out, at
		// once.
		runtime.Gosched()
	}
}

// takeOver records the calling thread, on M m, as the home thread; cur is the record
// now. It runs on the only active walk, after every earlier home thread's last exit.
func (c *Context) takeOver(cur *driver, m uintptr, name string, tid int) {
	for _, d := range [...]*driver{cur, c.home.prev} {
		if d != nil && d.m == m {
			if d.name == name {
				if d != cur {
					c.home.prev = cur
					c.home.rec.Store(d)
				}
				return
			}
			if tid == 0 {
				tid = d.tid
			}
		}
	}
	if tid == 0 {
		// A thread new to this context (or back after another): one syscall per change
		// of home thread, not per call. An M stands for one thread as long as the
		// thread lives; once it has exited (a goroutine that ended locked to it), a new
		// M may come at the same address, and only the id in a message could be stale.
		tid = unix.Gettid()
	}
	c.home.prev = cur
	c.home.rec.Store(&driver{m: m, tid: tid, name: name})
}

// letGo ends a walk that hold or holdFor started on t, the caller's thread (locked to
// it since).
func (c *Context) letGo(t *thread) {
	defer func() {
		c.home.depth--
		if c.home.depth == 0 {
			c.home.exits.Add(1) // the outermost walk ends
		}
		t.release() // unlocks the OS thread if this was its outermost walk
	}()
	t.leaving() // coroutines parked for this level run (thread.go)
}

// letGoFor ends a hold that holdFor started. The outermost one leaves the thread the
// home thread as a plain driver, so that a later message does not name a driver that
// has ended.
func (c *Context) letGoFor() {
	if c.home.depth == 1 {
		d := c.home.rec.Load()
		c.takeOver(d, d.m, "", d.tid)
	}
	c.letGo(threadOf(getm()))
}

// homeError reports a thread that tried to drive a context while another one drove it.
// Poll panics with its message; MainLoop.Run returns it, and errors.Is matches it with
// glibloop.ErrNotOwner, the error of a GLib loop whose context another thread owns.
type homeError struct {
	caller int     // OS thread id of the thread that tried
	home   *driver // the home thread; nil if it was still unknown
}

func (e *homeError) Error() string {
	const why = "one thread at a time drives an AioContext (QEMU asserts in_aio_context_home_thread)"
	if e.home == nil {
		return fmt.Sprintf("called on thread %d, but another thread is driving the context: %s", e.caller, why)
	}
	who := fmt.Sprintf("thread %d", e.home.tid)
	if e.home.name != "" {
		who += " (" + e.home.name + ")"
	}
	return fmt.Sprintf("called on thread %d, but the context's home thread, %s, is driving it: %s", e.caller, who, why)
}

func (e *homeError) Unwrap() error { return glibloop.ErrNotOwner }
