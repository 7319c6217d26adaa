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
// claimed (one whose producer has not finished writing it runs in a later pass), then
// the BH list, newest first as in QEMU's aio_bh_poll. QEMU promises no order between
// the BHs of one pass, and nothing here relies on one.

// oneshotRingSize is the number of slots; a power of two.
const oneshotRingSize = 1024

// oneshotFullRetries is how many times ScheduleOneshot yields to the loop when the ring
// is full before it queues the oneshot on the BH list.
const oneshotFullRetries = 8

// oneshotSlot is one ring entry. seq encodes its state for position pos (pos mod size is
// the slot's index): seq == pos, free for the producer that claims pos (or claimed and
// being written); seq == pos+1, fn written for the consumer; seq == pos+2, consumed out
// of order and held (see take); seq == pos+size, consumed and free for the next lap.
type oneshotSlot struct {
	seq atomic.Uint64
	fn  func() // written only by the slot's producer before seq = pos+1 (release),
	// read and cleared only by the consumer after it loads seq == pos+1 (acquire)
}

type oneshotRing struct {
	tail  atomic.Uint64 // the next position to claim (producers, CAS)
	_     [56]byte      // keep the producers' line away from the consumer's head
	head  uint64        // the oldest position not yet freed (loop thread only)
	held  int           // slots after head consumed out of order (loop thread only)
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

// A producer may be descheduled between claiming its slot and writing it. The consumer
// does not wait for it: it runs the written slots behind it, out of order, so every
// ScheduleOneshot that has returned runs in the next pass, as with QEMU's list. A slot
// consumed out of order is held (seq = pos+2) rather than freed: only head frees slots,
// in order, so no producer can lap a position the head has not passed, and head never
// mistakes a slot of a later lap for one it consumed. For pos in [head, tail), seq is
// pos (claimed, being written), pos+1 (written) or pos+2 (consumed, held); a held slot
// reads as full to a producer one lap ahead (pos+2 < pos+size).

// take takes the oneshot at pos if it is written and not yet consumed.
func (q *oneshotRing) take(pos uint64) (func(), bool) {
	s := &q.slots[pos&(oneshotRingSize-1)]
	if s.seq.Load() != pos+1 {
		return nil, false // being written (its producer notifies), or consumed already
	}
	fn := s.fn
	s.fn = nil // drop the reference before the slot is reused
	if pos != q.head {
		s.seq.Store(pos + 2) // held until head gets here
		q.held++
		return fn, true
	}
	// Free this slot and the held ones after it for the producers one lap ahead.
	s.seq.Store(pos + oneshotRingSize)
	q.head++
	for q.held > 0 {
		h := &q.slots[q.head&(oneshotRingSize-1)]
		if h.seq.Load() != q.head+2 {
			break
		}
		h.seq.Store(q.head + oneshotRingSize)
		q.head++
		q.held--
	}
	return fn, true
}

// ready reports whether a written oneshot waits. Slots claimed but not yet written do
// not count: their producers notify the loop once they are.
func (q *oneshotRing) ready() bool {
	tail := q.tail.Load()
	for pos := q.head; pos < tail; pos++ {
		if q.slots[pos&(oneshotRingSize-1)].seq.Load() == pos+1 {
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
		if q.slots[pos&(oneshotRingSize-1)].seq.Load() != pos+2 {
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
		return false
	}
	st := c.slot.Begin(c.oneshotWP)
	finished := false
	ran := uint64(0) // counted in Stats once per run, not once per oneshot
	defer func() {
		c.stats.bhs.Add(ran)
		if finished {
			c.slot.Restore(st)
		} else {
			c.stats.bhs.Add(1) // the one that panicked
			c.slot.End(st)     // and its time
		}
	}()
	for ok {
		fn()
		ran++
		st = c.slot.Lap(st)
		fn, ok = next()
	}
	finished = true
	return true
}
