package aiosource

import "sync/atomic"

// Oneshot BHs (aio_bh_schedule_oneshot) go through a bounded ring instead of a BH node
// each: QEMU allocates and frees a QEMUBH per oneshot, which in Go would mean a heap
// object (or a sync.Pool round trip between the producers' Ps and the loop's P) per
// event. The ring is Vyukov's bounded queue, with many producers and one consumer, the
// thread that drives the context. When the ring is full, ScheduleOneshot falls back to
// a pooled BH on the ordinary list, so scheduling never blocks and never fails.
//
// Order: within a pass, the ring's oneshots run first, in the order their slots were
// claimed, then the BH list, newest first as in QEMU. The spec guarantees no order
// between BHs, and nothing here relies on one.

// oneshotRingSize is the number of slots; a power of two.
const oneshotRingSize = 1024

// oneshotFullRetries is how many times ScheduleOneshot yields to the loop when the ring
// is full before it queues the oneshot on the BH list.
const oneshotFullRetries = 8

// oneshotSlot is one ring entry. seq encodes its state for position pos (pos mod size is
// the slot's index): seq == pos, free for the producer that claims pos; seq == pos+1, fn
// written for the consumer; seq == pos+size, consumed and free for the next lap.
type oneshotSlot struct {
	seq atomic.Uint64
	fn  func() // written only by the slot's producer before seq = pos+1 (release),
	// read and cleared only by the consumer after it loads seq == pos+1 (acquire)
}

type oneshotRing struct {
	tail  atomic.Uint64 // the next position to claim (producers, CAS)
	_     [56]byte      // keep the producers' line away from the consumer's head
	head  uint64        // the next position to run (loop thread only)
	slots [oneshotRingSize]oneshotSlot
}

func (q *oneshotRing) init() {
	for i := range q.slots {
		q.slots[i].seq.Store(uint64(i))
	}
}

// push claims a slot and stores fn in it; it reports false when the ring is full.
func (q *oneshotRing) push(fn func()) bool {
	for {
		pos := q.tail.Load()
		s := &q.slots[pos&(oneshotRingSize-1)]
		switch seq := s.seq.Load(); {
		case seq == pos:
			if q.tail.CompareAndSwap(pos, pos+1) {
				s.fn = fn
				s.seq.Store(pos + 1) // publish fn to the consumer
				return true
			}
		case seq < pos:
			return false // the consumer has not freed this slot from the last lap yet
		}
		// seq > pos: another producer claimed pos first; load the tail again.
	}
}

// ready reports whether the oldest oneshot is written and can run now. A slot claimed
// but not yet written does not count: its producer notifies the loop once it is.
func (q *oneshotRing) ready() bool {
	return q.slots[q.head&(oneshotRingSize-1)].seq.Load() == q.head+1
}

// pending counts the claimed slots that have not run (for Close).
func (q *oneshotRing) pending() int { return int(q.tail.Load() - q.head) }

// pop takes the oldest oneshot if it was claimed before position limit and is written.
func (q *oneshotRing) pop(limit uint64) (func(), bool) {
	if q.head >= limit {
		return nil, false
	}
	s := &q.slots[q.head&(oneshotRingSize-1)]
	if s.seq.Load() != q.head+1 {
		return nil, false // claimed, not yet written
	}
	fn := s.fn
	s.fn = nil                            // drop the reference before the slot is reused
	s.seq.Store(q.head + oneshotRingSize) // free the slot for the producer one lap ahead
	q.head++
	return fn, true
}

// runOneshots runs the ring's oneshots that were claimed before limit, the tail when the
// pass began: one scheduled by a callback of this pass runs in the next pass. The head
// moves before each callback, so a panic loses nothing and a nested pass continues
// where this one stands. The run is timed with one clock read per callback.
func (c *Context) runOneshots(limit uint64) bool {
	fn, ok := c.oneshots.pop(limit)
	if !ok {
		return false
	}
	st := c.slot.Begin(c.oneshotWP)
	finished := false
	defer func() {
		if finished {
			c.slot.Restore(st)
		} else {
			c.slot.End(st) // a callback panicked: count its time
		}
	}()
	for ok {
		c.stats.bhs.Add(1)
		fn()
		st = c.slot.Lap(st)
		fn, ok = c.oneshots.pop(limit)
	}
	finished = true
	return true
}
