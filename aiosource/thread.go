package aiosource

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/glibaio/glibaio/cshim"
)

// Per-OS-thread state: QEMU keeps the current coroutine, the coroutine pool and the
// current AioContext in thread-local variables (coroutine-ucontext.c, async.c). Go has
// no thread-local storage, so a thread record is found by the runtime's M of the
// calling goroutine (getm, home.go), and only code locked to that thread touches it.
//
// The callback level. Go's runtime coroutines (iter.Pull), which run Coroutines, may
// be switched to only at the thread-locking state at which they were made: the same
// thread, the same count of runtime.LockOSThread calls and the same nesting of
// C-to-Go callbacks (the runtime throws "coro: OS thread locking must match locking
// at coroutine creation" otherwise). glibaio keeps the first two constant inside its
// own code: the outermost walk or enter chain on a thread locks the goroutine to it,
// and the nested ones do not add to the count (acquire). The third changes whenever
// C code calls back into Go: a GLib iteration inside a callback (gtk_dialog_run, a
// nested g_main_loop_run) dispatches at a deeper level. A level is identified by its
// stack mark (cshim.StackMark): the C frames under the Go code. A Coroutine is bound
// to the level of its first entry and only ever switched to at that level; a wake that
// comes at another level parks it until its level runs again (coroutine.go).

// thread is glibaio's record of one OS thread that walks contexts or runs coroutines.
type thread struct {
	m    uintptr     // the runtime M
	held threadCount // walks and enter chains active; the outermost holds LockOSThread

	// The fields below are touched only by code locked to the thread, after held's
	// operations (atomic in race builds, which orders them for the race detector).
	walks   []walkRec    // active walks and enter chains, the innermost last
	current *Coroutine   // the coroutine running now, nil outside coroutines
	coUsed  bool         // a coroutine ran here: walks record their level's mark, if costly
	pools   []coPool     // idle coroutine workers, by level
	pooled  int          // workers in all pools
	parked  []*Coroutine // coroutines woken at another level, waiting for theirs
}

// walkRec is one walk (a Poll, a GLib dispatch of a context, a driver's hold) or one
// enter chain active on a thread.
type walkRec struct {
	ctx  *Context // the context walked; an enter chain inherits the walk's it runs in
	mark uintptr  // the level's stack mark; 0 if not taken
	walk bool     // a walk of ctx (hold, holdFor), not an enter chain
}

// threads maps runtime Ms to their records: a small open-addressed table that is read
// without a lock, and a map behind a mutex for threads beyond it. Records live as long
// as the process; a new thread that reuses an M's address reuses its record, which an
// exited thread leaves with nothing active.
var threads struct {
	tab  [256]atomic.Pointer[thread]
	mu   sync.Mutex
	more map[uintptr]*thread
}

// threadOf returns the record of the thread whose M is m, making it on first use. The
// first probe is inlined: it finds the record of every thread but a colliding one.
func threadOf(m uintptr) *thread {
	if t, ok := threadProbe(m); ok {
		return t
	}
	return threadOfSlow(m)
}

// threadProbe is threadOf's first probe, small enough to inline where threadOf (whose
// call costs a frame) is too big: currentThread and Yield, on every coroutine switch.
func threadProbe(m uintptr) (*thread, bool) {
	t := threads.tab[threadHash(m)].Load()
	return t, t.m == m
}

// noThread fills the table's free slots, so that a probe needs no nil check: no M
// lives at address 0.
var noThread thread

func init() {
	for i := range threads.tab {
		threads.tab[i].Store(&noThread)
	}
}

// threadHash is 8 bits of a Fibonacci hash of an M's address.
func threadHash(m uintptr) uintptr { return (m >> 6) * 0x9E3779B97F4A7C15 >> 56 }

func threadOfSlow(m uintptr) *thread {
	h := threadHash(m)
	for i := uintptr(0); i < uintptr(len(threads.tab)); i++ {
		slot := &threads.tab[(h+i)%uintptr(len(threads.tab))]
		t := slot.Load()
		if t == &noThread {
			nt := &thread{m: m}
			if slot.CompareAndSwap(&noThread, nt) {
				return nt
			}
			t = slot.Load()
		}
		if t.m == m {
			return t
		}
	}
	threads.mu.Lock()
	defer threads.mu.Unlock()
	if threads.more == nil {
		threads.more = map[uintptr]*thread{}
	}
	t := threads.more[m]
	if t == nil {
		t = &thread{m: m}
		threads.more[m] = t
	}
	return t
}

// currentThread locks the calling goroutine to its thread and returns the thread's
// record; pair it with runtime.UnlockOSThread, or hand the lock to acquire.
func currentThread() *thread {
	runtime.LockOSThread()
	m := getm()
	if t, ok := threadProbe(m); ok {
		return t
	}
	return threadOfSlow(m)
}

// acquire counts a walk or enter chain in on t, the calling goroutine's thread, which
// the caller has just locked it to: the outermost keeps that lock, a nested one gives
// it back at once, so that the LockOSThread count is the same at every level. The lock
// of an enclosing walk keeps the goroutine on the thread meanwhile. It pushes the
// walk's record.
func (t *thread) acquire(ctx *Context, mark uintptr, walk bool) {
	if t.held.Add(1) > 1 {
		runtime.UnlockOSThread()
	}
	if mark == 0 && (t.coUsed || cshim.StackMarkCheap()) {
		mark = cshim.StackMark()
	}
	t.walks = append(t.walks, walkRec{ctx: ctx, mark: mark, walk: walk})
}

// walking reports whether the thread walks ctx now: then it is ctx's home thread, and a
// new walk of ctx on it nests in its own.
func (t *thread) walking(ctx *Context) bool {
	for i := len(t.walks) - 1; i >= 0; i-- {
		if t.walks[i].walk && t.walks[i].ctx == ctx {
			return true
		}
	}
	return false
}

// leaving runs at the end of the innermost walk or enter chain, while it still counts:
// the parked coroutines of its level run, then the pooled workers of its level go
// unless an enclosing walk shares the level (a level may never run again: their
// goroutines would leak). release must follow, even if this panics.
func (t *thread) leaving() {
	if t.pooled > 0 || len(t.parked) > 0 {
		t.leavingSlow()
	}
}

// release ends the innermost walk or enter chain.
func (t *thread) release() {
	t.walks[len(t.walks)-1] = walkRec{}
	t.walks = t.walks[:len(t.walks)-1]
	// The outermost: current is cleared before held's operation, which in race builds
	// orders it before the next goroutine's use of this record (the race detector sees
	// no other order between goroutines that take turns on one thread).
	last := t.held.Load() == 1
	if last {
		t.current = nil // left set only by a Goexit out of a coroutine
	}
	t.held.Add(-1)
	if last {
		runtime.UnlockOSThread()
	}
}

func (t *thread) leavingSlow() {
	w := &t.walks[len(t.walks)-1]
	if w.mark == 0 {
		w.mark = cshim.StackMark()
	}
	if len(t.parked) > 0 {
		t.runParked(w.mark)
	}
	if t.pooled == 0 {
		return
	}
	for _, e := range t.walks[:len(t.walks)-1] {
		if e.mark == w.mark {
			return // an enclosing walk runs at this level: keep its pool
		}
	}
	t.drainPool(w.mark)
}

// currentContext returns the context of the innermost walk on t, or nil.
func (t *thread) currentContext() *Context {
	if len(t.walks) == 0 {
		return nil
	}
	return t.walks[len(t.walks)-1].ctx
}
