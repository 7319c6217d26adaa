package aiosource

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/glibaio/glibaio/internal/reactor"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/watch"
)

// FDHandler holds the callbacks of one fd (aio_set_fd_handler's io_read, io_write,
// io_poll and io_poll_ready). Read runs when the fd is readable, hung up or in error;
// Write when it is writable or in error. Poll is a busy-poll readiness check used by
// adaptive polling (SetPollParams); it is ignored without PollReady, which runs instead
// of Read and Write when Poll reported readiness. The zero FDHandler removes a handler.
//
// When every registered handler has Poll, a Poll that need not block (Poll(false))
// looks at no fd, as QEMU's aio_poll: see Context.Poll.
type FDHandler struct {
	Read, Write func()
	Poll        func() bool
	PollReady   func()
}

func (h FDHandler) isZero() bool { return h.Read == nil && h.Write == nil && h.Poll == nil }

// Conditions a handler reacts to, as poll(2)/epoll bits.
const (
	condRead  = unix.EPOLLIN | unix.EPOLLHUP | unix.EPOLLERR
	condWrite = unix.EPOLLOUT | unix.EPOLLERR
)

// fdNode is QEMU's AioHandler: one registration of one fd. Nodes are never changed in
// place: SetFDHandler makes a new node and marks the old one deleted, so a walker that
// already holds the old node sees the flag and skips it.
type fdNode struct {
	fd              int
	gen             uint32 // this registration's reactor tag: events of older ones are dropped
	h               FDHandler
	deleted         atomic.Bool
	wpRead, wpWrite *watch.Point // PollReady counts as read

	// io_poll_begin and io_poll_end (SetEventNotifierPoll); nil when not set. Set under
	// c.mu from any goroutine, read by the thread that drives the context.
	pollBeginEnd atomic.Pointer[pollBeginEnd]

	// Owned by the thread that drives the context.
	inPoll          bool   // on c.pollHandlers
	pollReady       bool   // busy polling saw it ready (and it is on c.pollFound)
	idleDropped     bool   // left polling idle (remove_idle_poll_handlers) and not fired since
	pollNS          int64  // this handler's adaptive busy-poll time
	pollIdleTimeout int64  // when it leaves polling if its Poll never succeeds (0: unset)
	readySeq        uint64 // the ready-list entry that owns it; a nested walk takes it over
}

// fdTable maps fd numbers to their live node. A walker reads it without a lock; writers
// hold c.mu and replace the whole table only to grow it.
type fdTable struct {
	slots []atomic.Pointer[fdNode]
}

func (t *fdTable) get(fd int32) *fdNode {
	if fd < 0 || int(fd) >= len(t.slots) {
		return nil
	}
	return t.slots[fd].Load()
}

// readyHandler is one entry of a walk's ready list. It is stale once seq is no longer
// its node's readySeq: a nested walk found the node ready too and dispatched it itself
// (QEMU's aio_add_ready_handler moves a node to the newest ready list).
type readyHandler struct {
	n       *fdNode
	revents uint32
	seq     uint64
}

