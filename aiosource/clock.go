package aiosource

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glibaio/glibaio/internal/watch"
)

// ClockType selects the clock of a timer (QEMUClockType). Clocks run in this order.
//
// The clocks are global, as QEMU's qemu_clocks are: ClockEnable affects the timers of
// every Context. Each clock is enabled by default; see ClockEnable for what disabling
// one does, and for how the virtual clocks differ from a QEMU process whose VM has not
// started.
type ClockType int

// The clocks. There is no guest here: virtual time is the host's monotonic time minus
// the time ClockVirtual spent disabled (cpu_get_clock without icount), so ClockVirtual
// and ClockVirtualRT read the same time.
const (
	// ClockRealtime is CLOCK_MONOTONIC; it runs whatever happens (QEMU_CLOCK_REALTIME).
	ClockRealtime ClockType = iota
	// ClockVirtual is virtual time (QEMU_CLOCK_VIRTUAL): it stands still while the clock
	// is disabled, as QEMU's stands still while the VM is stopped.
	ClockVirtual
	// ClockHost is wall-clock time; it follows NTP and settimeofday (QEMU_CLOCK_HOST).
	ClockHost
	// ClockVirtualRT reads virtual time too (QEMU_CLOCK_VIRTUAL_RT). In QEMU it is
	// cpu_get_clock, the ns the VM has run, which QEMU_CLOCK_VIRTUAL reads as well unless
	// icount makes that clock count instructions; either way it stands still while the VM
	// is stopped. glibaio has no icount: both read the same time, which stands still
	// while ClockVirtual is disabled. Disabling ClockVirtualRT itself only holds its
	// timers.
	ClockVirtualRT
	numClocks
)

// Timer scales: the unit of a timer's expire time, in ns.
const (
	ScaleNS int64 = 1
	ScaleUS int64 = 1000
	ScaleMS int64 = 1000000
)

// String returns the clock's name: "realtime", "virtual", "host" or "virtual-rt".
func (t ClockType) String() string {
	switch t {
	case ClockRealtime:
		return "realtime"
	case ClockVirtual:
		return "virtual"
	case ClockHost:
		return "host"
	case ClockVirtualRT:
		return "virtual-rt"
	}
	return fmt.Sprintf("ClockType(%d)", int(t))
}

func checkClock(fn string, t ClockType) {
	if t < 0 || t >= numClocks {
		panic(fmt.Sprintf("aiosource: %s: invalid ClockType %d", fn, int(t)))
	}
}

// isVirtual reports whether t reads virtual time.
func (t ClockType) isVirtual() bool { return t == ClockVirtual || t == ClockVirtualRT }

// ClockNS returns the current time of a clock in ns (qemu_clock_get_ns). ClockRealtime
// is CLOCK_MONOTONIC and ClockHost Unix time. The virtual clocks start equal to
// CLOCK_MONOTONIC and fall behind it by the time ClockVirtual spends disabled: they
// stand still meanwhile and go on from there, without a jump, once it is enabled again.
// It panics if t is not one of the four clocks.
func ClockNS(t ClockType) int64 {
	switch t {
	case ClockRealtime:
		return watch.Nanotime()
	case ClockHost:
		return time.Now().UnixNano()
	case ClockVirtual, ClockVirtualRT:
		return virtualNS()
	}
	checkClock("ClockNS", t)
	panic("unreachable")
}

// vclock is QEMU's timers_state as cpu_get_clock reads it: virtual time is offset plus
// CLOCK_MONOTONIC while running, and offset alone (the time it stopped at) while not.
// Writers hold clocks.mu and bracket their change with seq, a seqlock (vm_clock_seqlock),
// so a reader never sees a running flag and an offset from different writes; readers
// take no lock and allocate nothing.
var vclock struct {
	seq     atomic.Uint32 // odd while a writer changes the fields
	stopped atomic.Bool   // !cpu_ticks_enabled; the zero value runs
	offset  atomic.Int64  // cpu_clock_offset
}

// virtualState returns a consistent snapshot of virtual time: whether it runs, and its
// offset from CLOCK_MONOTONIC (running) or its frozen value (stopped).
func virtualState() (running bool, offset int64) {
	for {
		s := vclock.seq.Load()
		if s&1 == 0 {
			running, offset = !vclock.stopped.Load(), vclock.offset.Load()
			if vclock.seq.Load() == s {
				return running, offset
			}
		}
	}
}

// virtualNS is cpu_get_clock. The monotonic clock is read inside the seqlock's read
// section, so a reader that overlaps a stop retries instead of returning a time later
// than the one the clock stops at: virtual time never goes backwards.
func virtualNS() int64 {
	for {
		s := vclock.seq.Load()
		if s&1 != 0 {
			continue
		}
		ns := vclock.offset.Load()
		if !vclock.stopped.Load() {
			ns += watch.Nanotime()
		}
		if vclock.seq.Load() == s {
			return ns
		}
	}
}

// setVirtualRunning starts (cpu_enable_ticks) or stops (cpu_disable_ticks) virtual
// time. clocks.mu is held.
func setVirtualRunning(run bool) {
	if run == !vclock.stopped.Load() {
		return
	}
	vclock.seq.Add(1)
	now := watch.Nanotime()
	if run {
		vclock.offset.Add(-now) // from the frozen value to an offset: no jump
	} else {
		vclock.offset.Add(now) // from an offset to the time it stops at
	}
	vclock.stopped.Store(!run)
	vclock.seq.Add(1)
}

