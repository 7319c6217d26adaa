package aiosource

import (
	"time"

	"github.com/glibaio/glibaio/internal/watch"
)

// Waits counts the fd-monitor waits (ppoll or epoll_wait through the reactor) that Poll
// has made on c.
func Waits(c *Context) uint64 { return c.waits.Load() }

// SetPollIdleInterval shortens how long a poll handler may stay in busy polling without
// reporting readiness (7 s: POLL_IDLE_INTERVAL_NS). Call it before c is driven.
func SetPollIdleInterval(c *Context, d time.Duration) { c.pollIdleNS = int64(d) }

// computeTimeout is the relative half of computeDeadline: how long Poll may block.
func (c *Context) computeTimeout() int64 {
	t, _ := c.computeDeadline()
	return t
}

// timerTimeout is timerlistgroup_deadline_ns as QEMU returns it: the time until the
// nearest timer in ns, 0 if one is due, -1 if none can become due by waiting.
func (c *Context) timerTimeout() int64 {
	now := watch.Nanotime()
	d := c.timerDeadline(now)
	if d < 0 {
		return -1
	}
	return max(d-now, 0)
}
