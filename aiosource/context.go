package aiosource

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/glibaio/glibaio/internal/reactor"

	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/watch"
)

// Errors returned by aiosource.
var (
	// ErrClosed is returned by operations on a Context or EventNotifier after Close.
	ErrClosed = errors.New("aiosource: closed")
	// ErrBadFD is returned for a negative fd.
	ErrBadFD = errors.New("aiosource: bad file descriptor")
	// ErrNoHandler is returned when removing a handler that is not registered.
	ErrNoHandler = errors.New("aiosource: no handler registered for fd")
)

// Context is QEMU's AioContext: an event loop of fd handlers, event notifiers, bottom
// halves (BHs) and timers, which is also a real GSource. Attach it to a GMainContext and
// GLib drives it (gtk_main, g_main_loop_run, glibloop's Loop); or drive it with Poll, as
// QEMU's aio_poll does, from one thread at a time.
//
// Its GSource is glibaio's reactor source: prepare and check run in C, and a dispatch
// crosses into Go once. GLib polls the reactor's kick eventfd (the wakeup of Notify),
// its timerfd once a timer was first armed, and, as QEMU's poll fd monitor, each
// registered fd itself while fewer than 64 are registered. From 64 fds on, as QEMU's
// epoll fd monitor, the fds move into an epoll instance for good, and GLib polls its
// epoll fd instead of them. Inside a dispatch, as in QEMU, BHs run first, then fd
// handlers, then timers.
//
// Every method is safe from any goroutine; callbacks run on the thread that drives the
// context. Use the context from one driver at a time: GLib iterations of the context it
// is attached to, or Poll, never both concurrently (both may nest inside callbacks); a
// second thread that tries panics (see Home thread in the package documentation).
type Context struct {
	r     *reactor.Reactor
	src   *glibloop.Source
	ready *atomic.Uint32 // r's ready word (r.ReadyWord), tested by every walk

	closed atomic.Bool
	home   home // the thread that drives the context now (home.go)

	// fd handlers (fd.go). mu is QEMU's list_lock on the writer side. QEMU's count of
	// active walkers (list_lock's readers) is depth: only the home thread walks.
	mu             sync.Mutex
	table          atomic.Pointer[fdTable]
	deleted        []*fdNode
	ndeleted       atomic.Int32 // len(deleted), read without mu by the outermost walker
	nodes          atomic.Int32 // live handlers
	gen            uint32       // the last registration tag handed out (under mu)
	readySeq       uint64       // numbers ready-list entries (loop thread)
	pollDisableCnt atomic.Int32 // live handlers that have no Poll callback

	// adaptive busy polling (poll.go); the handler list is owned by the loop thread.
	pollMaxNS, pollGrow, pollShrink atomic.Int64
	resetPollTimes                  atomic.Bool // set by SetPollParams for the loop thread
	pollHandlers                    []*fdNode
	pollStarted                     bool
	pollFound                       []*fdNode     // found ready by busy polling, to dispatch
	pollIdleDropped                 int           // handlers that left polling idle (pollidle.go)
	pollIdleNS                      int64         // POLL_IDLE_INTERVAL_NS; 0: the default
	waits                           atomic.Uint64 // fd-monitor waits Poll made (for tests)

	// bottom halves (bh.go). bhList is the lock-free list any goroutine pushes onto;
	// slices and freeSlices belong to the thread that drives the context.
	bhList     atomic.Pointer[BH]
	slices     []*bhSlice
	freeSlices []*bhSlice
	bhMu       sync.Mutex
	liveBHs    map[*BH]struct{} // BHs made by NewBH and not yet deleted
	oneshots   oneshotRing      // oneshot BHs (oneshot.go)

	// timers (timer.go)
	tmu    sync.Mutex
	clocks [numClocks]timerList
	armed  atomic.Int32 // timers currently pending, all clocks

	// per-nesting-level buffers of a dispatch or Poll, and the walks (dispatches and
	// Polls, nested ones included) active now; loop thread only
	depth  int
	levels []*level

	pool pool // the thread pool (pool.go)

	fileAIO fileAIO // file I/O: io_uring, or the thread pool (fileaio.go)

	coSched coSched // scheduled coroutines (coschedule.go)

	slot      watch.Slot   // the callback running now (statistics, stall watchdog)
	oneshotWP *watch.Point // shared by all oneshot BHs

	stats struct {
		dispatches, polls     atomic.Uint64 // also the home thread's entry counters (home.go)
		bhs, handlers, timers watch.Counter
	}
	lastSweep int64  // nanotime of the last closed-fd sweep (loop thread)
	walks     uint32 // outermost walks, to look at the clock only now and then

	errHandler atomic.Pointer[func(error)]
}

