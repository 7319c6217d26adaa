package glibloop

import (
	"time"

	"github.com/glibaio/glibaio/internal/watch"
)

// CallbackStats are the statistics of one callback: a source's Dispatch, or in package
// aiosource a BH, fd handler or timer. Kind says which ("source dispatch", "BH", "fd
// handler", "timer") and Name which one.
//
// Count is exact. The times are sampled, because a clock read costs about as much as
// the crossing from C into Go that a source's callback is: a call is timed if it is
// among the callback's first 64, if the callback's last timed call took 4 µs or more
// (so a callback whose calls are that long is timed on every call), and otherwise about
// one call in 32, drawn at random; the stall watchdog changes none of this. Total is then
// an estimate: each timed call stands for the untimed calls before it, and the sum is
// scaled to Count; it is exact while every call is timed. Max is the longest timed call,
// so a rare slow call of an otherwise fast callback can be missed, unless the stall
// watchdog saw it: a call stuck past the watchdog's threshold raises Max to the time the
// watchdog saw it running (a lower bound), timed or not, though not Total.
type CallbackStats struct {
	Kind, Name string
	Count      int64         // calls so far (returned or panicked): exact
	Total, Max time.Duration // their estimated total, and the longest timed call
}

// Mean is the mean time per call.
func (s CallbackStats) Mean() time.Duration {
	if s.Count == 0 {
		return 0
	}
	return s.Total / time.Duration(s.Count)
}

// SetCallbackStats turns the per-callback statistics (CallbackStats) and the stall
// watchdog on or off for the whole process. It is on by default. A call costs an
// addition to its count, and two clock reads when it is timed: about one call in 32 of
// a fast callback, every call of a slow one (see CallbackStats). While the stall
// watchdog runs, a call costs three atomic loads and two stores more (three when the
// loop's callback changes, six for a nested call of another callback), and no clock
// read.
func SetCallbackStats(on bool) { watch.SetEnabled(on) }

// Stall is one report of the stall watchdog: a callback that had run longer than the
// threshold and was still running.
type Stall struct {
	Kind, Name string
	// Duration is how long the watchdog had seen it running when it reported it: a
	// lower bound, short of the truth by up to two watchdog ticks (a tick is a quarter
	// of the threshold, and a tick may come late).
	Duration time.Duration
	// Stack holds the stacks of the goroutines running that callback at that moment
	// (normally one: the loop's).
	Stack []byte
}

// SetStallWatchdog starts the stall watchdog: any callback of a glibaio loop (a Go
// source's Dispatch; aiosource's BHs, fd handlers and timers) that runs longer than
// threshold is reported once, while it still runs, to report. A nil report logs it with
// log/slog at level Warn, with the stack. A threshold of 0 stops the watchdog and its
// goroutine. It is off by default. This answers the first question of GTK users: what
// froze my UI?
//
// The loops read no clock for it. While it runs, each callback shows on its loop which
// callback runs and a counter that changes at every call, and the watchdog looks at the
// loops every quarter of the threshold (every millisecond at least): a call that it
// finds running, unchanged, for the threshold since it first saw it is reported, from
// threshold to about threshold plus two ticks after it began. A callback that runs a
// nested loop of its own slot (an aiosource callback polling its own context) is timed
// afresh each time a nested callback returns to it, so such a loop whose callbacks
// return is no stall; a nested loop of another source or context does not reset it,
// and is reported as the outer callback's stall.
func SetStallWatchdog(threshold time.Duration, report func(Stall)) {
	var r func(watch.Stall)
	if report != nil {
		r = func(s watch.Stall) { report(Stall(s)) }
	}
	watch.SetWatchdog(threshold, r)
}