// SetFDHandler registers h for fd (aio_set_fd_handler), replacing any handler fd had, or
// removes fd's handler when h is the zero FDHandler. A replaced or removed handler never
// runs again, even later in the pass that is dispatching right now, and even when it
// removes itself from its own callback. It returns ErrBadFD for a negative fd, the epoll
// error for an fd that cannot be watched (closed: EBADF; a regular file: EPERM),
// ErrNoHandler when removing a handler that is not there, and ErrClosed after Close.
func (c *Context) SetFDHandler(fd int, h FDHandler) error {
	if fd < 0 {
		return ErrBadFD
	}
	if h.PollReady == nil {
		h.Poll = nil // as QEMU: io_poll without io_poll_ready is dropped
	}
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		return ErrClosed
	}
	t := c.table.Load()
	old := t.get(int32(fd))

	if h.isZero() {
		if old == nil {
			c.mu.Unlock()
			return fmt.Errorf("%w %d", ErrNoHandler, fd)
		}
		// The kernel has already forgotten an fd that was closed: removal still succeeds.
		if err := c.r.Delete(fd); err != nil && !errors.Is(err, unix.EBADF) && !errors.Is(err, unix.ENOENT) {
			c.mu.Unlock()
			if errors.Is(err, reactor.ErrClosed) {
				return ErrClosed // the GSource was finalized behind Close's back
			}
			return fmt.Errorf("aiosource: remove fd %d: %w", fd, err)
		}
		c.unlinkLocked(t, old)
	} else {
		var events uint32
		if h.Read != nil {
			events |= unix.EPOLLIN
		}
		if h.Write != nil {
			events |= unix.EPOLLOUT
		}
		gen := c.nextGen()
		var err error
		if old == nil {
			err = c.r.Add(fd, events, gen)
		} else {
			err = c.r.Modify(fd, events, gen)
		}
		if err != nil {
			c.mu.Unlock()
			if errors.Is(err, reactor.ErrClosed) {
				return ErrClosed // the GSource was finalized behind Close's back
			}
			return fmt.Errorf("aiosource: watch fd %d: %w", fd, err)
		}
		n := &fdNode{fd: fd, gen: gen, h: h}
		if old != nil {
			// The statistics are the fd's: they carry over when its handler is replaced.
			n.wpRead, n.wpWrite = old.wpRead, old.wpWrite
			n.wpRead.SetFunc(h.Read)
			n.wpWrite.SetFunc(h.Write)
		} else {
			n.wpRead = watch.NewPoint("fd handler", fmt.Sprintf("fd %d read", fd), h.Read)
			n.wpWrite = watch.NewPoint("fd handler", fmt.Sprintf("fd %d write", fd), h.Write)
		}
		t = c.tableFor(fd)
		t.slots[fd].Store(n)
		delta := int32(0)
		if h.Poll == nil {
			delta++
		}
		if old != nil && old.h.Poll == nil {
			delta--
		}
		c.pollDisableCnt.Add(delta)
		if old == nil {
			c.nodes.Add(1)
		} else {
			c.retireLocked(old)
		}
	}
	c.mu.Unlock()
	c.Notify() // a blocked loop must rebuild its view of the fds
	return nil
}

// unlinkLocked removes n, its fd's live node, from the table and the counts, and
// retires it. c.mu is held.
func (c *Context) unlinkLocked(t *fdTable, n *fdNode) {
	t.slots[n.fd].Store(nil)
	c.nodes.Add(-1)
	if n.h.Poll == nil {
		c.pollDisableCnt.Add(-1)
	}
	c.retireLocked(n)
}

// retireLocked marks n removed: walkers that hold it see the flag and skip it, and the
// next outermost walker frees it. c.mu is held.
func (c *Context) retireLocked(n *fdNode) {
	n.deleted.Store(true)
	c.deleted = append(c.deleted, n)
	c.ndeleted.Store(int32(len(c.deleted)))
}

// tableFor returns a table with room for fd, growing it if needed. c.mu is held.
func (c *Context) tableFor(fd int) *fdTable {
	t := c.table.Load()
	if fd < len(t.slots) {
		return t
	}
	n := max(64, len(t.slots))
	for n <= fd {
		n *= 2
	}
	grown := &fdTable{slots: make([]atomic.Pointer[fdNode], n)}
	for i := range t.slots {
		grown.slots[i].Store(t.slots[i].Load())
	}
	c.table.Store(grown)
	return grown
}

// freeDeleted forgets removed nodes (aio_free_deleted_handlers). Only the outermost
// walker calls it, on the thread that drives the context; nested walkers leave it to
// the outermost one, so a node stays intact while any walk may still hold it.
func (c *Context) freeDeleted() {
	c.mu.Lock()
	dead := c.deleted
	c.deleted = nil
	c.ndeleted.Store(0)
	c.mu.Unlock()
	for _, n := range dead {
		c.removePollHandler(n)
		c.undropIdle(n)
		n.h = FDHandler{} // drop the callbacks; no walker can reach them any more
		n.pollBeginEnd.Store(nil)
	}
}

// nextGen returns a new registration tag (never 0). c.mu is held.
func (c *Context) nextGen() uint32 {
	c.gen++
	if c.gen == 0 {
		c.gen++
	}
	return c.gen
}

