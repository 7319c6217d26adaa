package aiosource

import (
	"sync/atomic"

	"github.com/glibaio/glibaio/internal/watch"
)

// Oneshot BHs (aio_bh_schedule_oneshot) go through a bounded ring instead of a BH node
// each: QEMU allocates and frees a QEMUBH per oneshot, which in Go would mean a heap
// object (or a sync.Pool round trip between the producers' Ps and the loop's P) per
// event. The ring is a bounded queue with many producers and one consumer, the thread
// that drives the context, after Vyukov's: producers claim positions with a CAS on the
// tail and publish each slot with its sequence number. The consumer frees slots in
// batches instead of one by one: it publishes how far it has consumed (freed), and a
// producer may claim a position only one lap past it, so consuming a oneshot costs the
// loop no atomic write. When the ring is full, ScheduleOneshot falls back to a pooled
// BH on the ordinary list, so scheduling never blocks and never fails.
//
// Order: within a pass, the ring's oneshots run first, in the order their slots were
// claimed (one whose producer has not finished writing it runs in a later pass), then
// the BH list, newest first as in QEMU's aio_bh_poll. QEMU promises no order between
// the BHs of one pass, and nothing here relies on one.

// oneshotRingSize is the number of slots; a power of two.
const oneshotRingSize = 1024

// oneshotFreeBatch is how many consumed positions the consumer lets pass before it
// publishes them to the producers in the middle of a run (a run publishes at its end).
const oneshotFreeBatch = 64

// oneshotFullRetries is how many times ScheduleOneshot yields to the loop when the ring
// is full before it queues the oneshot on the BH list.
const oneshotFullRetries = 8

// oneshotSlot is one ring entry, used by positions pos, pos+size, pos+2*size... (pos mod
// size is its index). For position pos: seq == pos+1 once its producer wrote fn (any
// other value: claimed and being written, or a position of an earlier lap); fn != nil
// while it waits for the consumer, nil once consumed.
type oneshotSlot struct {
	seq atomic.Uint64
	fn  func() // written only by the slot's producer before seq = pos+1 (release),
	// read and cleared only by the consumer after it loads seq == pos+1 (acquire); the
	// next lap's producer writes it only after it loaded a freed past pos, which the
	// consumer stored after clearing it
}

type oneshotRing struct {
	tail  atomic.Uint64 // the next position to claim (producers, CAS)
	_     [56]byte      // keep the producers' line away from the consumer's
	freed atomic.Uint64 // positions below it are consumed: their slots serve the next lap
	_     [56]byte
	head  uint64 // the oldest position not yet consumed (loop thread only)
	pub   uint64 // the value of freed (loop thread only)
	held  int    // positions after head consumed out of order (loop thread only)
	slots [oneshotRingSize]oneshotSlot
}

func (q *oneshotRing) init() {}

// push claims a slot and stores fn in it; it reports false when the ring is full.
func (q *oneshotRing) push(fn func()) bool {
	for {
		pos := q.tail.Load()
		if pos >= q.freed.Load()+oneshotRingSize {
			return false // the consumer has not freed this slot from the last lap yet
		}
		if q.tail.CompareAndSwap(pos, pos+1) {
			s := &q.slots[pos&(oneshotRingSize-1)]
			s.fn = fn
			s.seq.Store(pos + 1) // publish fn to the consumer
			return true
		}
		// another producer claimed pos first; load the tail again.
	}
}

// A producer may be descheduled between claiming its slot and writing it. The consumer
// does not wait for it: it runs the written slots behind it, out of order, so every
// ScheduleOneshot that has returned runs in the next pass, as with QEMU's list. A slot
// consumed out of order is held (fn cleared, seq still pos+1): only head advances, in
// order, over consumed positions, and only positions below head are published as
// freed, so no producer can lap a position the head has not passed. For pos in [head,
// tail): seq != pos+1 (claimed, being written), seq == pos+1 with fn set (written), or
// seq == pos+1 with fn nil (consumed, held).

// consumed reports whether position pos, at or after head, was consumed out of order.
func (q *oneshotRing) consumed(pos uint64) bool {
	s := &q.slots[pos&(oneshotRingSize-1)]
	return s.seq.Load() == pos+1 && s.fn == nil
}

// take takes the oneshot at pos if it is written and not yet consumed.
func (q *oneshotRing) take(pos uint64) (func(), bool) {
	if pos < q.head {
		// Consumed (by a nested pass, say), and its slot may already be freed and
		// written again for the next lap: not to be read for pos.
		return nil, false
	}
	s := &q.slots[pos&(oneshotRingSize-1)]
	if s.seq.Load() != pos+1 {
		return nil, false // being written (its producer notifies), or another lap's
	}
	fn := s.fn
	if fn == nil {
		return nil, false // consumed already
	}
	s.fn = nil // consumed; and the reference dropped before the slot is reused
	if pos != q.head {
		q.held++ // held until head gets here
		return fn, true
	}
	q.head++
	for q.held > 0 && q.consumed(q.head) {
		q.head++
		q.held--
	}
	if q.head-q.pub >= oneshotFreeBatch {
		q.publish()
	}
	return fn, true
}

// publish hands the slots of the positions consumed so far to the producers.
func (q *oneshotRing) publish() {
	if q.pub != q.head {
		q.pub = q.head
		q.freed.Store(q.head)
	}
}

// ready reports whether a written oneshot waits. Slots claimed but not yet written do
// not count: their producers notify the loop once they are.
func (q *oneshotRing) ready() bool {
	tail := q.tail.Load()
	for pos := q.head; pos < tail; pos++ {
		s := &q.slots[pos&(oneshotRingSize-1)]
		if s.seq.Load() == pos+1 && s.fn != nil {
			return true
		}
	}
	return false
}

// pending counts the claimed oneshots that have not run (for Close).
func (q *oneshotRing) pending() int {
	n := 0
	tail := q.tail.Load()
	for pos := q.head; pos < tail; pos++ {
		if !q.consumed(pos) {
			n++
		}
	}
	return n
}

// runOneshots runs the ring's oneshots that were claimed before limit, the tail when the
// pass began: one scheduled by a callback of this pass runs in the next pass. Each is
// taken before its callback runs, so a panic loses nothing and a nested pass skips what
// this one ran. A Close from a callback stops the pass: Close has already counted the
// rest as never run. The run is timed with one clock read per callback.
func (c *Context) runOneshots(limit uint64) bool {
	pos := c.oneshots.head
	next := func() (func(), bool) {
		for ; pos < limit && !c.closed.Load(); pos++ {
			if fn, ok := c.oneshots.take(pos); ok {
				pos++
				return fn, true
			}
		}
		return nil, false
	}
	fn, ok := next()
	if !ok {
		c.oneshots.publish()
		return false
	}
	var st watch.State
	c.slot.Enter(&st, c.oneshotWP)
	finished := false
	ran := uint64(0) // counted in Stats once per run, not once per oneshot
	defer func() {
		c.oneshots.publish()
		c.stats.bhs.Add(ran)
		if finished {
			c.slot.Restore(&st)
		} else {
			c.stats.bhs.Add(1) // the one that panicked
			c.slot.Leave(&st)  // and its time
		}
	}()
	for ok {
		fn()
		ran++
		c.slot.Lap(&st)
		fn, ok = next()
	}
	finished = true
	return true
}