// Stats counts what a context did since New.
type Stats struct {
	Kicks      uint64 // eventfd writes made to wake the loop (Notify while it waited)
	Dispatches uint64 // GSource dispatches
	Polls      uint64 // Poll calls
	BHs        uint64 // BH callbacks run
	Handlers   uint64 // fd handler callbacks run (Read, Write, PollReady)
	Timers     uint64 // timer callbacks run
}

// Stats returns the context's counters.
func (c *Context) Stats() Stats {
	return Stats{
		Kicks:      c.r.Kicks(),
		Dispatches: c.stats.dispatches.Load() + c.home.nestedDispatches.Load(),
		Polls:      c.stats.polls.Load() + c.home.nestedPolls.Load(),
		BHs:        c.stats.bhs.Load(),
		Handlers:   c.stats.handlers.Load(),
		Timers:     c.stats.timers.Load(),
	}
}

// level holds the buffers of one (possibly nested) dispatch or Poll.
type level struct {
	ready []readyHandler
}

// New creates an AioContext (aio_context_new). It is not attached to any GMainContext;
// use Attach, or drive it with Poll. When its fds cannot be made, the error wraps the
// syscall.Errno (errors.Is syscall.EMFILE, for instance), and nothing is left behind.
// The first New also makes sure Go's runtime has made its netpoller, which the thread
// pool's timers need and which the runtime cannot make at the fd limit without dying
// (netpoll.go).
func New() (*Context, error) {
	if err := ensureNetpoll(); err != nil {
		return nil, fmt.Errorf("aiosource: New: %w", err)
	}
	c := &Context{liveBHs: map[*BH]struct{}{}}
	c.oneshotWP = watch.NewPoint("BH", "oneshot", nil)
	c.oneshots.init()
	r, err := reactor.New(c.dispatch, c.finalize)
	if err != nil {
		return nil, fmt.Errorf("aiosource: New: %w", err)
	}
	c.r = r
	c.ready = r.ReadyWord() // valid as long as c, which holds r
	c.src = r.Source()
	c.src.SetCanRecurse(true) // as QEMU: a nested loop inside a callback may dispatch it again
	c.table.Store(&fdTable{})
	c.pool.init(c)
	c.fileAIO.c = c
	c.coSched.bh = c.coScheduleBH
	watch.Register(&c.slot)
	return c, nil
}

// call runs one callback between the watch slot's Enter and Leave, so it counts in its
// statistics and a stall in it is seen by the watchdog, panic or not.
func (c *Context) call(wp *watch.Point, fn func()) {
	var st watch.State
	c.slot.Enter(&st, wp)
	defer c.slot.Leave(&st)
	fn()
}

// CallbackStats returns the statistics of the context's callbacks: every BH made by
// NewBH and not deleted, all oneshot BHs together, every registered fd handler and
// every pending timer, the longest-running first (by Max). Counts are exact; times are
// sampled, as glibloop.CallbackStats describes.
func (c *Context) CallbackStats() []glibloop.CallbackStats {
	var out []glibloop.CallbackStats
	c.bhMu.Lock()
	for b := range c.liveBHs {
		out = append(out, glibloop.CallbackStats(b.wp.Stats()))
	}
	c.bhMu.Unlock()
	out = append(out, glibloop.CallbackStats(c.oneshotWP.Stats()))
	t := c.table.Load()
	for i := range t.slots {
		if n := t.slots[i].Load(); n != nil {
			out = append(out, glibloop.CallbackStats(n.wpRead.Stats()), glibloop.CallbackStats(n.wpWrite.Stats()))
		}
	}
	c.tmu.Lock()
	for ct := range c.clocks {
		for tm := c.clocks[ct].head; tm != nil; tm = tm.next {
			out = append(out, glibloop.CallbackStats(tm.wp.Stats()))
		}
	}
	c.tmu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Max > out[j].Max })
	return out
}

// Source returns the context's GSource (aio_get_g_source): the same one on every call.
// It can recurse and has no callback. The context holds a reference until Close; take
// your own with Ref if you keep the source longer.
func (c *Context) Source() *glibloop.Source { return c.src }

// Attach attaches the context's GSource to m (nil: the default context) and returns the
// source id, or 0 if the context is closed or already attached.
func (c *Context) Attach(m *glibloop.MainContext) uint {
	if c.closed.Load() {
		return 0
	}
	return c.src.Attach(m)
}

// Notify is QEMU's aio_notify: it makes the thread that drives the context re-evaluate
// its BHs, fds and timers. It writes the context's eventfd only when that thread is
// blocked or about to block; otherwise it costs two atomic operations. A Notify followed
// by Poll(true) returns false without blocking.
func (c *Context) Notify() {
	if !c.closed.Load() {
		c.r.Notify()
	}
}

// SetErrorHandler installs fn to receive errors the loop meets without a caller to
// return them to, such as a registered fd that was closed behind its back. nil restores
// the default, which logs them with log/slog at level Error.
func (c *Context) SetErrorHandler(fn func(error)) {
	if fn == nil {
		c.errHandler.Store(nil)
		return
	}
	c.errHandler.Store(&fn)
}