// resolve turns harvested events into the walk's ready list. A node is looked up once,
// here: a handler that replaces it during the walk is not visited in this walk. An event
// of an older registration of the fd (replaced, or closed and its number reused) is
// dropped: its tag is not the node's.
func (c *Context) resolve(events []reactor.Event, ready []readyHandler) []readyHandler {
	t := c.table.Load()
	for _, ev := range events {
		if n := t.get(ev.FD); n != nil && n.gen == ev.Tag {
			ready = c.addReady(ready, n, ev.Events)
		}
	}
	return ready
}

// addReady puts n on this walk's ready list, taking it from any outer walk's.
func (c *Context) addReady(ready []readyHandler, n *fdNode, revents uint32) []readyHandler {
	c.readySeq++
	n.readySeq = c.readySeq
	return append(ready, readyHandler{n: n, revents: revents, seq: c.readySeq})
}

// dispatchReady runs the ready list and reports progress (aio_dispatch_ready_handlers).
func (c *Context) dispatchReady(ready []readyHandler, blockNS int64) bool {
	progress := false
	maxNS := c.pollMaxNS.Load()
	for i := range ready {
		n := ready[i].n
		if n.readySeq != ready[i].seq {
			continue // a nested walk took it over and dispatched it
		}
		n.readySeq = 0
		if c.dispatchHandler(n, ready[i].revents) {
			progress = true
		}
		if maxNS != 0 && n.inPoll {
			c.adjustPollTime(n, blockNS)
		}
	}
	return progress
}

// dispatchHandler runs one handler's callbacks for revents (aio_dispatch_handler).
func (c *Context) dispatchHandler(n *fdNode, revents uint32) bool {
	pollReady := n.pollReady
	n.pollReady = false
	if n.deleted.Load() {
		return false
	}
	h := n.h
	if revents&reactor.EventNVAL != 0 {
		c.dropClosedFD(n)
		return false
	}
	// Handlers join busy polling the first time they fire, and after they left it idle,
	// the first time they fire again; one that joins while busy polling is started
	// begins polling now (aio_dispatch_handler).
	if !n.inPoll && h.Poll != nil {
		c.undropIdle(n)
		if be := n.pollBeginEnd.Load(); c.pollStarted && be != nil && be.begin != nil {
			be.begin()
		}
		c.addPollHandler(n)
	}
	if pollReady && revents == 0 && h.PollReady != nil {
		// Off the poll list while it runs, so a nested Poll cannot re-poll it and recurse.
		c.removePollHandler(n)
		defer func() {
			if !n.deleted.Load() && !n.inPoll {
				c.addPollHandler(n)
			}
		}()
		c.stats.handlers.Add(1)
		c.call(n.wpRead, h.PollReady)
		return true
	}
	progress := false
	if revents&condRead != 0 && h.Read != nil {
		c.stats.handlers.Add(1)
		c.call(n.wpRead, h.Read)
		progress = true
	}
	if revents&condWrite != 0 && h.Write != nil && !n.deleted.Load() {
		c.stats.handlers.Add(1)
		c.call(n.wpWrite, h.Write)
		progress = true
	}
	return progress
}

// dropClosedFD removes the handler of an fd that was closed while registered (the
// kernel reported POLLNVAL), so the loop does not spin on it, and reports it.
func (c *Context) dropClosedFD(n *fdNode) {
	c.mu.Lock()
	t := c.table.Load()
	if t.get(int32(n.fd)) == n {
		c.r.Delete(n.fd)
		c.unlinkLocked(t, n)
	}
	c.mu.Unlock()
	c.reportError(&ClosedFDError{FD: n.fd})
}

// epollSweepInterval is how often a context on the epoll backend looks for registered
// fds that were closed behind its back.
var epollSweepInterval = 5 * time.Second

// maybeSweepClosedFDs finds closed fds on the epoll backend, which, unlike poll, never
// reports them: every epollSweepInterval (checked every 256 outermost walks), one
// fcntl per registered fd (about 0.5 µs each).
func (c *Context) maybeSweepClosedFDs() {
	// Look at the clock once per 256 walks: the sweep costs nothing on the hot path.
	if c.walks++; c.walks&255 != 0 || c.nodes.Load() == 0 {
		return
	}
	now := watch.Nanotime()
	if now-c.lastSweep < int64(epollSweepInterval) {
		return
	}
	c.lastSweep = now
	if !c.r.EpollMode() {
		return
	}
	t := c.table.Load()
	for fd := range t.slots {
		n := t.slots[fd].Load()
		if n == nil || n.deleted.Load() {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); errors.Is(err, unix.EBADF) {
			c.dropClosedFD(n)
		}
	}
}

