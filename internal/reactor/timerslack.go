package reactor

import "github.com/glibaio/glibaio/cshim"

// InitTimerSlack sets the calling OS thread's timer slack to 1 ns, as QEMU's
// init_clocks() does, once per thread: Wait does the same before a thread's first
// blocking wait. A goroutine that locks itself to a thread to drive a loop calls it
// there, so the slack is already 1 ns when the loop's first callback runs.
func InitTimerSlack() { cshim.InitTimerSlack() }
