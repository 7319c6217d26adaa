package aiosource

import (
	"sync"
)

// Lockable is QEMU's QemuLockable: a lock that CoQueue.Wait releases while it waits.
// *CoMutex and *sync.Mutex are Lockables.
type Lockable interface {
	Lock()
	Unlock()
}

// mustSelf returns the running coroutine, or panics naming op as QEMU asserts
// qemu_in_coroutine.
func mustSelf(op string) *Coroutine {
	co := Self()
	if co == nil {
		panic("aiosource: " + op + ": not in a coroutine")
	}
	return co
}

// CoMutex is QEMU's CoMutex: a mutex for coroutines, which a coroutine that waits for it
// yields instead of blocking its thread. It is fair: Unlock hands the lock to the
// longest waiter, which resumes through its own context (a waiter of another context,
// on another thread, resumes there from a BH). Lock and Unlock are for coroutines only;
// the zero value is an unlocked mutex (qemu_co_mutex_init).
type CoMutex struct {
	mu      sync.Mutex // guards the fields below, never held across a yield
	locked  bool
	holder  *Coroutine
	waiters coList
}

// Lock takes the mutex, yielding while another coroutine holds it
// (qemu_co_mutex_lock).
func (m *CoMutex) Lock() {
	self := mustSelf("qemu_co_mutex_lock")
	m.mu.Lock()
	if !m.locked {
		m.locked = true
		m.holder = self
		m.mu.Unlock()
		self.locksHeld++
		return
	}
	m.waiters.push(self)
	m.mu.Unlock()
	self.Yield() // Unlock handed the lock over before it woke us
	self.locksHeld++
}

// Unlock releases the mutex, or hands it to the first waiter, which is woken
// (qemu_co_mutex_unlock). Unlocking a mutex the caller does not hold panics.
func (m *CoMutex) Unlock() {
	self := mustSelf("qemu_co_mutex_unlock")
	m.mu.Lock()
	if !m.locked || m.holder != self {
		m.mu.Unlock()
		panic("aiosource: qemu_co_mutex_unlock: the mutex is not held by this coroutine")
	}
	next := m.waiters.pop()
	if next == nil {
		m.locked = false
		m.holder = nil
		m.mu.Unlock()
		self.locksHeld--
		return
	}
	m.holder = next // the hand-off: the mutex never looks free, nobody barges in
	m.mu.Unlock()
	self.locksHeld--
	next.Wake()
}

// AssertLocked panics unless the calling coroutine holds the mutex
// (qemu_co_mutex_assert_locked).
func (m *CoMutex) AssertLocked() {
	self := Self()
	m.mu.Lock()
	ok := m.locked && m.holder == self && self != nil
	m.mu.Unlock()
	if !ok {
		panic("aiosource: qemu_co_mutex_assert_locked: the mutex is not held by this coroutine")
	}
}

// CoQueue is QEMU's CoQueue: a FIFO of coroutines waiting for a condition, a condition
// variable for coroutines. It has no lock of its own: use it under the Lockable its
// waiters pass to Wait, or from one thread. The zero value is an empty queue.
type CoQueue struct {
	q coList
}

// Wait queues the calling coroutine at the tail, releases lock (if not nil), yields
// until woken, and takes lock again (qemu_co_queue_wait). Wakeups are not handed the
// lock: re-check the condition after Wait returns.
func (q *CoQueue) Wait(lock Lockable) { q.wait(lock, false) }

// WaitFront is Wait with the coroutine queued at the head, for one that was woken but
// must wait again without losing its turn (CO_QUEUE_WAIT_FRONT).
func (q *CoQueue) WaitFront(lock Lockable) { q.wait(lock, true) }

func (q *CoQueue) wait(lock Lockable, front bool) {
	self := mustSelf("qemu_co_queue_wait")
	if front {
		q.q.pushFront(self)
	} else {
		q.q.push(self)
	}
	if lock != nil {
		lock.Unlock()
	}
	self.Yield()
	if lock != nil {
		lock.Lock()
	}
}

// Next wakes the first waiter and reports whether there was one (qemu_co_queue_next).
// Outside a coroutine, a waiter of the current context runs before Next returns; from a
// coroutine, after the caller yields.
func (q *CoQueue) Next() bool {
	co := q.q.pop()
	if co == nil {
		return false
	}
	co.Wake()
	return true
}

// EnterNext is Next with lock released around the wake, for callers that hold it
// (qemu_co_enter_next).
func (q *CoQueue) EnterNext(lock Lockable) bool {
	co := q.q.pop()
	if co == nil {
		return false
	}
	if lock != nil {
		lock.Unlock()
	}
	co.Wake()
	if lock != nil {
		lock.Lock()
	}
	return true
}

