package aiosource

import "time"

// Waits counts the fd-monitor waits (ppoll or epoll_wait through the reactor) that Poll
// has made on c.
func Waits(c *Context) uint64 { return c.waits.Load() }

// SetPollIdleInterval shortens how long a poll handler may stay in busy polling without
// reporting readiness (7 s: POLL_IDLE_INTERVAL_NS). Call it before c is driven.
func SetPollIdleInterval(c *Context, d time.Duration) { c.pollIdleNS = int64(d) }
