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
// (so a callback whose calls are that long is timed on every call), while the stall
// watchdog runs (every call is, then), and otherwise about one call in 32, drawn at
// random. Total is then an estimate: each timed call stands for the untimed calls
// before it, and the sum is scaled to Count; it is exact while every call is timed.
// Max is the longest timed call, so a rare slow call of an otherwise fast callback can
// be missed; the stall watchdog sees every call.
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
// watchdog on or off for the whole process. It is on by default. A call costs one
// atomic add, and two clock reads when it is timed: about one call in 32 of a fast
// callback, every call of a slow one or while the watchdog runs (see CallbackStats).
func SetCallbackStats(on bool) { watch.SetEnabled(on) }

// Stall is one report of the stall watchdog: a callback that had run longer than the
// threshold and was still running.
type Stall struct {
	Kind, Name string
	Duration   time.Duration // how long it had run when the watchdog looked
	// Stack holds the stacks of the goroutines running that callback at that moment
	// (normally one: the loop's).
	Stack []byte
}

// SetStallWatchdog starts the stall watchdog: any callback of a glibaio loop (a Go
// source's Dispatch; aiosource's BHs, fd handlers and timers) that runs longer than
// threshold is reported once, while it still runs, to report. A nil report logs it with
// log/slog at level Warn, with the stack. A threshold of 0 stops the watchdog and its
// goroutine. It is off by default. While it runs, every callback reads the clock when it
// starts, so that the watchdog knows how long it has run, and its statistics time every
// call. This answers the first question of GTK users: what froze my UI?
func SetStallWatchdog(threshold time.Duration, report func(Stall)) {
	var r func(watch.Stall)
	if report != nil {
		r = func(s watch.Stall) { report(Stall(s)) }
	}
	watch.SetWatchdog(threshold, r)
}