// RestartAll wakes every waiter, in order (qemu_co_queue_restart_all).
func (q *CoQueue) RestartAll() {
	for q.Next() {
	}
}

// Empty reports whether no coroutine waits (qemu_co_queue_empty).
func (q *CoQueue) Empty() bool { return q.q.empty() }

// CoRwlock is QEMU's CoRwlock: a readers-writer lock for coroutines, fair in arrival
// order. A waiting writer blocks new readers; queued readers are admitted together. The
// zero value is an unlocked lock (qemu_co_rwlock_init).
type CoRwlock struct {
	mu      sync.Mutex // bookkeeping only (QEMU uses an internal CoMutex)
	owners  int        // readers holding it; -1: a writer
	tickets []rwTicket // waiters, in order
}

type rwTicket struct {
	write bool
	co    *Coroutine
}

// RdLock takes the lock for reading (qemu_co_rwlock_rdlock): at once if it is free, or
// held by readers with no one waiting; otherwise the caller waits its turn.
func (l *CoRwlock) RdLock() {
	self := mustSelf("qemu_co_rwlock_rdlock")
	l.mu.Lock()
	if l.owners == 0 || (l.owners > 0 && len(l.tickets) == 0) {
		l.owners++
		l.mu.Unlock()
	} else {
		l.tickets = append(l.tickets, rwTicket{co: self})
		l.mu.Unlock()
		self.Yield() // admitted: owners counts us already
		l.wakeOne()
	}
	self.locksHeld++
}

// WrLock takes the lock for writing (qemu_co_rwlock_wrlock).
func (l *CoRwlock) WrLock() {
	self := mustSelf("qemu_co_rwlock_wrlock")
	l.mu.Lock()
	if l.owners == 0 {
		l.owners = -1
		l.mu.Unlock()
	} else {
		l.tickets = append(l.tickets, rwTicket{write: true, co: self})
		l.mu.Unlock()
		self.Yield() // admitted as the writer
	}
	self.locksHeld++
}

// Unlock releases a read or write hold and admits the next waiter
// (qemu_co_rwlock_unlock).
func (l *CoRwlock) Unlock() {
	self := mustSelf("qemu_co_rwlock_unlock")
	l.mu.Lock()
	switch {
	case l.owners > 0:
		l.owners--
	case l.owners == -1:
		l.owners = 0
	default:
		l.mu.Unlock()
		panic("aiosource: qemu_co_rwlock_unlock: the lock is not held")
	}
	l.mu.Unlock()
	self.locksHeld--
	l.wakeOne()
}

// Upgrade turns the caller's read hold into a write hold (qemu_co_rwlock_upgrade): at
// once if it is the only reader and nobody waits; otherwise it queues behind the
// writers that came first.
func (l *CoRwlock) Upgrade() {
	self := mustSelf("qemu_co_rwlock_upgrade")
	l.mu.Lock()
	if l.owners <= 0 {
		l.mu.Unlock()
		panic("aiosource: qemu_co_rwlock_upgrade: not held for reading")
	}
	if l.owners == 1 && len(l.tickets) == 0 {
		l.owners = -1
		l.mu.Unlock()
		return
	}
	l.owners--
	l.tickets = append(l.tickets, rwTicket{write: true, co: self})
	l.mu.Unlock()
	l.wakeOne()
	self.Yield()
}

// Downgrade turns the caller's write hold into a read hold and admits waiting readers
// (qemu_co_rwlock_downgrade). It never waits.
func (l *CoRwlock) Downgrade() {
	mustSelf("qemu_co_rwlock_downgrade")
	l.mu.Lock()
	if l.owners != -1 {
		l.mu.Unlock()
		panic("aiosource: qemu_co_rwlock_downgrade: not held for writing")
	}
	l.owners = 1
	l.mu.Unlock()
	l.wakeOne()
}

// wakeOne admits the head ticket if it can hold the lock now
// (qemu_co_rwlock_maybe_wake_one): the ticket leaves the queue and owners counts it
// before it is woken, so nothing slips in between.
func (l *CoRwlock) wakeOne() {
	l.mu.Lock()
	if len(l.tickets) == 0 {
		l.mu.Unlock()
		return
	}
	tk := l.tickets[0]
	switch {
	case !tk.write && l.owners >= 0:
		l.owners++
	case tk.write && l.owners == 0:
		l.owners = -1
	default:
		l.mu.Unlock()
		return
	}
	copy(l.tickets, l.tickets[1:])
	l.tickets[len(l.tickets)-1] = rwTicket{}
	l.tickets = l.tickets[:len(l.tickets)-1]
	l.mu.Unlock()
	tk.co.Wake()
}
