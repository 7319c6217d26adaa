package aiosource

// pollIdleIntervalNS is how long a poll handler stays in busy polling without its Poll
// callback reporting readiness (POLL_IDLE_INTERVAL_NS).
const pollIdleIntervalNS = 7_000_000_000

// pollIdleInterval returns the context's idle interval: pollIdleIntervalNS unless a
// test shortened it.
func (c *Context) pollIdleInterval() int64 {
	if c.pollIdleNS != 0 {
		return c.pollIdleNS
	}
	return pollIdleIntervalNS
}

// removeIdlePollHandlers takes the poll handlers whose Poll callback has not reported
// readiness for the idle interval out of busy polling (remove_idle_poll_handlers), so
// that a loop whose traffic stopped blocks at once instead of spinning before every
// wait. A handler leaving while polling mode is started gets its end callback and, if
// it has one, a final Poll; readiness found then is progress. It returns to polling the
// next time its fd fires (dispatchHandler). now is the end of the busy poll.
//
// QEMU does this only with fd monitors that can see fds without a syscall (io_uring:
// fdmon_supports_polling), because on poll and epoll an fd that nobody busy-polls is
// seen only when the loop waits, and a busy handler next to it would starve it. Here it
// is done on poll and epoll too, and needWait makes up for the rest: while a handler
// that left polling idle has not fired again, every Poll waits for fds, with a zero
// timeout when busy polling found work, so its fd is still seen on every pass.
func (c *Context) removeIdlePollHandlers(now int64) bool {
	progress := false
	for i := 0; i < len(c.pollHandlers); {
		n := c.pollHandlers[i]
		if n.pollIdleTimeout == 0 {
			n.pollIdleTimeout = now + c.pollIdleInterval()
		} else if now >= n.pollIdleTimeout {
			n.pollIdleTimeout = 0
			c.removePollHandler(n)
			if !n.deleted.Load() {
				n.idleDropped = true
				c.pollIdleDropped++
				if be := n.pollBeginEnd.Load(); c.pollStarted && be != nil && be.end != nil {
					be.end()
					// A final poll, in case an event raced with end.
					if n.h.Poll != nil && n.h.Poll() {
						c.markPollReady(n)
						progress = true
					}
				}
			}
			continue // n is gone from c.pollHandlers: index i now holds the next one
		}
		i++
	}
	return progress
}

// undropIdle forgets that n left polling idle: it fired again or was removed.
func (c *Context) undropIdle(n *fdNode) {
	if n.idleDropped {
		n.idleDropped = false
		c.pollIdleDropped--
	}
}