// clocks holds what QEMU keeps per QEMUClock: whether it is enabled, and the timer lists
// to notify when it is enabled again (here, the contexts that made a timer and are not
// closed).
var clocks struct {
	mu       sync.Mutex // serialises ClockEnable (QEMU: the BQL) and guards contexts
	disabled [numClocks]atomic.Bool
	contexts map[*Context]struct{}
}

// clockEnabled reports whether timers of clock t may run.
func clockEnabled(t ClockType) bool { return !clocks.disabled[t].Load() }

// registerClocks makes ClockEnable see c's timer lists (timerlist_new). A closed
// context is not registered.
func (c *Context) registerClocks() {
	clocks.mu.Lock()
	defer clocks.mu.Unlock()
	if c.closed.Load() {
		return
	}
	if _, ok := clocks.contexts[c]; ok {
		return
	}
	if clocks.contexts == nil {
		clocks.contexts = map[*Context]struct{}{}
	}
	clocks.contexts[c] = struct{}{}
}

// unregisterClocks forgets c (timerlist_free); Close calls it before it disarms the
// timers, so ClockEnable never touches a context that is being closed.
func (c *Context) unregisterClocks() {
	clocks.mu.Lock()
	delete(clocks.contexts, c)
	clocks.mu.Unlock()
}

// ClockEnable enables or disables a clock (qemu_clock_enable), for the timers of every
// Context. Timers of a disabled clock stay pending but do not run, even when due, and
// the deadline that Poll and the GLib source wait for leaves them out. Enabling it
// again wakes every loop that has a pending timer on it (aio_notify), from whichever
// goroutine calls ClockEnable, and its due timers run in that loop's next pass.
//
// ClockVirtual is also virtual time's run state, what QEMU's vm_start and vm_stop
// toggle together with the clock (cpu_enable_ticks, cpu_disable_ticks): disabling it
// stops ClockNS(ClockVirtual) and ClockNS(ClockVirtualRT) at the time they had, and
// enabling it lets them go on from that time, without a jump (the offset grows by the
// time spent stopped). A ClockVirtualRT timer that is due while virtual time stands still
// still runs; one that is not due cannot become due, so it asks for no wakeup either
// (QEMU's timerlist_deadline_ns would wake the loop after the unchanging distance to it,
// again and again). Disabling ClockRealtime, ClockHost or ClockVirtualRT holds their
// timers; their time goes on.
//
// Disabling notifies no loop, as in QEMU: a loop already asleep until one of the
// clock's timers wakes then once, runs nothing, and sleeps on without it.
//
// Every clock starts enabled. In a QEMU process, QEMU_CLOCK_VIRTUAL starts disabled, with
// virtual time stopped at 0, until vm_start. glibaio has no VM to start: a program that
// arms a ClockVirtual timer expects it to run, so the virtual clocks start enabled and
// equal to CLOCK_MONOTONIC, and ClockEnable(ClockVirtual, false) plays vm_stop.
//
// Disabling a clock does not wait for timer callbacks of that clock that are running on
// other goroutines. QEMU's qemu_clock_enable waits for every timer list of the clock to
// finish its pass (timers_done_ev) and deadlocks when called from a timer callback of
// that clock. ClockEnable never blocks on a loop, so any goroutine and any callback may
// call it, its own clock's timer callbacks included. Once it returns, no loop takes
// another timer of that clock to run; a callback already running, or one that a loop on
// another goroutine took just before, completes. Enabling or disabling a clock that
// already is so does nothing. It panics if t is not one of the four clocks.
func ClockEnable(t ClockType, enabled bool) {
	checkClock("ClockEnable", t)
	clocks.mu.Lock()
	defer clocks.mu.Unlock()
	if clockEnabled(t) == enabled {
		return
	}
	if t == ClockVirtual {
		setVirtualRunning(enabled)
	}
	clocks.disabled[t].Store(!enabled)
	for c := range clocks.contexts {
		c.clockChanged(t, enabled)
	}
}

// ClockEnabled reports whether clock t is enabled (the enabled flag that
// qemu_clock_enable sets). It panics if t is not one of the four clocks.
func ClockEnabled(t ClockType) bool {
	checkClock("ClockEnabled", t)
	return clockEnabled(t)
}

// clockChanged republishes c's deadline after clock t was enabled or disabled and, when
// it was enabled, notifies c if a timer is pending on a clock whose timers may now run
// (qemu_clock_notify): t, and for ClockVirtual also ClockVirtualRT, whose time resumed.
// QEMU notifies every timer list of the clock; a context with nothing to run is left
// asleep. clocks.mu is held.
func (c *Context) clockChanged(t ClockType, enabled bool) {
	c.tmu.Lock()
	c.updateDeadlineLocked()
	wake := enabled && (c.clocks[t].head != nil || t == ClockVirtual && c.clocks[ClockVirtualRT].head != nil)
	c.tmu.Unlock()
	if wake {
		c.Notify()
	}
}