// ClosedFDError reports a registered fd that was closed without removing its handler
// first; the handler has been removed. Below 64 registered fds the loop sees this at
// once (POLLNVAL). On the epoll backend, which forgets a closed fd silently, a sweep
// finds it within 5 seconds; a closed fd whose number was already reused by another
// file cannot be told from a live one.
type ClosedFDError struct{ FD int }

func (e *ClosedFDError) Error() string {
	return fmt.Sprintf("aiosource: fd %d was closed while its handler was registered; handler removed", e.FD)
}

// Unwrap returns EBADF.
func (e *ClosedFDError) Unwrap() error { return unix.EBADF }

func defaultErrorHandler(err error) { slog.Error("aiosource", "err", err) }

// SetEventNotifier registers read to run when e is set (aio_set_event_notifier); a nil
// read removes it. read receives e and usually calls e.TestAndClear. It returns
// ErrClosed when e is closed, and SetFDHandler's errors otherwise. It panics if e is nil.
//
// A notifier that is also checked by busy polling (QEMU passes io_poll and
// io_poll_ready here) is registered with SetFDHandler(e.FD(), FDHandler{Read, Poll,
// PollReady}); SetEventNotifierPoll then adds its io_poll_begin and io_poll_end.
// Registering again, either way, makes a new handler without them, as in QEMU.
func (c *Context) SetEventNotifier(e *EventNotifier, read func(*EventNotifier)) error {
	if e == nil {
		panic("aiosource: SetEventNotifier: nil EventNotifier")
	}
	fd := e.FD()
	if fd < 0 {
		return ErrClosed
	}
	if read == nil {
		return c.SetFDHandler(fd, FDHandler{})
	}
	return c.SetFDHandler(fd, FDHandler{Read: func() { read(e) }})
}

// SetEventNotifierPoll sets the callbacks that busy polling calls for the handler of e's
// fd (aio_set_event_notifier_poll): begin when polling mode starts for it (the loop
// spins on its Poll callback instead of sleeping in the kernel, so a device may stop
// sending notifications, for instance), end when polling mode ends: before Poll blocks,
// before a GLib iteration dispatches the context, or when the handler leaves polling
// after 7 s without a successful Poll. After end, the handler's Poll callback runs once
// more, so an event that came after the last poll and before end re-enabled
// notifications is not lost (poll_set_started). nil for both clears them.
//
// The callbacks belong to the handler registered now: SetEventNotifier or SetFDHandler
// on the same fd makes a new handler without them, as in QEMU, so set them again after
// either. They run on the thread that drives the context: begin only in Poll, as GLib
// iterations never busy-poll, and end also in the GLib iteration that follows a Poll
// which left polling mode started. It returns ErrClosed when e or the context is closed
// and ErrNoHandler when no handler is registered for e's fd (QEMU ignores that call).
// It panics if e is nil.
func (c *Context) SetEventNotifierPoll(e *EventNotifier, begin, end func(*EventNotifier)) error {
	if e == nil {
		panic("aiosource: SetEventNotifierPoll: nil EventNotifier")
	}
	fd := e.FD()
	if fd < 0 {
		return ErrClosed
	}
	var be *pollBeginEnd
	if begin != nil || end != nil {
		be = &pollBeginEnd{}
		if begin != nil {
			be.begin = func() { begin(e) }
		}
		if end != nil {
			be.end = func() { end(e) }
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	n := c.table.Load().get(int32(fd))
	if n == nil {
		return fmt.Errorf("%w %d", ErrNoHandler, fd)
	}
	n.pollBeginEnd.Store(be)
	return nil
}

// pollBeginEnd holds a handler's io_poll_begin and io_poll_end; either may be nil.
type pollBeginEnd struct{ begin, end func() }
