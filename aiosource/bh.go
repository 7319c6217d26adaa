package aiosource

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/glibaio/glibaio/internal/reactor"

	"github.com/glibaio/glibaio/internal/watch"
)

// BH flags (QEMU's BH_*).
const (
	bhPending   = 1 << iota // linked into the context's list or a slice
	bhScheduled             // run the callback when dequeued
	bhDeleted               // free when dequeued, never run again
	bhOneshot               // free after running once
	bhIdle                  // does not count as progress; runs within 10 ms
)

// BH is a bottom half (QEMUBH): a callback that any goroutine schedules and the context
// runs on its own thread, at the start of its next dispatch or Poll.
type BH struct {
	ctx   *Context
	name  string
	fn    func()
	flags atomic.Uint32
	next  *BH // list link, written by the goroutine that pushes the BH while it owns it
	wp    *watch.Point
}

// bhSlice is the part of the BH list that one (possibly nested) bhPoll took.
type bhSlice struct{ head *BH }

var oneshotPool = sync.Pool{New: func() any { return new(BH) }}

// NewBH creates a BH that runs fn (aio_bh_new_full). name identifies it in Close's leak
// report and in statistics. Delete it when it is no longer needed. After Close it
// returns a BH whose methods do nothing. It panics if fn is nil.
func (c *Context) NewBH(name string, fn func()) *BH {
	if fn == nil {
		panic("aiosource: NewBH: nil fn")
	}
	b := &BH{ctx: c, name: name, fn: fn, wp: watch.NewPoint("BH", name, fn)}
	c.bhMu.Lock()
	if c.closed.Load() {
		b.flags.Store(bhDeleted)
	} else {
		c.liveBHs[b] = struct{}{}
	}
	c.bhMu.Unlock()
	return b
}

// Name returns the name given to NewBH.
func (b *BH) Name() string { return b.name }

// enqueue is QEMU's aio_bh_enqueue: lock-free from any goroutine.
func (b *BH) enqueue(flags uint32) {
	c := b.ctx
	old := b.flags.Or(bhPending | flags)
	if old&bhPending == 0 {
		// Push onto the head. b.next is ours to write: nobody else links b until
		// PENDING is cleared again, after the consumer has read b.next.
		for {
			head := c.bhList.Load()
			b.next = head
			if c.bhList.CompareAndSwap(head, b) {
				break
			}
		}
	}
	// Publish the work to the GSource prepare/check before the notification.
	if flags&bhIdle != 0 {
		c.r.SetReady(reactor.ReadyIdle)
	} else {
		c.r.SetReady(reactor.ReadyNow)
	}
	c.r.Notify()
}

// Schedule makes the BH run once in the context's next BH pass (qemu_bh_schedule).
// Scheduling it again before it runs has no further effect. From a BH callback, it runs
// in the next pass, not the current one. Any goroutine may call it: it takes no lock
// and, when the loop is busy, makes no syscall. After Delete or Close it does nothing.
func (b *BH) Schedule() {
	if b.flags.Load()&bhDeleted != 0 || b.ctx.closed.Load() {
		return
	}
	b.enqueue(bhScheduled)
}

// ScheduleIdle is Schedule for work that may wait: the BH runs within 10 ms and does
// not count as progress for Poll (qemu_bh_schedule_idle). As in QEMU, a BH scheduled
// idle stays idle until it runs, even if it is scheduled normally meanwhile.
func (b *BH) ScheduleIdle() {
	if b.flags.Load()&bhDeleted != 0 || b.ctx.closed.Load() {
		return
	}
	b.enqueue(bhScheduled | bhIdle)
}

// Cancel unschedules the BH (qemu_bh_cancel). It does not notify the loop; the BH stays
// queued and is dequeued without running. It is racy unless called from the thread that
// drives the context, as in QEMU.
func (b *BH) Cancel() { b.flags.And(^uint32(bhScheduled)) }

// Delete frees the BH (qemu_bh_delete): it never runs again, even if it was scheduled.
// It may be called from the BH's own callback. Deleting twice does nothing.
func (b *BH) Delete() {
	c := b.ctx
	c.bhMu.Lock()
	_, live := c.liveBHs[b]
	delete(c.liveBHs, b)
	c.bhMu.Unlock()
	if !live || c.closed.Load() {
		b.flags.Or(bhDeleted)
		return
	}
	b.enqueue(bhDeleted)
}

