package aiosource

import "github.com/glibaio/glibaio/internal/reactor"

// startThread prepares an IOThread's OS thread, locked to its goroutine, before its
// first Poll: its timer slack becomes 1 ns, as QEMU's init_clocks() leaves every thread
// QEMU creates, so the thread's first callbacks already run with it. (Poll would set it
// too, but only before its first blocking wait.)
func (t *IOThread) startThread() {
	if testHookThreadStart != nil {
		testHookThreadStart(t)
	}
	reactor.InitTimerSlack()
}

// testHookThreadStart, set by a test before NewIOThread, runs on the new IOThread's OS
// thread just before startThread sets its slack.
var testHookThreadStart func(*IOThread)