func (c *Context) reportError(err error) {
	if fn := c.errHandler.Load(); fn != nil {
		(*fn)(err)
		return
	}
	defaultErrorHandler(err)
}

// Close shuts the context down (aio_context_unref as the last reference). File I/O in
// flight (ReadAt, ...) is cancelled: queued requests complete with ECANCELED, those in
// the kernel get io_uring_prep_cancel, and Close waits for each completion, however long
// the kernel takes (a read it cannot cancel runs to its end), and runs its callback. It
// waits for thread-pool work in flight (see SetThreadPoolGrace) and delivers its
// completions, destroys the GSource, removes every fd handler and closes the context's
// own fds and its io_uring; a panic from a job's work or a completion is raised again,
// as a *glibloop.PanicError, only after all that. It returns an error that names every
// BH made with NewBH that was never deleted, every timer still armed, and thread pool
// work that did not finish; after Close every operation is a no-op or returns
// ErrClosed. Call it from the thread that drives the context, or once nothing drives it.
// Closing twice returns ErrClosed.
func (c *Context) Close() error {
	if c.closed.Swap(true) {
		return ErrClosed
	}
	filePanic := c.fileAIO.close() // its requests complete first; the fallback's through the pool
	problems, panicked := c.pool.close()
	if panicked == nil {
		panicked = filePanic
	}

	c.mu.Lock()
	t := c.table.Load()
	for fd := range t.slots {
		if n := t.slots[fd].Load(); n != nil {
			n.deleted.Store(true)
			t.slots[fd].Store(nil)
		}
	}
	c.mu.Unlock()

	c.bhMu.Lock()
	for bh := range c.liveBHs {
		problems = append(problems, fmt.Sprintf("BH %q was never deleted", bh.name))
	}
	c.bhMu.Unlock()
	if n := c.pendingOneshots(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d oneshot BH(s) never ran", n))
	}
	problems = append(problems, c.disarmAll()...)

	c.r.Close()
	c.fileAIO.release() // the ring's eventfd is no longer watched
	if panicked != nil {
		panic(panicked) // everything is released: raise it as the driving call would
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return &LeakError{Problems: problems}
}

// Closed reports whether Close was called (or the GSource was finalized).
func (c *Context) Closed() bool { return c.closed.Load() }

// finalize runs when GLib finalizes the context's GSource. If something other than Close
// dropped the last reference (a GMainContext that died with the source attached still
// holds none: the Context keeps its own), the context is closed from here on.
func (c *Context) finalize() {
	c.closed.Store(true)
	watch.Unregister(&c.slot)
}

// LeakError is returned by Close when the context still had live work.
type LeakError struct {
	Problems []string
}

func (e *LeakError) Error() string {
	return "aiosource: closed with live work: " + strings.Join(e.Problems, "; ")
}

// enter starts a walk (a dispatch or a Poll) and returns its level's buffers.
func (c *Context) enter() *level {
	if c.depth == len(c.levels) {
		c.levels = append(c.levels, &level{})
	}
	lv := c.levels[c.depth]
	c.depth++
	return lv
}

// leave ends a walk; it runs even when a callback panics.
func (c *Context) leave(lv *level) {
	for i := range lv.ready {
		lv.ready[i] = readyHandler{} // one entry, usually: cheaper than clear's bulk barrier
	}
	lv.ready = lv.ready[:0]
	c.depth--
	if c.depth == 0 {
		if c.ndeleted.Load() != 0 {
			c.freeDeleted() // only the outermost walker frees
		}
		c.maybeSweepClosedFDs()
	}
}

// dispatch is the GSource dispatch: BHs, then the fd handlers whose events the reactor
// harvested, then timers (aio_dispatch).
func (c *Context) dispatch(events []reactor.Event) {
	if c.closed.Load() {
		return
	}
	t := c.hold(&c.stats.dispatches, &c.home.nestedDispatches, "dispatch") // counts it (home.go)
	defer c.letGo(t)
	func() {
		lv := c.enter()
		defer c.leave(lv)
		// Resolved first, as aio_poll's fd monitor fills its ready list before
		// aio_bh_poll: a BH below may Poll again, which reuses the reactor's event
		// buffer. A handler that a BH removes is still skipped (its node is deleted),
		// and one that a nested walk dispatches is taken off this walk's list.
		lv.ready = c.resolve(events, lv.ready)
		// GLib never busy-polls: end the polling mode a Poll left started, as aio_prepare
		// does. What its final poll finds is dispatched below, where QEMU leaves it
		// marked for a later dispatch.
		c.pollSetStarted(false)
		c.bhPoll()
		lv.ready = c.addPollReady(lv.ready)
		c.dispatchReady(lv.ready, 0)
	}()
	c.runTimers()
}