// ScheduleOneshot runs fn once in the context's next BH pass (aio_bh_schedule_oneshot).
// Any goroutine may call it; it takes no lock and allocates nothing while the context's
// oneshot ring (1024 entries) has room. When the ring is full, the oneshot goes on the
// BH list in a pooled node instead. After Close it does nothing. It panics if fn is nil.
func (c *Context) ScheduleOneshot(fn func()) {
	if fn == nil {
		panic("aiosource: ScheduleOneshot: nil fn")
	}
	if c.closed.Load() {
		return
	}
	for try := 0; ; try++ {
		if c.oneshots.push(fn) {
			// The seq store in push published fn before the ready bit (both sequentially
			// consistent), so a loop that sees the bit finds the slot written.
			c.r.SetReady(reactor.ReadyNow)
			c.r.Notify()
			return
		}
		if try == oneshotFullRetries {
			break
		}
		// Full: the loop is behind. Let it catch up rather than queue work behind the
		// ring; after a few tries (the caller may be the loop itself) take the list. No
		// Notify here: the producers of the oneshots filling the ring already notified.
		runtime.Gosched()
	}
	b := oneshotPool.Get().(*BH)
	b.ctx, b.name, b.fn = c, "oneshot", fn
	b.flags.Store(0)
	b.enqueue(bhScheduled | bhOneshot)
}

// bhPoll runs the scheduled BHs and reports whether a non-idle one ran (aio_bh_poll).
// It may nest: a nested pass also finishes the slices of the passes around it.
func (c *Context) bhPoll() bool {
	// Every ScheduleOneshot, Schedule and Delete sets the ready word after it queues its
	// BH, and a pass that leaves work behind sets it again: with the word clear and no
	// slice left, anything queued now is still setting it, and runs in the next pass.
	// That costs an fd-only dispatch two loads instead of two atomic swaps.
	if c.ready.Load() == 0 && len(c.slices) == 0 {
		return false // inlined: an fd-only walk makes no call here
	}
	return c.bhPollSlow()
}

func (c *Context) bhPollSlow() bool {
	// Clear the ready word before taking the list: a BH pushed after this sets it again.
	c.r.TakeReady()
	limit := c.oneshots.tail.Load()
	head := c.bhList.Swap(nil)
	if head == nil && len(c.slices) == 0 && !c.oneshots.ready() {
		return false
	}
	s := c.newSlice(head)
	c.slices = append(c.slices, s)
	// If a callback panics, the rest of the slices runs in the next pass: keep the
	// GSource ready for it.
	defer func() {
		if !c.closed.Load() && (len(c.slices) > 0 || c.oneshots.ready()) {
			c.r.SetReady(reactor.ReadyNow)
		}
	}()
	progress := c.runOneshots(limit)
	// A Close from a callback ends the pass: Close counted what is left as never run.
	for len(c.slices) > 0 && !c.closed.Load() {
		s := c.slices[0]
		b := s.head
		if b == nil {
			copy(c.slices, c.slices[1:])
			c.slices[len(c.slices)-1] = nil
			c.slices = c.slices[:len(c.slices)-1]
			c.freeSlices = append(c.freeSlices, s)
			continue
		}
		s.head = b.next
		b.next = nil
		flags := b.flags.And(^uint32(bhPending | bhScheduled | bhIdle)) // dequeue
		if flags&(bhScheduled|bhDeleted) == bhScheduled {
			if flags&bhIdle == 0 {
				progress = true
			}
			c.stats.bhs.Add(1)
			if flags&bhOneshot != 0 {
				fn := b.fn
				c.freeOneshot(b)
				c.call(c.oneshotWP, fn)
				continue
			}
			c.call(b.wp, b.fn)
		} else if flags&bhOneshot != 0 {
			c.freeOneshot(b)
		}
	}
	return progress
}

func (c *Context) newSlice(head *BH) *bhSlice {
	if n := len(c.freeSlices); n > 0 {
		s := c.freeSlices[n-1]
		c.freeSlices = c.freeSlices[:n-1]
		s.head = head
		return s
	}
	return &bhSlice{head: head}
}

// freeOneshot returns a oneshot BH to the pool. It is released before its callback runs,
// which may schedule more oneshots that reuse it.
func (c *Context) freeOneshot(b *BH) {
	b.ctx, b.fn = nil, nil
	oneshotPool.Put(b)
}

// bhTimeout returns the BH part of the poll timeout: 0 if a BH is scheduled, 10 ms if
// only idle ones are, -1 otherwise (aio_compute_bh_timeout over the list and slices).
func (c *Context) bhTimeout() int64 {
	t := int64(-1)
	scan := func(b *BH) bool {
		for ; b != nil; b = b.next {
			f := b.flags.Load()
			if f&(bhScheduled|bhDeleted) == bhScheduled {
				if f&bhIdle == 0 {
					t = 0
					return true
				}
				t = idleBHTimeoutNS
			}
		}
		return false
	}
	if c.oneshots.ready() || scan(c.bhList.Load()) {
		return 0
	}
	for _, s := range c.slices {
		if scan(s.head) {
			return 0
		}
	}
	return t
}

const idleBHTimeoutNS = 10_000_000

// pendingOneshots counts the oneshot BHs still queued (for Close).
func (c *Context) pendingOneshots() int {
	n := c.oneshots.pending()
	count := func(b *BH) {
		for ; b != nil; b = b.next {
			if f := b.flags.Load(); f&bhOneshot != 0 && f&bhScheduled != 0 {
				n++
			}
		}
	}
	count(c.bhList.Load())
	for _, s := range c.slices {
		count(s.head)
	}
	return n
}
