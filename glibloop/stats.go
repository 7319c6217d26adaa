package glibloop

import (
	"time"

	"github.com/glibaio/glibaio/internal/watch"
)

// CallbackStats are the statistics of one callback: a source's Dispatch, or in package
// aiosource a BH, fd handler or timer. Kind says which ("source dispatch", "BH", "fd
// handler", "timer") and Name which one.
type CallbackStats struct {
	Kind, Name string
	Count      int64         // calls so far
	Total, Max time.Duration // their total and longest time
}

// Mean is the mean time per call.
func (s CallbackStats) Mean() time.Duration {
	if s.Count == 0 {
		return 0
	}
	return s.Total / time.Duration(s.Count)
}

// SetCallbackStats turns the per-callback timing (statistics and the stall watchdog)
// on or off for the whole process. It is on by default and costs two clock reads per
// callback.
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
// goroutine. It is off by default. This answers the first question of GTK users: what
// froze my UI?
func SetStallWatchdog(threshold time.Duration, report func(Stall)) {
	var r func(watch.Stall)
	if report != nil {
		r = func(s watch.Stall) { report(Stall(s)) }
	}
	watch.SetWatchdog(threshold, r)
}
