// Package testutil holds helpers shared by the tests of several packages.
package testutil

import (
	"time"

	"golang.org/x/sys/unix"
)

// SignalStorm sends the Go runtime's own signals (SIGURG, SIGPROF, SIGCHLD) to one OS
// thread, every 50 µs, until stop is closed; then it sends how many it sent.
func SignalStorm(tid int, stop <-chan struct{}) <-chan int {
	sent := make(chan int)
	go func() {
		n := 0
		sigs := []unix.Signal{unix.SIGURG, unix.SIGPROF, unix.SIGCHLD}
		for {
			select {
			case <-stop:
				sent <- n
				return
			default:
			}
			unix.Tgkill(unix.Getpid(), tid, sigs[n%len(sigs)])
			n++
			time.Sleep(50 * time.Microsecond)
		}
	}()
	return sent
}
